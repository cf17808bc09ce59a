using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using GrainFs.Client;
using GrainFs.DataPlane.Blocks;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Benchmarks;

/// <summary>
/// The block cache against baselines measured in the same run: warm sequential and random reads through the SDK
/// (short-circuit) against reading the same bytes from disk; remote warm reads (data port) against a plain loopback
/// socket copy; cold reads and load against direct parallel GETs from the same S3 server.
/// </summary>
internal static class CacheBenchmark
{
    private static readonly List<string> Rows = [];

    public static async Task<int> RunAsync(BenchArgs args)
    {
        var root = args.Text("--folder", Path.Combine(Path.GetTempPath(), "grainfs-bench", "cache"));
        var bigBytes = (long)args.Int("--big-mib", 1024) << 20;
        var smallCount = args.Int("--small", 10_000);
        var coldCount = args.Int("--cold", 1000);
        var repeats = args.Int("--repeats", 3);
        var readBytes = args.Int("--read-kib", 4096) * 1024;
        var shm = $"/dev/shm/grainfs-bench-{Environment.ProcessId}";
        Directory.CreateDirectory(root);
        var local = Path.Combine(root, "local");
        MakeData(local, bigBytes, smallCount);

        await using var moto = await MotoServer.StartAsync();
        var bucket = "cold";
        var coldKeys = await BenchData.UploadObjectsAsync(moto, bucket, coldCount, 100 * 1024);
        var memCapacity = bigBytes + (smallCount * 110_000L) + (256L << 20);
        await using var silo = await SiloProcess.StartAsync("cache", new SiloProcessOptions
        {
            Dll = args.TextOrNull("--silo"),
            Tiers = [$"MEM={shm}:{memCapacity}", $"SSD={Path.Combine(root, "ssd")}:{memCapacity}"],
            ExtraArgs = ["--host", "bench-host"],
            Environment = moto.Environment,
            Dashboard = false,
            ForwardStandardError = true,
        });
        try
        {
            var baseOptions = new GrainFsClientOptions { GatewayPort = silo.GatewayPort, Host = "bench-host" };
            await using var client = await GrainFsClient.ConnectAsync(baseOptions);
            Check(await client.MountAsync("/local", $"file://{local}", new Dictionary<string, string> { ["readonly"] = "true" }));
            Check(await client.MountAsync("/s3", $"s3://{bucket}", new Dictionary<string, string> { ["readonly"] = "true" }));
            Console.WriteLine($"# cache benchmark: {bigBytes >> 20} MiB file, {smallCount:N0} × 100 KB files, {coldCount:N0} × 100 KB objects on moto; MEM tier {shm}");
            var load = Check(await client.LoadAsync("/local"));
            Console.WriteLine($"loaded the local set: {load.Files:N0} files, {load.Bytes / 1e6:F0} MB in {load.Elapsed.TotalSeconds:F1} s");

            var only = args.Text("--only", "sequential,random,remote,cold").Split(',');
            if (only.Contains("sequential"))
            {
                await SequentialAsync(client, shm, bigBytes, readBytes, repeats);
            }

            if (only.Contains("random"))
            {
                await RandomSmallAsync(client, local, smallCount, args.Int("--readers", 8), repeats);
            }

            if (only.Contains("remote"))
            {
                await RemoteAsync(silo.GatewayPort, bigBytes, repeats);
            }

            if (only.Contains("cold"))
            {
                await ColdAsync(client, moto, bucket, coldKeys, repeats);
            }
        }
        finally
        {
            if (Directory.Exists(shm))
            {
                Directory.Delete(shm, recursive: true);
            }
        }

        Console.WriteLine();
        Console.WriteLine("| measurement | GrainFS | baseline | ratio | goal |");
        Console.WriteLine("| --- | --- | --- | --- | --- |");
        foreach (var row in Rows)
        {
            Console.WriteLine(row);
        }

        return 0;
    }

    private static T Check<T>(FsResult<T> result) => result.IsOk ? result.Value! : throw new InvalidOperationException(result.Message);

    private static void Row(string what, double grainfs, double baseline, string unit, double goal)
    {
        var line = string.Create(CultureInfo.InvariantCulture, $"| {what} | {grainfs:N1} {unit} | {baseline:N1} {unit} | {grainfs / baseline:F2} | ≥ {goal:F1} |");
        Rows.Add(line);
        Console.WriteLine(line);
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }

    private static void MakeData(string local, long bigBytes, int smallCount)
    {
        var marker = Path.Combine(local, $".complete-{bigBytes}-{smallCount}");
        if (File.Exists(marker))
        {
            return;
        }

        if (Directory.Exists(local))
        {
            Directory.Delete(local, recursive: true);
        }

        Directory.CreateDirectory(Path.Combine(local, "small"));
        var random = new Random(1);
        BenchData.WriteRandomFile(Path.Combine(local, "big.bin"), bigBytes, random);

        var small = new byte[100 * 1024];
        for (var i = 0; i < smallCount; i++)
        {
            var dir = Path.Combine(local, "small", $"c{i / 1000:D3}");
            Directory.CreateDirectory(dir);
            random.NextBytes(small);
            File.WriteAllBytes(Path.Combine(dir, $"img{i:D6}.jpg"), small);
        }

        File.WriteAllText(marker, "ok");
    }

    /// <summary>Warm sequential read of the big file through the SDK (short-circuit) vs reading the tier's block files directly.</summary>
    private static async Task SequentialAsync(GrainFsClient client, string shm, long bigBytes, int readBytes, int repeats)
    {
        var file = Check(await client.OpenAsync("/local/big.bin"));
        var buffer = GC.AllocateUninitializedArray<byte>(readBytes, pinned: true);
        var blockFiles = Enumerable.Range(0, file.Version.BlockCount).Select(i => Path.Combine(shm, BlockFile.RelativePath(file.Version.KeyOf(i)))).ToList();
        if (!blockFiles.All(File.Exists))
        {
            throw new InvalidOperationException("the big file is not all in the MEM tier; give the MEM tier more room");
        }

        // One pass to verify every chunk once (the client checks a block the first time this process reads it).
        await BenchData.ReadAllAsync(file, buffer);
        var grainfs = new List<double>();
        var direct = new List<double>();
        for (var r = 0; r < repeats; r++)
        {
            var clock = Stopwatch.StartNew();
            foreach (var path in blockFiles)
            {
                using var handle = File.OpenHandle(path);
                var header = BlockFile.HeaderLength((int)Math.Min(file.Version.BlockSize, bigBytes));
                long offset = header;
                int n;
                while ((n = RandomAccess.Read(handle, buffer, offset)) > 0)
                {
                    offset += n;
                }
            }

            direct.Add(bigBytes / clock.Elapsed.TotalSeconds / 1e6);
            clock.Restart();
            await BenchData.ReadAllAsync(file, buffer);
            grainfs.Add(bigBytes / clock.Elapsed.TotalSeconds / 1e6);
        }

        Row($"warm sequential read, {bigBytes >> 20} MiB in {readBytes >> 10} KiB reads, SDK short-circuit vs the tier's block files read directly", Median(grainfs), Median(direct), "MB/s", 0.9);

        // Allocations of the warm read path: the whole process's (the Orleans client's timers included), so an upper bound.
        var reads = (file.Length + readBytes - 1) / readBytes;
        var before = GC.GetTotalAllocatedBytes(precise: true);
        await BenchData.ReadAllAsync(file, buffer);
        var perRead = (GC.GetTotalAllocatedBytes(precise: true) - before) / (double)reads;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"warm short-circuit read: {perRead:F0} bytes allocated per read ({reads:N0} reads of {readBytes >> 10} KiB, whole process)"));
    }

    /// <summary>Warm random-order reads of the small files through the SDK vs the same files from local disk (page cache).</summary>
    private static async Task RandomSmallAsync(GrainFsClient client, string local, int count, int readers, int repeats)
    {
        var names = Enumerable.Range(0, count).Select(i => $"small/c{i / 1000:D3}/img{i:D6}.jpg").ToArray();
        var pool = ArrayPool<byte>.Shared;
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = readers };
        foreach (var name in names)
        {
            // Warm: metadata cached by the client, each block checked once.
            var buffer = pool.Rent(100 * 1024);
            var file = Check(await client.OpenAsync("/local/" + name));
            Check(await file.ReadAsync(0, buffer.AsMemory(0, 100 * 1024)));
            pool.Return(buffer);
        }

        var grainfs = new List<double>();
        var disk = new List<double>();
        for (var r = 0; r < repeats; r++)
        {
            var order = names.ToArray();
            new Random(r).Shuffle(order);
            var clock = Stopwatch.StartNew();
            await Parallel.ForEachAsync(order, parallel, (name, _) =>
            {
                var buffer = pool.Rent(100 * 1024);
                using (var handle = File.OpenHandle(Path.Combine(local, name)))
                {
                    RandomAccess.Read(handle, buffer.AsSpan(0, 100 * 1024), 0);
                }

                pool.Return(buffer);
                return ValueTask.CompletedTask;
            });

            disk.Add(count / clock.Elapsed.TotalSeconds);
            clock.Restart();
            await Parallel.ForEachAsync(order, parallel, async (name, ct) =>
            {
                var buffer = pool.Rent(100 * 1024);
                var file = Check(await client.OpenAsync("/local/" + name, ct));
                Check(await file.ReadAsync(0, buffer.AsMemory(0, 100 * 1024), ct));
                pool.Return(buffer);
            });

            grainfs.Add(count / clock.Elapsed.TotalSeconds);
        }

        Row($"warm random reads of {count:N0} × 100 KB files, SDK vs local disk ({readers} readers)", Median(grainfs), Median(disk), "files/s", 0.9);
    }

    /// <summary>Warm remote read (a client on another "host": data port over loopback) vs a plain loopback socket copy of as many bytes.</summary>
    private static async Task RemoteAsync(int gatewayPort, long bigBytes, int repeats)
    {
        await using var remote = await GrainFsClient.ConnectAsync(new GrainFsClientOptions { GatewayPort = gatewayPort, Host = "another-host" });
        var file = Check(await remote.OpenAsync("/local/big.bin"));
        var buffer = GC.AllocateUninitializedArray<byte>(4 << 20, pinned: true);
        await BenchData.ReadAllAsync(file, buffer);
        var grainfs = new List<double>();
        var socket = new List<double>();
        for (var r = 0; r < repeats; r++)
        {
            socket.Add(bigBytes / await LoopbackCopySeconds(bigBytes, buffer.Length) / 1e6);
            var clock = Stopwatch.StartNew();
            await BenchData.ReadAllAsync(file, buffer);
            grainfs.Add(bigBytes / clock.Elapsed.TotalSeconds / 1e6);
        }

        Row($"warm remote read, {bigBytes >> 20} MiB over the data port vs a plain loopback socket copy", Median(grainfs), Median(socket), "MB/s", 0.7);
    }

    private static async Task<double> LoopbackCopySeconds(long bytes, int chunk)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var send = Task.Run(async () =>
        {
            using var server = await listener.AcceptSocketAsync();
            server.SendBufferSize = 4 << 20;
            var data = GC.AllocateUninitializedArray<byte>(chunk, pinned: true);
            for (long sent = 0; sent < bytes; sent += chunk)
            {
                await server.SendAsync(data.AsMemory(0, (int)Math.Min(chunk, bytes - sent)), SocketFlags.None);
            }
        });
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveBufferSize = 4 << 20 };
        await client.ConnectAsync(IPAddress.Loopback, port);
        var buffer = GC.AllocateUninitializedArray<byte>(chunk, pinned: true);
        var clock = Stopwatch.StartNew();
        long received = 0;
        while (received < bytes)
        {
            received += await client.ReceiveAsync(buffer, SocketFlags.None);
        }

        var seconds = clock.Elapsed.TotalSeconds;
        await send;
        return seconds;
    }

    /// <summary>Cold reads and load of the moto objects vs direct parallel GETs of the same objects from the same server.</summary>
    private static async Task ColdAsync(GrainFsClient client, MotoServer moto, string bucket, IReadOnlyList<string> keys, int repeats)
    {
        const int parallel = 8;
        var buffer = ArrayPool<byte>.Shared;
        var cold = new List<double>();
        var loads = new List<double>();
        var gets = new List<double>();
        using var s3 = moto.Client();
        for (var r = 0; r < repeats; r++)
        {
            var clock = Stopwatch.StartNew();
            await Parallel.ForEachAsync(keys, new ParallelOptions { MaxDegreeOfParallelism = parallel }, async (key, ct) =>
            {
                using var response = await s3.GetObjectAsync(bucket, key, ct);
                var data = buffer.Rent(128 * 1024);
                while (await response.ResponseStream.ReadAsync(data, ct) > 0)
                {
                }

                buffer.Return(data);
            });
            gets.Add(keys.Count / clock.Elapsed.TotalSeconds);

            Check(await client.FreeAsync("/s3"));
            clock.Restart();
            await Parallel.ForEachAsync(keys, new ParallelOptions { MaxDegreeOfParallelism = parallel }, async (key, ct) =>
            {
                var data = buffer.Rent(128 * 1024);
                var file = Check(await client.OpenAsync("/s3/" + key, ct));
                Check(await file.ReadAsync(0, data.AsMemory(0, (int)file.Length), ct));
                buffer.Return(data);
            });
            cold.Add(keys.Count / clock.Elapsed.TotalSeconds);

            Check(await client.FreeAsync("/s3"));
            clock.Restart();
            Check(await client.LoadAsync("/s3"));
            loads.Add(keys.Count / clock.Elapsed.TotalSeconds);
        }

        Row($"cold reads of {keys.Count:N0} × 100 KB objects ({parallel} readers) vs direct parallel GETs (moto)", Median(cold), Median(gets), "files/s", 0.9);
        Row($"load of {keys.Count:N0} × 100 KB objects vs direct parallel GETs (moto)", Median(loads), Median(gets), "files/s", 0.9);
    }
}
