using System.Diagnostics;
using System.Globalization;
using GrainFs.Client;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Benchmarks;

/// <summary>
/// The FUSE mount against the same files on local disk, all warm, measured in the same run: random-order reads of
/// small files, a sequential read of a large file, `ls -lR` and stat of many files, and PyTorch DataLoader epochs
/// (raw bytes; JPEG decode and resize).
/// </summary>
internal static class FuseBenchmark
{
    private static readonly List<string> Rows = [];

    public static async Task<int> RunAsync(BenchArgs args)
    {
        var root = args.Text("--folder", Path.Combine(Path.GetTempPath(), "grainfs-bench", "fuse"));
        var smallCount = args.Int("--small", 10_000);
        var statCount = args.Int("--stat", 100_000);
        var bigBytes = (long)args.Int("--big-mib", 1024) << 20;
        var repeats = args.Int("--repeats", 3);
        var local = Path.Combine(root, "local");
        await MakeDataAsync(local, smallCount, statCount, bigBytes);

        var shm = $"/dev/shm/grainfs-bench-fuse-{Environment.ProcessId}";
        var capacity = bigBytes + (smallCount * 200_000L) + (512L << 20);
        await using var silo = await SiloProcess.StartAsync("fuse", new SiloProcessOptions
        {
            Dll = args.TextOrNull("--silo"),
            Tiers = [$"MEM={shm}:{capacity}"],
            ExtraArgs = ["--host", "bench-host"],
            Dashboard = false,
            ForwardStandardError = true,
        });
        var mountPoint = Path.Combine(root, "mnt");
        Directory.CreateDirectory(mountPoint);
        FuseProcess? fuse = null;
        try
        {
            await using (var client = await GrainFsClient.ConnectAsync(new GrainFsClientOptions { GatewayPort = silo.GatewayPort, Host = "bench-host" }))
            {
                var mounted = await client.MountAsync("/data", $"file://{local}", new Dictionary<string, string> { ["readonly"] = "true" });
                if (!mounted.IsOk)
                {
                    throw new InvalidOperationException(mounted.Message);
                }

                var load = await client.LoadAsync("/data/small");
                var loadBig = await client.LoadAsync("/data/big.bin");
                Console.WriteLine($"# FUSE benchmark: {smallCount:N0} JPEGs, {statCount:N0} files to stat, {bigBytes >> 20} MiB file; loaded {load.Value!.Files + loadBig.Value!.Files:N0} files into the MEM tier");
            }

            var extra = args.Text("--mount-options", string.Empty).Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // Read-only, as the benchmark reads only (and as earlier builds, which accept the switch, always mounted).
            fuse = await FuseProcess.StartAsync(silo, ["--host", "bench-host", "--read-only", .. extra], mountPoint, args.TextOrNull("--cli"));
            var fused = Path.Combine(mountPoint, "data");
            var only = args.Text("--only", "random,sequential,list,raw,decode").Split(',');
            if (only.Contains("random"))
            {
                await RandomSmallAsync(local, fused, repeats);
            }

            if (only.Contains("sequential"))
            {
                await SequentialAsync(local, fused, repeats);
            }

            if (only.Contains("list"))
            {
                await ListAndStatAsync(local, fused, repeats);
            }

            if (only.Contains("raw"))
            {
                await DataLoaderAsync(local, fused, "raw", 0, 0.5, repeats);
            }

            if (only.Contains("decode"))
            {
                await DataLoaderAsync(local, fused, "decode", 2, 0.9, repeats);
            }
        }
        finally
        {
            if (fuse is not null)
            {
                await fuse.DisposeAsync();
            }

            if (Directory.Exists(shm))
            {
                Directory.Delete(shm, recursive: true);
            }
        }

        Console.WriteLine();
        Console.WriteLine("| measurement (warm) | GrainFS FUSE | local disk | ratio | goal |");
        Console.WriteLine("| --- | --- | --- | --- | --- |");
        Rows.ForEach(Console.WriteLine);
        return 0;
    }

    private static void Row(string what, double grainfs, double local, string unit, double goal)
    {
        var line = string.Create(CultureInfo.InvariantCulture, $"| {what} | {grainfs:N1} {unit} | {local:N1} {unit} | {grainfs / local:F2} | ≥ {goal:F1} |");
        Rows.Add(line);
        Console.WriteLine(line);
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }

