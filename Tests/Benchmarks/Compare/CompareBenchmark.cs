using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Amazon.S3.Model;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Benchmarks.Compare;

/// <summary>One system's figures (null: not measured for this system).</summary>
internal sealed class Row
{
    public required string System { get; init; }

    public required string Source { get; init; }

    public double? ColdSmall { get; set; }

    public double? WarmSmall { get; set; }

    public double? ColdLarge { get; set; }

    public double? WarmLarge { get; set; }

    public double? Metadata { get; set; }

    public double? PrewarmSeconds { get; set; }

    public double? LoaderRaw { get; set; }

    public double? LoaderDecode { get; set; }

    public int? Accelerators { get; set; }

    public double? Utilisation { get; set; }

    /// <summary>MB/s of each fio job (<see cref="FioJobs.All"/>), for systems that show the dataset as a folder.</summary>
    public Dictionary<string, double>? Fio { get; set; }

    public string? Failure { get; set; }
}

/// <summary>
/// GrainFS against the tools users would pick instead, on the same data in one run: GrainFS through FUSE and the
/// SDK, direct S3 GETs, rclone mount (full VFS cache), s3fs (use_cache), and local disk. Workloads: cold and warm
/// random small-file reads, cold and warm sequential large-file reads, a metadata pass, pre-warm time, PyTorch
/// DataLoader epochs, and an MLPerf-Storage-style emulation of accelerators that each take a batch and compute
/// for a fixed time, reporting the largest number kept at least 90% busy.
/// </summary>
internal static class CompareBenchmark
{
    private static readonly Stopwatch Clock = Stopwatch.StartNew();

    private sealed record Settings(
        string Work, int Images, int LargeMib, int LargeFiles, int Repeats, int ColdRepeats, int Readers, int Batch, int ComputeMs, int MaxAccelerators,
        string Output, string S3rver, string SiloDll, string CliDll, string[] Systems, string Python, bool Epochs);

