using System.Diagnostics;
using System.Globalization;
using GrainFs.Client;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Benchmarks;

/// <summary>
/// Caches the entries of N local files across directories (or, with --flat, all in one directory, as datasets put
/// millions of objects under one prefix) in an embedded silo process, then prints silo memory per cached entry,
/// listing entries/s, uncached stat throughput and latency through the SDK next to the stat system call on the same
/// files, and the time of `ls -f | wc -l` of a directory through a FUSE mount next to local disk, all in one run.
/// </summary>
internal static class MetadataBenchmark
{
    public static async Task<int> RunAsync(BenchArgs args)
    {
        var entries = args.Int("--entries", 1_000_000);
        var flat = args.Text("--flat", "false") == "true";
        var perDirectory = flat ? entries : args.Int("--per-dir", 1000);
        var samples = args.Int("--samples", 200_000);
        var folder = args.Text("--folder", Path.Combine(Path.GetTempPath(), "grainfs-bench", $"meta-{entries}-{perDirectory}"));
        var directories = (entries + perDirectory - 1) / perDirectory;

        Console.WriteLine($"# metadata benchmark: {entries:N0} files in {directories:N0} director{(directories == 1 ? "y" : "ies")} under {folder}");
        var paths = CreateFiles(folder, entries, perDirectory);

        // The small test tiers under the silo's data folder: this benchmark caches entries, not blocks, and the
        // silo's own default MEM tier would stay behind in /dev/shm.
        await using var silo = await SiloProcess.StartAsync("metadata", new SiloProcessOptions { Dll = args.TextOrNull("--silo"), Dashboard = false, ForwardStandardError = true });
        var options = new GrainFsClientOptions { GatewayPort = silo.GatewayPort, MetadataCacheEntries = 0 };
        await using var client = await GrainFsClient.ConnectAsync(options);
        var diagnostics = client.Grains.GetGrain<IDiagnosticsGrain>(0);
        var mount = await client.MountAsync("/bench", $"file://{folder}", new Dictionary<string, string> { ["readonly"] = "true" });
        if (!mount.IsOk)
        {
            Console.Error.WriteLine($"mount failed: {mount.Message}");
            return 1;
        }

        var before = await SiloMemoryAsync(diagnostics, silo);
        var clock = Stopwatch.StartNew();
        long listed = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, directories), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (d, ct) =>
        {
            await foreach (var _ in client.ListAsync($"/bench/d{d:D5}", ct))
            {
                Interlocked.Increment(ref listed);
            }
        });
        var listSeconds = clock.Elapsed.TotalSeconds;
        var after = await SiloMemoryAsync(diagnostics, silo);
        if (listed != entries)
        {
            Console.Error.WriteLine($"listed {listed} entries, expected {entries}");
            return 1;
        }

        var heapPerEntry = (double)(after.Managed - before.Managed) / entries;
        var rssPerEntry = (double)(after.Rss - before.Rss) / entries;
        Console.WriteLine($"cold listing (under-storage → grains → SDK): {entries:N0} entries in {listSeconds:F1} s = {entries / listSeconds:N0} entries/s");
        Console.WriteLine($"silo managed heap: {Mb(before.Managed)} → {Mb(after.Managed)}; RSS {Mb(before.Rss)} → {Mb(after.Rss)}");
        Console.WriteLine($"silo memory per cached entry: {heapPerEntry:F0} bytes managed heap (goal ≤ 200), {rssPerEntry:F0} bytes RSS; " +
            $"entry tables alone {(double)after.TableBytes / Math.Max(1, after.Entries):F0} bytes ({after.Entries:N0} entries held)");

        var random = new Random(42);
        var sample = new string[samples];
        for (var i = 0; i < samples; i++)
        {
            sample[i] = paths[random.Next(paths.Length)];
        }

        // Baseline: the stat system call on the same local files, warm (page cache and dentry cache hot).
        var statWarm = StatSyscall(folder, sample, 1);
        var statSingle = StatSyscall(folder, sample, 1);
        var statParallel = StatSyscall(folder, sample, Environment.ProcessorCount);
        Console.WriteLine();
        Console.WriteLine("| path | in flight | ops/s | p50 µs | p99 µs | ratio to stat(2), 1 thread |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- |");
        Console.WriteLine(Row("stat(2) local files", "1 thread", statSingle, statSingle.OpsPerSecond));
        Console.WriteLine(Row("stat(2) local files", $"{Environment.ProcessorCount} threads", statParallel, statSingle.OpsPerSecond));
        _ = statWarm;
        foreach (var inFlight in args.Ints("--in-flight", [1, 16, 64, 256]))
        {
            var result = await SdkStatAsync(client, sample, inFlight);
            Console.WriteLine(Row("GrainFS SDK stat, uncached", inFlight.ToString(CultureInfo.InvariantCulture), result, statSingle.OpsPerSecond));
        }

        // The warm path: answers from the client's metadata cache ask no grain at all.
        await using var cached = await GrainFsClient.ConnectAsync(new GrainFsClientOptions { GatewayPort = silo.GatewayPort, MetadataCacheEntries = entries + 1 });
        await SdkStatAsync(cached, sample, 64);
        foreach (var inFlight in new[] { 1, Environment.ProcessorCount })
        {
            var warm = await SdkStatAsync(cached, sample, inFlight, all: true);
            Console.WriteLine(Row("GrainFS SDK stat, client-cached", inFlight.ToString(CultureInfo.InvariantCulture), warm, statSingle.OpsPerSecond));
        }

        await ListThroughFuseAsync(silo, folder, Math.Min(entries, perDirectory));
        return 0;
    }

    // `ls -f | wc -l` of the first directory through a FUSE mount of the silo (first and second time: the kernel keeps
    // the listing in its page cache) next to the same command on local disk (dentries warm).
    private static async Task ListThroughFuseAsync(SiloProcess silo, string folder, int expected)
    {
        var local = Path.Combine(folder, "d00000");
        await using var mount = await FuseProcess.StartAsync(silo, ["--read-only"]);
        var remote = Path.Combine(mount.MountPoint, "bench", "d00000");
        var rows = new List<string>();
        foreach (var (name, path) in new[] { ("local disk", local), ("local disk, again", local), ("GrainFS FUSE, first", remote), ("GrainFS FUSE, again", remote) })
        {
            var clock = Stopwatch.StartNew();
            var count = await CountEntriesAsync(path);
            var seconds = clock.Elapsed.TotalSeconds;
            // ls -f lists . and .. too.
            if (count != expected + 2)
            {
                throw new InvalidOperationException($"ls -f {path} listed {count} names, expected {expected + 2}");
            }

            rows.Add(string.Create(CultureInfo.InvariantCulture, $"| {name} | {count - 2:N0} | {seconds:F2} | {(count - 2) / seconds:N0} |"));
        }

        Console.WriteLine();
        Console.WriteLine("| `ls -f | wc -l` of d00000 | entries | seconds | entries/s |");
        Console.WriteLine("| --- | --- | --- | --- |");
        rows.ForEach(Console.WriteLine);
    }

    private static async Task<long> CountEntriesAsync(string directory)
    {
        using var shell = Process.Start(new ProcessStartInfo("bash", ["-c", "ls -f \"$1\" | wc -l", "ls", directory]) { RedirectStandardOutput = true })!;
        var output = await shell.StandardOutput.ReadToEndAsync();
        await shell.WaitForExitAsync();
        return shell.ExitCode == 0 ? long.Parse(output.Trim(), CultureInfo.InvariantCulture) : throw new InvalidOperationException($"ls -f {directory} failed (exit {shell.ExitCode})");
    }

    private static string Row(string name, string inFlight, Measured m, double baseline) =>
        string.Create(CultureInfo.InvariantCulture, $"| {name} | {inFlight} | {m.OpsPerSecond:N0} | {m.P50Us:F1} | {m.P99Us:F1} | {m.OpsPerSecond / baseline:F3} |");

    private static string Mb(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1048576.0:F1} MiB");

    private static string[] CreateFiles(string folder, int entries, int perDirectory)
    {
        var marker = Path.Combine(folder, ".complete");
        var paths = new string[entries];
        for (var i = 0; i < entries; i++)
        {
            paths[i] = $"d{i / perDirectory:D5}/n{(uint)(i * 2654435761u) % 100_000_000:D8}_{i % perDirectory}.JPEG";
        }

        if (File.Exists(marker))
        {
            return paths;
        }

        var clock = Stopwatch.StartNew();
        var random = new Random(1);
        var sizes = Enumerable.Range(0, entries).Select(_ => (long)random.Next(20_000, 200_000)).ToArray();
        for (var d = 0; d < (entries + perDirectory - 1) / perDirectory; d++)
        {
            Directory.CreateDirectory(Path.Combine(folder, $"d{d:D5}"));
        }

        // In chunks rather than per directory, so that one flat directory of millions is made in parallel too.
        const int Chunk = 10_000;
        Parallel.For(0, (entries + Chunk - 1) / Chunk, c =>
        {
            for (var i = c * Chunk; i < Math.Min(entries, (c + 1) * Chunk); i++)
            {
                using var file = File.Create(Path.Combine(folder, paths[i]));
                file.SetLength(sizes[i]); // sparse: the size is real, the blocks are not written
            }
        });
        File.WriteAllText(marker, "ok");
        Console.WriteLine($"created {entries:N0} files in {clock.Elapsed.TotalSeconds:F1} s");
        return paths;
    }

    private readonly record struct Measured(double OpsPerSecond, double P50Us, double P99Us);

    private static Measured Summarize(long[] ticks, double seconds)
    {
        Array.Sort(ticks);
        double Us(double q) => ticks[(int)Math.Min(ticks.Length - 1, q * ticks.Length)] * 1e6 / Stopwatch.Frequency;
        return new Measured(ticks.Length / seconds, Us(0.50), Us(0.99));
    }

    private static Measured StatSyscall(string folder, string[] sample, int threads)
    {
        var ticks = new long[sample.Length];
        var clock = Stopwatch.StartNew();
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
        {
            for (var i = t; i < sample.Length; i += threads)
            {
                var start = Stopwatch.GetTimestamp();
                var info = new FileInfo(Path.Combine(folder, sample[i]));
                if (info.Length < 0)
                {
                    throw new InvalidOperationException("impossible size");
                }

                ticks[i] = Stopwatch.GetTimestamp() - start;
            }
        });
        return Summarize(ticks, clock.Elapsed.TotalSeconds);
    }

    private static async Task<Measured> SdkStatAsync(GrainFsClient client, string[] sample, int inFlight, bool all = false)
    {
        var count = inFlight == 1 && !all ? Math.Min(sample.Length, 20_000) : sample.Length;
        var ticks = new long[count];
        var next = -1;
        var failures = 0;
        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, inFlight).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                var start = Stopwatch.GetTimestamp();
                var result = await client.StatAsync("/bench/" + sample[i]).ConfigureAwait(false);
                ticks[i] = Stopwatch.GetTimestamp() - start;
                if (!result.IsOk)
                {
                    Interlocked.Increment(ref failures);
                }
            }
        }).ToArray();
        await Task.WhenAll(workers);
        if (failures > 0)
        {
            throw new InvalidOperationException($"{failures} stats failed");
        }

        return Summarize(ticks, clock.Elapsed.TotalSeconds);
    }

    private readonly record struct Memory(long Managed, long Rss, long Entries, long TableBytes);

    private static async Task<Memory> SiloMemoryAsync(IDiagnosticsGrain diagnostics, SiloProcess silo)
    {
        var d = await diagnostics.GetSiloAsync(collect: true);
        return new Memory(d.ManagedHeapBytes, silo.ResidentBytes(), d.CachedEntries, d.TableBytes);
    }
}