    private static async Task MakeDataAsync(string local, int smallCount, int statCount, long bigBytes)
    {
        var marker = Path.Combine(local, $".complete-v2-{smallCount}-{statCount}-{bigBytes}");
        if (File.Exists(marker))
        {
            return;
        }

        if (Directory.Exists(local))
        {
            Directory.Delete(local, recursive: true);
        }

        Directory.CreateDirectory(local);
        var clock = Stopwatch.StartNew();
        // ~100 KB JPEGs (200×200 noise, quality 96, no chroma subsampling) in 100 class folders, made by Debian's Pillow.
        var script = $$"""
            import os
            from PIL import Image
            root = "{{Path.Combine(local, "small")}}"
            for i in range({{smallCount}}):
                d = os.path.join(root, f"c{i % 100:03d}")
                os.makedirs(d, exist_ok=True)
                Image.frombytes("RGB", (200, 200), os.urandom(200 * 200 * 3)).save(os.path.join(d, f"img{i:06d}.jpg"), quality=96, subsampling=0)
            """;
        using (var python = Process.Start("/usr/bin/python3", ["-c", script]))
        {
            await python!.WaitForExitAsync();
            if (python.ExitCode != 0)
            {
                throw new InvalidOperationException("making the JPEGs failed (apt-get install python3-pil)");
            }
        }

        var random = new Random(4);
        for (var i = 0; i < statCount; i++)
        {
            var dir = Path.Combine(local, "meta", $"d{i / 1000:D3}");
            Directory.CreateDirectory(dir);
            using var file = File.Create(Path.Combine(dir, $"f{i:D6}.bin"));
            file.SetLength(random.Next(1, 200_000));
        }

        var chunk = new byte[4 << 20];
        await using (var big = File.Create(Path.Combine(local, "big.bin")))
        {
            for (long written = 0; written < bigBytes; written += chunk.Length)
            {
                random.NextBytes(chunk);
                await big.WriteAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, bigBytes - written)));
            }
        }

        await File.WriteAllTextAsync(marker, "ok");
        Console.WriteLine($"made the data set in {clock.Elapsed.TotalSeconds:F0} s");
    }

    private static double ReadFiles(string root, string[] relative, byte[] buffer)
    {
        var clock = Stopwatch.StartNew();
        foreach (var name in relative)
        {
            using var handle = File.OpenHandle(Path.Combine(root, name));
            long offset = 0;
            int n;
            while ((n = RandomAccess.Read(handle, buffer, offset)) > 0)
            {
                offset += n;
            }
        }

        return relative.Length / clock.Elapsed.TotalSeconds;
    }

    private static Task RandomSmallAsync(string local, string fused, int repeats)
    {
        var names = Directory.EnumerateFiles(Path.Combine(local, "small"), "*.jpg", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(local, f)).ToArray();
        var buffer = new byte[256 * 1024];
        ReadFiles(local, names, buffer);
        ReadFiles(fused, names, buffer);
        var grainfs = new List<double>();
        var disk = new List<double>();
        for (var r = 0; r < repeats; r++)
        {
            var order = names.ToArray();
            new Random(r).Shuffle(order);
            disk.Add(ReadFiles(local, order, buffer));
            grainfs.Add(ReadFiles(fused, order, buffer));
        }

        Row($"random-order reads of {names.Length:N0} × ~100 KB files, 1 reader", Median(grainfs), Median(disk), "files/s", 0.5);
        return Task.CompletedTask;
    }

    private static Task SequentialAsync(string local, string fused, int repeats)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(1 << 20);
        var size = new FileInfo(Path.Combine(local, "big.bin")).Length;
        ReadFiles(local, ["big.bin"], buffer);
        ReadFiles(fused, ["big.bin"], buffer);
        var grainfs = new List<double>();
        var disk = new List<double>();
        for (var r = 0; r < repeats; r++)
        {
            disk.Add(ReadFiles(local, ["big.bin"], buffer) * size / 1e6);
            grainfs.Add(ReadFiles(fused, ["big.bin"], buffer) * size / 1e6);
        }

        Row($"sequential read of a {size >> 20} MiB file (1 MiB reads)", Median(grainfs), Median(disk), "MB/s", 0.5);
        return Task.CompletedTask;
    }

    private static async Task ListAndStatAsync(string local, string fused, int repeats)
    {
        async Task<double> Ls(string root)
        {
            var clock = Stopwatch.StartNew();
            using var ls = Process.Start(new ProcessStartInfo("/bin/bash", ["-c", $"ls -lR '{Path.Combine(root, "meta")}' > /dev/null"]))!;
            await ls.WaitForExitAsync();
            return clock.Elapsed.TotalSeconds;
        }

        double Stat(string root, string[] names)
        {
            var clock = Stopwatch.StartNew();
            foreach (var name in names)
            {
                if (new FileInfo(Path.Combine(root, name)).Length < 0)
                {
                    throw new InvalidOperationException();
                }
            }

            return names.Length / clock.Elapsed.TotalSeconds;
        }

        var names = Directory.EnumerateFiles(Path.Combine(local, "meta"), "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(local, f)).ToArray();
        await Ls(local);
        await Ls(fused);
        var lsGrainfs = new List<double>();
        var lsLocal = new List<double>();
        var statGrainfs = new List<double>();
        var statLocal = new List<double>();
        for (var r = 0; r < repeats; r++)
        {
            lsLocal.Add(names.Length / await Ls(local));
            lsGrainfs.Add(names.Length / await Ls(fused));
            var order = names.ToArray();
            new Random(r).Shuffle(order);
            statLocal.Add(Stat(local, order));
            statGrainfs.Add(Stat(fused, order));
        }

        Row($"`ls -lR` of {names.Length:N0} files", Median(lsGrainfs), Median(lsLocal), "entries/s", 0.5);
        Row($"stat of {names.Length:N0} files in random order", Median(statGrainfs), Median(statLocal), "files/s", 0.5);
    }

    private static async Task DataLoaderAsync(string local, string fused, string mode, int workers, double goal, int repeats)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "dataloader_epoch.py");
        async Task<double> Epoch(string root)
        {
            using var python = Process.Start(new ProcessStartInfo("/usr/bin/python3", [script, Path.Combine(root, "small"), mode, workers.ToString(CultureInfo.InvariantCulture)]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var output = await python.StandardOutput.ReadToEndAsync();
            var error = await python.StandardError.ReadToEndAsync();
            await python.WaitForExitAsync();
            return python.ExitCode == 0 ? double.Parse(output.Trim(), CultureInfo.InvariantCulture) : throw new InvalidOperationException($"the DataLoader failed (apt-get install python3-torch): {error}");
        }

        await Epoch(local);
        await Epoch(fused);
        var grainfs = new List<double>();
        var disk = new List<double>();
        for (var r = 0; r < repeats; r++)
        {
            disk.Add(await Epoch(local));
            grainfs.Add(await Epoch(fused));
        }

        Row($"PyTorch DataLoader epoch, {(mode == "raw" ? "raw bytes, 0 workers" : "JPEG decode + resize, 2 workers")}", Median(grainfs), Median(disk), "samples/s", goal);
    }
}