    public static async Task<int> RunAsync(BenchArgs args)
    {
        var repo = Repo.Root;
        // The default preset takes about 12 minutes on 2 cores; "large" is a dataset of the size users bring
        // (30,000 images, 2 × 1 GiB videos). Explicit flags override either.
        var preset = args.Text("--preset", "default");
        (int Images, int LargeMib)? sizes = preset switch
        {
            "default" => (3000, 256),
            "large" => (30_000, 1024),
            _ => null,
        };
        if (sizes is null)
        {
            Console.Error.WriteLine($"grainfs-bench compare: --preset '{preset}' is not a preset (default, large)");
            return 2;
        }

        var settings = new Settings(
            // Absolute: mount points are compared with the kernel's mount table.
            Path.GetFullPath(args.Text("--work", Path.Combine(Path.GetTempPath(), "grainfs-bench", "compare"))),
            args.Int("--images", sizes.Value.Images),
            args.Int("--large-mib", sizes.Value.LargeMib),
            args.Int("--large-files", 2),
            args.Int("--repeats", 3),
            args.Int("--cold-repeats", 2),
            args.Int("--readers", 8),
            args.Int("--batch", 32),
            args.Int("--compute-ms", 100),
            args.Int("--max-accelerators", 128),
            args.Text("--out", Path.Combine(repo, "infra", "bench", "results")),
            args.Text("--s3rver", Path.Combine(repo, "infra", "bench", "node_modules", "s3rver", "bin", "s3rver.js")),
            args.Text("--silo", Path.Combine(repo, "Silo", "bin", "Release", "net10.0", "grainfs-silo.dll")),
            args.Text("--cli", Path.Combine(repo, "Client", "Cli", "bin", "Release", "net10.0", "grainfs.dll")),
            args.Text("--systems", "local disk,direct S3,GrainFS SDK,GrainFS FUSE,rclone,s3fs").Split(',', StringSplitOptions.TrimEntries),
            "/usr/bin/python3",
            args.Text("--epochs", "true") is "true" or "yes" or "1");

        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            Progress("interrupted: stopping every mount and process");
            cancel.Cancel();
        };
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            cancel.Cancel();
        });

        try
        {
            CheckTools(settings);
            var (rows, epochs) = await RunSystemsAsync(settings, cancel.Token);
            await WriteResultsAsync(settings, rows, epochs, cancel.Token);
            return rows.Any(r => r.Failure is not null) ? 1 : 0;
        }
        catch (HarnessException e)
        {
            Console.Error.WriteLine($"grainfs-bench compare: {e.Message}");
            return 2;
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            Console.Error.WriteLine("grainfs-bench compare: interrupted; everything it started was stopped");
            return 130;
        }
        finally
        {
            // Every process has stopped by now; the silo's MEM tier would otherwise keep its RAM.
            GrainFsDeployment.RemoveMemoryTier();
        }
    }

    private static void Progress(string message) =>
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{DateTime.Now:HH:mm:ss} +{Clock.Elapsed:mm\\:ss}] {message}"));

    private static void CheckTools(Settings s)
    {
        var missing = new List<string>();
        void Need(bool present, string what)
        {
            if (!present)
            {
                missing.Add(what);
            }
        }

        bool OnPath(string tool) => (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':').Any(p => File.Exists(Path.Combine(p, tool)));
        Need(File.Exists("/dev/fuse"), "/dev/fuse (FUSE mounts)");
        Need(OnPath("fusermount3"), "fusermount3 (apt-get install fuse3)");
        if (s.Systems.Contains("rclone"))
        {
            Need(OnPath("rclone"), "rclone (apt-get install rclone)");
        }

        if (s.Systems.Contains("s3fs"))
        {
            Need(OnPath("s3fs"), "s3fs (apt-get install s3fs)");
        }

        Need(OnPath("node"), "node (apt-get install nodejs npm)");
        Need(OnPath("fio"), "fio (apt-get install fio)");
        Need(File.Exists(s.S3rver), $"s3rver ({s.S3rver}; infra/bench/run.sh installs it with npm)");
        Need(File.Exists(s.SiloDll), $"the GrainFS silo ({s.SiloDll}; dotnet build Orleans.sln -c Release)");
        Need(File.Exists(s.CliDll), $"the grainfs CLI ({s.CliDll}; dotnet build Orleans.sln -c Release)");
        Need(RunsOk(s.Python, "-c", "import torch, PIL, numpy, matplotlib"), "PyTorch, Pillow and matplotlib for Debian's python3 (apt-get install python3-torch python3-pil python3-matplotlib)");
        if (missing.Count > 0)
        {
            throw new HarnessException("missing tools: " + string.Join("; ", missing));
        }
    }

    private static bool RunsOk(string file, params string[] args)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
            process.WaitForExit(60_000);
            return process.HasExited && process.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    private static async Task<(List<Row> Rows, List<EpochRow>? Epochs)> RunSystemsAsync(Settings s, CancellationToken ct)
    {
        Directory.CreateDirectory(s.Work);
        var dataset = Path.Combine(s.Work, "dataset");
        var (images, large) = await MakeDatasetAsync(s, dataset, ct);
        await using var children = new ChildProcesses(Path.Combine(s.Work, "logs"));
        Progress($"starting s3rver and uploading the dataset ({images.Count:N0} images, {large.Count} × {s.LargeMib} MiB)");
        var server = await StartS3rverAsync(children, s, ct);
        await UploadAsync(server, dataset, images.Concat(large).ToList(), ct);
        var memTier = (long)((images.Count * 120_000L) + ((long)s.LargeFiles * s.LargeMib << 20) + (256L << 20));
        await using var grainfs = s.Systems.Any(x => x.StartsWith("GrainFS", StringComparison.Ordinal))
            ? await GrainFsDeployment.StartAsync(children, server, s.Work, s.SiloDll, s.CliDll, memTier, ct)
            : null;

        var rows = new List<Row>();
        foreach (var name in s.Systems)
        {
            BenchSystem system = name switch
            {
                "local disk" => new LocalDiskSystem(dataset),
                "direct S3" => new DirectS3System(server),
                "GrainFS SDK" => new GrainFsSdkSystem(grainfs!),
                "GrainFS FUSE" => new GrainFsFuseSystem(grainfs!, Path.Combine(s.Work, "mnt", "grainfs"), children),
                "rclone" => new RcloneSystem(server, s.Work, children),
                "s3fs" => new S3fsSystem(server, s.Work, children),
                _ => throw new HarnessException($"unknown system '{name}' (known: local disk, direct S3, GrainFS SDK, GrainFS FUSE, rclone, s3fs)"),
            };
            var row = new Row { System = system.Name, Source = system.Source };
            rows.Add(row);
            await using (system)
            {
                try
                {
                    Progress($"{system.Name}: starting");
                    await system.StartAsync(ct);
                    await MeasureAsync(s, system, row, images, large, ct);
                }
                catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    row.Failure = e.Message;
                    Progress($"{system.Name}: FAILED: {e.Message}");
                    if (e is HarnessException)
                    {
                        throw;
                    }
                }
            }
        }

        List<EpochRow>? epochs = null;
        if (s.Epochs && grainfs is not null && s.Systems.Contains("GrainFS FUSE"))
        {
            var imageBytes = images.Sum(i => new FileInfo(Path.Combine(dataset, i)).Length);
            epochs = await EpochRows.RunAsync(new EpochRows.Context(s.Work, dataset, images.Count, imageBytes, server, grainfs, children, s.Python, s.SiloDll, s.CliDll, Progress, s.Batch, s.ComputeMs), ct);
        }

        return (rows, epochs);
    }

    private static async Task<S3rverServer> StartS3rverAsync(ChildProcesses children, Settings s, CancellationToken ct)
    {
        if (!File.Exists(s.S3rver))
        {
            throw new HarnessException($"s3rver is not installed at {s.S3rver} (infra/bench/run.sh installs it with npm)");
        }

        var log = children.LogOf("s3rver");
        try
        {
            return children.Track("s3rver", await S3rverServer.StartAsync(s.S3rver, Path.Combine(s.Work, "s3rver"), "bench", log, ct));
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or System.ComponentModel.Win32Exception)
        {
            throw new HarnessException($"s3rver did not start ({e.Message.Split('\n')[0]}); see {log}");
        }
    }

    private static async Task MeasureAsync(Settings s, BenchSystem system, Row row, List<string> images, List<string> large, CancellationToken ct)
    {
        var name = system.Name;
        var cold = new List<double>();
        for (var r = 0; r < s.ColdRepeats; r++)
        {
            Progress($"{name}: cold random small-file reads ({r + 1}/{s.ColdRepeats})");
            await system.MakeColdAsync(ct);
            cold.Add(await ReadSmallAsync(system, images, s.Readers, r, ct));
        }

        row.ColdSmall = Median(cold);
        var warm = new List<double>();
        for (var r = 0; r < s.Repeats; r++)
        {
            Progress($"{name}: warm random small-file reads ({r + 1}/{s.Repeats})");
            warm.Add(await ReadSmallAsync(system, images, s.Readers, 100 + (r * 1000), ct, warm: true));
        }

        row.WarmSmall = Median(warm);
        var coldLarge = new List<double>();
        var warmLarge = new List<double>();
        for (var r = 0; r < s.ColdRepeats; r++)
        {
            Progress($"{name}: cold sequential large-file read ({r + 1}/{s.ColdRepeats})");
            await system.MakeColdAsync(ct);
            coldLarge.Add(await ReadLargeAsync(system, large[r % large.Count], ct));
            Progress($"{name}: warm sequential large-file read ({r + 1}/{s.ColdRepeats})");
            warmLarge.Add(await ReadLargeAsync(system, large[r % large.Count], ct, warm: true));
        }

        for (var r = s.ColdRepeats; r < s.Repeats; r++)
        {
            warmLarge.Add(await ReadLargeAsync(system, large[(r - 1) % large.Count], ct, warm: true));
        }

        row.ColdLarge = Median(coldLarge);
        row.WarmLarge = Median(warmLarge);
        var metadata = new List<double>();
        for (var r = 0; r < s.Repeats; r++)
        {
            Progress($"{name}: metadata pass ({r + 1}/{s.Repeats})");
            var clock = Stopwatch.StartNew();
            var count = await system.MetadataPassAsync(ct);
            metadata.Add(count / clock.Elapsed.TotalSeconds);
        }

        row.Metadata = Median(metadata);
        Progress($"{name}: pre-warm");
        await system.MakeColdAsync(ct);
        row.PrewarmSeconds = (await system.PrewarmAsync(images.Concat(large).ToList(), ct))?.TotalSeconds;
        if (row.PrewarmSeconds is null)
        {
            // Nothing to warm: read everything once so the DataLoader and the emulation see the system warm.
            await ReadSmallAsync(system, images, s.Readers, 7, ct);
        }

        if (system.Folder is { } folder)
        {
            row.LoaderRaw = await DataLoaderAsync(s, name, folder, "raw", 0, ct);
            row.LoaderDecode = await DataLoaderAsync(s, name, folder, "decode", 2, ct);
        }

        Progress($"{name}: accelerator emulation (batch {s.Batch}, {s.ComputeMs} ms per batch)");
        (row.Accelerators, row.Utilisation) = await EmulateAsync(s, system, images, ct);
        if (system.Folder is { } files)
        {
            // Warm, as the rows above left it: the large file read once more first, the images by the emulation.
            await system.ReadLargeAsync(large[0], ct);
            row.Fio = [];
            foreach (var job in FioJobs.All)
            {
                Progress($"{name}: {job.Name} ({job.Description}, {FioJobs.Runtime} s)");
                row.Fio[job.Name] = await FioJobs.RunAsync(job, files, large[0], ct);
            }
        }

        Progress($"{name}: done (accelerators at >=90%: {row.Accelerators})");
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }

    /// <summary>A warm sample lasts at least this long (whole passes), so that tens of milliseconds of a fast system are not timed alone.</summary>
    private static readonly TimeSpan WarmSample = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Reads every image in a random order with <paramref name="readers"/> readers; files per second. A cold sample is
    /// one pass; a warm one repeats passes (each in a new order) until it has lasted <see cref="WarmSample"/>.
    /// </summary>
    private static async Task<double> ReadSmallAsync(BenchSystem system, List<string> images, int readers, int seed, CancellationToken ct, bool warm = false)
    {
        var clock = Stopwatch.StartNew();
        var files = 0L;
        do
        {
            var order = images.ToArray();
            new Random(seed++).Shuffle(order);
            var next = -1;
            await Task.WhenAll(Enumerable.Range(0, readers).Select(_ => Task.Run(async () =>
            {
                var buffer = new byte[512 * 1024];
                int i;
                while ((i = Interlocked.Increment(ref next)) < order.Length)
                {
                    if (await system.ReadAsync(order[i], buffer, ct) <= 0)
                    {
                        throw new InvalidOperationException($"{system.Name} returned no bytes for {order[i]}");
                    }
                }
            }, ct)));
            files += order.Length;
        }
        while (warm && clock.Elapsed < WarmSample);

        return files / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Reads <paramref name="file"/> whole; MB/s. A warm sample repeats the read until it has lasted <see cref="WarmSample"/>.</summary>
    private static async Task<double> ReadLargeAsync(BenchSystem system, string file, CancellationToken ct, bool warm = false)
    {
        var clock = Stopwatch.StartNew();
        var bytes = 0L;
        do
        {
            bytes += await system.ReadLargeAsync(file, ct);
        }
        while (warm && clock.Elapsed < WarmSample);

        return bytes / clock.Elapsed.TotalSeconds / 1e6;
    }

    private static async Task<double> DataLoaderAsync(Settings s, string name, string folder, string mode, int workers, CancellationToken ct)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "dataloader_epoch.py");
        var results = new List<double>();
        for (var r = 0; r <= s.Repeats; r++)
        {
            Progress($"{name}: DataLoader epoch, {mode} ({r}/{s.Repeats}{(r == 0 ? ", warm-up" : string.Empty)})");
            using var python = Process.Start(new ProcessStartInfo(s.Python, [script, folder, mode, workers.ToString(CultureInfo.InvariantCulture)]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var output = await python.StandardOutput.ReadToEndAsync(ct);
            var error = await python.StandardError.ReadToEndAsync(ct);
            await python.WaitForExitAsync(ct);
            if (python.ExitCode != 0)
            {
                throw new InvalidOperationException($"the DataLoader over {folder} failed: {error.Trim().Split('\n').LastOrDefault()}");
            }

            if (r > 0)
            {
                results.Add(double.Parse(output.Trim(), CultureInfo.InvariantCulture));
            }
        }

        return Median(results);
    }

    /// <summary>
    /// MLPerf-Storage-style: <c>readers</c> loader tasks read random samples into a bounded queue; each simulated
    /// accelerator takes a batch and "computes" for a fixed time. Utilisation is compute time over wall time. The
    /// count doubles while every accelerator stays at least 90% busy, then bisects between the last count that kept
    /// them busy and the first that did not (to within an eighth); the largest count kept busy is reported.
    /// </summary>
    private static async Task<(int Accelerators, double Utilisation)> EmulateAsync(Settings s, BenchSystem system, List<string> images, CancellationToken ct)
    {
        var best = 0;
        var bestUtilisation = 0.0;
        var failed = 0;
        for (var accelerators = 1; accelerators <= s.MaxAccelerators; accelerators *= 2)
        {
            var utilisation = await RunAsync(accelerators);
            if (utilisation < 0.9)
            {
                failed = accelerators;
                break;
            }

            best = accelerators;
            bestUtilisation = utilisation;
        }

        while (best > 0 && failed > 0 && failed - best > Math.Max(1, best / 8))
        {
            var middle = (best + failed) / 2;
            var utilisation = await RunAsync(middle);
            if (utilisation < 0.9)
            {
                failed = middle;
            }
            else
            {
                best = middle;
                bestUtilisation = utilisation;
            }
        }

        return (best, bestUtilisation);

        async Task<double> RunAsync(int accelerators)
        {
            var utilisation = await EmulationRunAsync(s, system, images, accelerators, ct);
            Progress(string.Create(CultureInfo.InvariantCulture, $"{system.Name}: {accelerators} accelerator(s) at {utilisation:P1}"));
            return utilisation;
        }
    }

    private static async Task<double> EmulationRunAsync(Settings s, BenchSystem system, List<string> images, int accelerators, CancellationToken ct)
    {
        const int BatchesPerAccelerator = 10;
        // Like DataLoader workers, each loader assembles whole batches and keeps at most two ready (prefetch_factor 2);
        // an accelerator takes one ready batch at a time.
        var queue = Channel.CreateBounded<int>(new BoundedChannelOptions(s.Readers * 2) { SingleReader = false, SingleWriter = false });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var loaders = Enumerable.Range(0, s.Readers).Select(r => Task.Run(async () =>
        {
            var random = new Random(r);
            var buffer = new byte[512 * 1024];
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    var bytes = 0;
                    for (var i = 0; i < s.Batch; i++)
                    {
                        bytes += await system.ReadAsync(images[random.Next(images.Count)], buffer, stop.Token);
                    }

                    await queue.Writer.WriteAsync(bytes, stop.Token);
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
            }
        })).ToArray();

        // Each accelerator's time counts from its first batch: the pipeline's fill is a start-up cost a real run of
        // many thousands of steps amortises, and with a few steps here it would dominate.
        var computeTicks = 0L;
        var busyWallTicks = 0L;
        await Task.WhenAll(Enumerable.Range(0, accelerators).Select(_ => Task.Run(async () =>
        {
            await queue.Reader.ReadAsync(ct);
            var clock = Stopwatch.StartNew();
            for (var b = 0; b < BatchesPerAccelerator; b++)
            {
                if (b > 0)
                {
                    await queue.Reader.ReadAsync(ct);
                }

                var compute = Stopwatch.StartNew();
                await Task.Delay(s.ComputeMs, ct);
                Interlocked.Add(ref computeTicks, compute.Elapsed.Ticks);
            }

            Interlocked.Add(ref busyWallTicks, clock.Elapsed.Ticks);
        }, ct)));
        await stop.CancelAsync();
        await Task.WhenAll(loaders);
        return computeTicks / (double)busyWallTicks;
    }

    // ------------------------------------------------------------------ data

    private static async Task<(List<string> Images, List<string> Large)> MakeDatasetAsync(Settings s, string dataset, CancellationToken ct)
    {
        // Class folders sit at the top of the bucket: s3rver 3.7 leaves out of a delimited listing every common
        // prefix whose keys nest more than one level below it, which would hide an images/<class>/ layout.
        var marker = Path.Combine(dataset, $".complete-v2-{s.Images}-{s.LargeFiles}-{s.LargeMib}");
        var imagesRoot = dataset;
        if (!File.Exists(marker))
        {
            Progress($"generating the dataset: {s.Images:N0} ImageNet-like JPEGs (~100 KB) in 100 class folders and {s.LargeFiles} × {s.LargeMib} MiB files");
            if (Directory.Exists(dataset))
            {
                Directory.Delete(dataset, recursive: true);
            }

            Directory.CreateDirectory(dataset);
            var script = $$"""
                import os
                from PIL import Image
                root = "{{imagesRoot}}"
                for i in range({{s.Images}}):
                    d = os.path.join(root, f"n{i % 100:08d}")
                    os.makedirs(d, exist_ok=True)
                    Image.frombytes("RGB", (200, 200), os.urandom(200 * 200 * 3)).save(os.path.join(d, f"img_{i:07d}.jpg"), quality=96, subsampling=0)
                """;
            using (var python = Process.Start(s.Python, ["-c", script]))
            {
                await python!.WaitForExitAsync(ct);
                if (python.ExitCode != 0)
                {
                    throw new HarnessException("generating the JPEGs failed (apt-get install python3-pil)");
                }
            }

            Directory.CreateDirectory(Path.Combine(dataset, "large"));
            var chunk = new byte[4 << 20];
            var random = new Random(8);
            for (var f = 0; f < s.LargeFiles; f++)
            {
                await using var file = File.Create(Path.Combine(dataset, "large", $"video{f}.bin"));
                for (var written = 0L; written < (long)s.LargeMib << 20; written += chunk.Length)
                {
                    random.NextBytes(chunk);
                    await file.WriteAsync(chunk, ct);
                }
            }

            await File.WriteAllTextAsync(marker, "ok", ct);
        }

        var images = Directory.EnumerateFiles(imagesRoot, "*.jpg", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(dataset, f)).Order(StringComparer.Ordinal).ToList();
        var large = Directory.EnumerateFiles(Path.Combine(dataset, "large")).Select(f => Path.GetRelativePath(dataset, f)).Order(StringComparer.Ordinal).ToList();
        return (images, large);
    }

    private static async Task UploadAsync(S3rverServer server, string dataset, List<string> files, CancellationToken ct)
    {
        using var client = server.Client();
        var existing = new HashSet<string>(StringComparer.Ordinal);
        string? token = null;
        do
        {
            var page = await client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = server.Bucket, ContinuationToken = token }, ct);
            existing.UnionWith((page.S3Objects ?? []).Select(o => o.Key));
            token = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (token is not null);

        var missing = files.Where(f => !existing.Contains(f)).ToList();
        // Plain uploads: s3rver 3.7 would store aws-chunked bodies, signatures and all, as the object's bytes.
        await Parallel.ForEachAsync(missing, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = ct }, async (file, token2) =>
            await client.PutObjectAsync(new PutObjectRequest { BucketName = server.Bucket, Key = file, FilePath = Path.Combine(dataset, file), UseChunkEncoding = false }, token2));
        Progress($"s3rver holds the dataset ({missing.Count:N0} objects uploaded now)");
    }

    // ------------------------------------------------------------------ output

    private static async Task WriteResultsAsync(Settings s, List<Row> rows, List<EpochRow>? epochs, CancellationToken ct)
    {
        Directory.CreateDirectory(s.Output);
        var stamp = DateTime.UtcNow.ToString("yyyy-MM-dd-HHmm", CultureInfo.InvariantCulture);
        var markdown = Path.Combine(s.Output, $"compare-{stamp}.md");
        var json = Path.Combine(s.Output, $"compare-{stamp}.json");
        var png = Path.Combine(s.Output, $"compare-{stamp}.png");
        await File.WriteAllTextAsync(json, JsonSerializer.Serialize(rows, new JsonSerializerOptions { WriteIndented = true }), ct);
        if (epochs is not null)
        {
            await File.WriteAllTextAsync(Path.ChangeExtension(json, null) + "-epochs.json", JsonSerializer.Serialize(epochs, new JsonSerializerOptions { WriteIndented = true }), ct);
        }

        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"# GrainFS against the alternatives — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        text.AppendLine();
        var given = Environment.GetCommandLineArgs().Skip(2).ToList();
        var shown = new List<string>();
        for (var i = 0; i < given.Count; i++)
        {
            if (given[i] is "--work" or "--out")
            {
                i++;
                continue;
            }

            shown.Add(given[i]);
        }

        var passed = string.Join(' ', shown);
        text.AppendLine($"Command: `infra/bench/run.sh{(passed.Length > 0 ? " " + passed : string.Empty)}`");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Dataset: {s.Images:N0} ImageNet-like JPEGs (~100 KB, 100 class folders) and {s.LargeFiles} × {s.LargeMib} MiB files, on s3rver (Node, range-aware) on loopback; moto was not used (it reads the whole object for each ranged GET). Readers: {s.Readers}. Medians of {s.Repeats} warm and {s.ColdRepeats} cold repeats; a warm sample repeats whole passes until it has lasted {WarmSample.TotalSeconds:F0} s. Cold: every cache of the system dropped (GrainFS `fs free`, rclone and s3fs restarted with empty cache folders) and the kernel's caches dropped.");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Accelerator emulation (MLPerf Storage style): each simulated accelerator takes batches of {s.Batch} samples and computes {s.ComputeMs} ms per batch (a ResNet-50 step), fed by {s.Readers} loaders that each assemble whole batches and keep at most two ready each (as DataLoader workers do with prefetch_factor 2); the count doubles from 1 while every accelerator is ≥ 90% busy (cap {s.MaxAccelerators}), then bisects between the last count kept busy and the first that was not, to within an eighth. Utilisation is compute time over each accelerator's time from its first batch, over 10 batches.");
        text.AppendLine();
        text.AppendLine("## Absolute figures");
        text.AppendLine();
        text.AppendLine("| system | source | cold small files/s | warm small files/s | cold large MB/s | warm large MB/s | metadata files/s | pre-warm s | DataLoader raw samples/s | DataLoader decode samples/s | accelerators at ≥90% |");
        text.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var r in rows)
        {
            text.AppendLine(r.Failure is not null
                ? $"| {r.System} | {r.Source} | failed: {r.Failure} | | | | | | | | |"
                : $"| {r.System} | {r.Source} | {F(r.ColdSmall)} | {F(r.WarmSmall)} | {F(r.ColdLarge)} | {F(r.WarmLarge)} | {F(r.Metadata)} | {F(r.PrewarmSeconds, "F1")} | {F(r.LoaderRaw)} | {F(r.LoaderDecode)} | {(r.Accelerators is { } a ? a.ToString(CultureInfo.InvariantCulture) : "—")} |");
        }

        foreach (var baseline in new[] { "local disk", "direct S3" })
        {
            var b = rows.FirstOrDefault(r => r.System == baseline && r.Failure is null);
            if (b is null)
            {
                continue;
            }

            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"## Ratios to {baseline} (same run)");
            text.AppendLine();
            text.AppendLine("| system | cold small | warm small | cold large | warm large | metadata | DataLoader raw | DataLoader decode | accelerators at ≥90% |");
            text.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
            foreach (var r in rows.Where(r => r.Failure is null))
            {
                text.AppendLine($"| {r.System} | {Ratio(r.ColdSmall, b.ColdSmall)} | {Ratio(r.WarmSmall, b.WarmSmall)} | {Ratio(r.ColdLarge, b.ColdLarge)} | {Ratio(r.WarmLarge, b.WarmLarge)} | {Ratio(r.Metadata, b.Metadata)} | {Ratio(r.LoaderRaw, b.LoaderRaw)} | {Ratio(r.LoaderDecode, b.LoaderDecode)} | {Ratio(r.Accelerators, b.Accelerators)} |");
            }
        }

        var fio = rows.Where(r => r.Failure is null && r.Fio is not null).ToList();
        var local = fio.FirstOrDefault(r => r.System == "local disk");
        if (fio.Count > 0)
        {
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"## fio, warm (MB/s, and the ratio to local disk)");
            text.AppendLine();
            text.AppendLine(string.Join(' ', FioJobs.All.Select(j => $"`{j.Name}`: {j.Description}.")) + $" Each job runs {FioJobs.Runtime} s, time-based, with fio's defaults otherwise: `invalidate=1` drops the kernel's page cache of the files first, so the reads reach each system (the disk, GrainFS's tiers through its daemon, rclone's and s3fs's cache folders) rather than only the kernel's cache.");
            text.AppendLine();
            text.AppendLine("| system | " + string.Join(" | ", FioJobs.All.Select(j => $"{j.Name} MB/s | {j.Name} vs local")) + " |");
            text.AppendLine("| --- |" + string.Concat(Enumerable.Repeat(" --- | --- |", FioJobs.All.Length)));
            foreach (var r in fio)
            {
                text.AppendLine($"| {r.System} | " + string.Join(" | ", FioJobs.All.Select(j => $"{F(r.Fio!.GetValueOrDefault(j.Name))} | {Ratio(r.Fio!.GetValueOrDefault(j.Name), local?.Fio?.GetValueOrDefault(j.Name))}")) + " |");
            }
        }

        if (epochs is not null)
        {
            text.AppendLine();
            text.Append(EpochRows.Markdown(epochs, s.Batch, s.ComputeMs, rows.FirstOrDefault(r => r.System == "direct S3")?.ColdSmall ?? 0));
        }

        text.AppendLine();
        text.AppendLine("## Machine");
        text.AppendLine();
        text.AppendLine(await MachineAsync(ct));
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Chart: `{Path.GetFileName(png)}`; raw figures: `{Path.GetFileName(json)}`; logs of the systems: `{Path.Combine(s.Work, "logs")}`.");
        await File.WriteAllTextAsync(markdown, text.ToString(), ct);

        var chart = Path.Combine(AppContext.BaseDirectory, "compare_chart.py");
        using var python = Process.Start(new ProcessStartInfo(s.Python, [chart, json, png]) { RedirectStandardError = true })!;
        var error = await python.StandardError.ReadToEndAsync(ct);
        await python.WaitForExitAsync(ct);
        if (python.ExitCode != 0)
        {
            throw new HarnessException($"drawing the chart failed: {error.Trim()}");
        }

        Console.WriteLine(text.ToString());
        Progress($"results: {markdown}, chart: {png}");
    }

    private static string F(double? value, string format = "N0") => value is { } v ? v.ToString(format, CultureInfo.InvariantCulture) : "—";

    private static string Ratio(double? value, double? baseline) =>
        value is { } v && baseline is { } b && b > 0 ? (v / b).ToString("F2", CultureInfo.InvariantCulture) : "—";

    private static async Task<string> MachineAsync(CancellationToken ct)
    {
        async Task<string> Run(string file, params string[] args)
        {
            try
            {
                using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
                var output = await p.StandardOutput.ReadToEndAsync(ct) + await p.StandardError.ReadToEndAsync(ct);
                await p.WaitForExitAsync(ct);
                return output.Trim().Split('\n')[0];
            }
            catch (System.ComponentModel.Win32Exception)
            {
                return "not installed";
            }
        }

        var cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
        var memory = File.ReadLines("/proc/meminfo").First().Split(':', 2)[1].Trim();
        var lines = new[]
        {
            $"- CPU: {Environment.ProcessorCount} × {cpu}",
            $"- memory: {memory}",
            $"- kernel: {await Run("uname", "-r")}; {RuntimeInformation.OSDescription}",
            $"- .NET {Environment.Version}; {await Run("rclone", "version")}; {await Run("s3fs", "--version")}; fusermount3 {await Run("fusermount3", "--version")}; node {await Run("node", "--version")}",
        };
        return string.Join('\n', lines);
    }
}
