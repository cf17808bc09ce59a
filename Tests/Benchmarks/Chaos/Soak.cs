using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using GrainFs.Client;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Benchmarks.Chaos;

/// <summary>
/// The soak (infra/chaos/soak.sh): the fault suite's deployment under mixed reads and writes from several processes —
/// this one through the SDK (2 readers of the dataset, a reader of written files, a writer), a Python reader and a
/// Python writer through the FUSE mount — for <c>--minutes</c>, with silo B killed (SIGKILL) and started again every
/// <c>--kill-every</c> seconds. Every read is checked byte for byte, every acknowledged write is checked in the
/// under-storage folder at the end; every process's memory, threads and open files are sampled, and the memory slope
/// printed. Exit 0 when nothing was wrong or lost and no error came outside a restart of a silo.
/// </summary>
internal static partial class Soak
{
    public static async Task<int> RunAsync(BenchArgs args)
    {
        var duration = TimeSpan.FromMinutes(args.Int("--minutes", 30));
        var killEvery = TimeSpan.FromSeconds(args.Int("--kill-every", 180));
        var sampleEvery = TimeSpan.FromSeconds(args.Int("--sample", 20));
        var work = TestProcess.NewFolder("soak");
        await using var d = await ChaosDeployment.StartAsync(work, Progress);
        var script = Path.Combine(Repo.Root, "infra", "chaos", "soak_fuse.py");
        var manifest = Path.Combine(work, "manifest");
        await File.WriteAllLinesAsync(manifest, d.Expected.Select((bytes, i) => $"{ChaosDeployment.Name(i)} {Hash(bytes)}"));
        var pythonAcked = Path.Combine(work, "fuse-acked");
        var pyReader = TestProcess.Start("/usr/bin/python3", [script, "read", Path.Combine(d.Fuse.MountPoint, "ds"), manifest]);
        var pyWriter = TestProcess.Start("/usr/bin/python3", [script, "write", Path.Combine(d.Fuse.MountPoint, "w"), pythonAcked]);

        var load = new SdkLoad(d.Client, d.Expected);
        var verifier = new Verifier(d.Client, d.Writes, load, pythonAcked);
        using var stop = new CancellationTokenSource();
        var workers = load.Start(stop.Token);
        using var stopVerifying = new CancellationTokenSource();
        var verifying = Task.Run(() => verifier.RunAsync(stopVerifying.Token));
        var samples = new List<Sample>();
        var restarts = new List<(DateTime Killed, DateTime Serving)>();
        var clock = Stopwatch.StartNew();
        var nextKill = killEvery;
        var nextSample = TimeSpan.Zero;
        Progress($"soak: {duration.TotalMinutes:0} min, silo B killed every {killEvery.TotalSeconds:0} s, samples every {sampleEvery.TotalSeconds:0} s");
        while (clock.Elapsed < duration)
        {
            if (clock.Elapsed >= nextSample)
            {
                nextSample += sampleEvery;
                var now = clock.Elapsed.TotalMinutes;
                foreach (var (name, pid) in d.Processes().Append(("SDK process (this one)", Environment.ProcessId)).Append(("Python FUSE reader", pyReader.Id)).Append(("Python FUSE writer", pyWriter.Id)))
                {
                    if (Sample.Of(name, pid, now) is { } sample)
                    {
                        samples.Add(sample with { Heap = await HeapOfAsync(d, name) });
                    }
                }
            }

            if (clock.Elapsed >= nextKill)
            {
                nextKill += killEvery;
                var killed = DateTime.UtcNow;
                Progress($"soak: killing silo B (pid {d.Silos[1].Process.Id}); {load.Summary()}");
                d.KillSilo(1);
                await Task.Delay(TimeSpan.FromSeconds(5));
                await d.StartSiloAgainAsync(1);
                restarts.Add((killed, DateTime.UtcNow));
                Progress($"soak: silo B serving again (pid {d.Silos[1].Process.Id}) after {(DateTime.UtcNow - killed).TotalSeconds:F1} s");
            }

            await Task.Delay(TimeSpan.FromSeconds(1));
        }

        Progress($"soak: stopping the load; {load.Summary()}");
        await stop.CancelAsync();
        await Task.WhenAll(workers);
        pyReader.Terminate();
        pyWriter.Terminate();
        await pyReader.WaitForExitAsync(TimeSpan.FromSeconds(60));
        await pyWriter.WaitForExitAsync(TimeSpan.FromSeconds(60));
        var fuseReads = PythonStats.Parse(pyReader.Output);
        var fuseWrites = PythonStats.Parse(pyWriter.Output);

        Progress("soak: checking the acknowledged writes not checked yet");
        await stopVerifying.CancelAsync();
        await verifying;
        await verifier.DrainAsync();
        var lost = verifier.Lost.ToList();

        // Errors are expected only while silo B is down or rejoining (from its kill until 30 s after it served again).
        bool InRestart(DateTime t) => restarts.Any(r => t >= r.Killed && t <= r.Serving.AddSeconds(30));
        var sdkErrorsOutside = load.Errors.Count(e => !InRestart(e.When));
        var fuseErrorsOutside = fuseReads.ErrorsOutside(InRestart) + fuseWrites.ErrorsOutside(InRestart);
        var report = Report(duration, killEvery, restarts, load, fuseReads, fuseWrites, verifier.Verified, lost, sdkErrorsOutside, samples, InRestart);
        Console.WriteLine(report);
        var results = Directory.CreateDirectory(Path.Combine(Repo.Root, "infra", "chaos", "results")).FullName;
        var file = Path.Combine(results, $"soak-{DateTime.UtcNow:yyyy-MM-dd-HHmm}.md");
        await File.WriteAllTextAsync(file, $"# GrainFS soak — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC\n\nCommand: `infra/chaos/soak.sh --minutes {duration.TotalMinutes:0}`\n\n{report}");
        Progress($"results: {file}");
        await pyReader.DisposeAsync();
        await pyWriter.DisposeAsync();
        var ok = load.Wrong == 0 && fuseReads.Wrong == 0 && lost.Count == 0 && sdkErrorsOutside == 0 && fuseErrorsOutside == 0;
        return ok ? 0 : 1;
    }

    private static string Report(TimeSpan duration, TimeSpan killEvery, List<(DateTime Killed, DateTime Serving)> restarts, SdkLoad load, PythonStats fuseReads, PythonStats fuseWrites, long acked, List<string> lost, int sdkErrorsOutside, List<Sample> samples, Func<DateTime, bool> inRestart)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Deployment: PostgreSQL, s3rver behind a resetting proxy, silos A and B (read,write; A's SSD tier on faultfs.py, B's MEM tier on a tmpfs), a FUSE mount, all on loopback. {duration.TotalMinutes:0} minutes; silo B SIGKILLed every {killEvery.TotalSeconds:0} s and started again 5 s later on its ports and folders ({restarts.Count} times; serving again after {(restarts.Count == 0 ? "—" : string.Join(", ", restarts.Select(r => (r.Serving - r.Killed).TotalSeconds.ToString("F1", CultureInfo.InvariantCulture))))} s).");
        text.AppendLine();
        int Outside(string kind) => load.Errors.Count(e => e.Kind == kind && !restarts.Any(r => e.When >= r.Killed && e.When <= r.Serving.AddSeconds(30)));
        text.AppendLine("| process | through | operations | bytes | errors | errors outside a silo restart | wrong |");
        text.AppendLine("| --- | --- | --- | --- | --- | --- | --- |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| SDK readers (2) of /ds | SDK | {load.DatasetReads:N0} | {load.DatasetBytes:N0} | {load.ReadErrors} | {Outside("read")} | {load.Wrong} |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| SDK reader of written files | SDK | {load.WrittenReads:N0} | {load.WrittenBytes:N0} | {load.WrittenReadErrors} | {Outside("read-written")} | {load.WrongWritten} |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| SDK writer into /w | SDK | {load.Writes:N0} | {load.WriteBytes:N0} | {load.WriteErrors} | {Outside("write")} | — |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| Python reader of /ds | FUSE | {fuseReads.Ops:N0} | {fuseReads.Bytes:N0} | {fuseReads.Errors} | {fuseReads.ErrorsOutside(inRestart)} | {fuseReads.Wrong} |");
        text.AppendLine(CultureInfo.InvariantCulture, $"| Python writer into /w | FUSE | {fuseWrites.Ops:N0} | {fuseWrites.Bytes:N0} | {fuseWrites.Errors} | {fuseWrites.ErrorsOutside(inRestart)} | — |");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Every acknowledged write (SDK: the call returned success; FUSE: close() did) is checked as it goes, 10 s after it was acknowledged: persisted (`PersistAsync`), its bytes in the under-storage folder compared, then removed, so that the directory and the processes' state stay bounded. Checked: {acked:N0}; lost or different: {lost.Count}. SDK errors outside a silo restart: {sdkErrorsOutside}.");
        foreach (var line in lost.Take(10))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"- lost: {line}");
        }

        foreach (var error in load.Errors.Take(10).Select(e => $"{e.When:HH:mm:ss} {e.Kind}: {e.Message.Split('\n')[0]}").Concat(fuseReads.FirstErrors).Concat(fuseWrites.FirstErrors).Take(15))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"- error: {error.Replace('|', '/')}");
        }

        text.AppendLine();
        text.AppendLine("Memory (VmRSS, and the managed heap where the process shows it: a silo's after its last collection, from its runtime metrics; this process's live heap, after a forced full collection), threads and open files of every process, sampled; each slope is a least-squares fit over the samples after the first fifth of the run (for silo B, which is restarted, over the last sample of each of its lives).");
        text.AppendLine();
        text.AppendLine("| process | RSS start / middle / end MiB | RSS slope MiB/h | managed heap start / middle / end MiB | heap slope MiB/h | threads start / end | open files start / end |");
        text.AppendLine("| --- | --- | --- | --- | --- | --- | --- |");
        foreach (var group in samples.GroupBy(s => s.Name))
        {
            var all = group.OrderBy(s => s.Minute).ToList();
            var (first, middle, last) = (all[0], all[all.Count / 2], all[^1]);
            List<Sample> fit;
            if (all.Select(s => s.Pid).Distinct().Count() > 1)
            {
                fit = [.. all.GroupBy(s => s.Pid).Select(life => life.MaxBy(s => s.Minute)!)];
            }
            else
            {
                fit = [.. all.Where(s => s.Minute >= duration.TotalMinutes / 5)];
            }

            var heaps = all.Where(s => s.Heap is not null).ToList();
            var heap = heaps.Count == 0 ? "—" : $"{Mib(heaps[0].Heap!.Value)} / {Mib(heaps[heaps.Count / 2].Heap!.Value)} / {Mib(heaps[^1].Heap!.Value)}";
            text.AppendLine(CultureInfo.InvariantCulture, $"| {group.Key} | {Mib(first.Rss)} / {Mib(middle.Rss)} / {Mib(last.Rss)} | {PerHour(Slope(fit, s => s.Rss))} | {heap} | {PerHour(Slope([.. fit.Where(s => s.Heap is not null)], s => s.Heap!.Value))} | {first.Threads} / {last.Threads} | {first.Files} / {last.Files} |");
        }

        return text.ToString();
    }

    private static string Mib(long bytes) => (bytes / 1048576.0).ToString("F0", CultureInfo.InvariantCulture);

    private static string PerHour(double? slope) => slope is { } v ? v.ToString("+0.0;-0.0", CultureInfo.InvariantCulture) : "—";

    // MiB per hour, least squares over (minute, bytes).
    private static double? Slope(List<Sample> points, Func<Sample, long> bytes)
    {
        if (points.Count < 3)
        {
            return null;
        }

        var mx = points.Average(p => p.Minute);
        var my = points.Average(p => bytes(p) / 1048576.0);
        var sxx = points.Sum(p => (p.Minute - mx) * (p.Minute - mx));
        return sxx == 0 ? null : points.Sum(p => (p.Minute - mx) * ((bytes(p) / 1048576.0) - my)) / sxx * 60;
    }

    /// <summary>
    /// The managed heap: this process's live heap (after a forced full collection), a silo's after its last collection from its metrics endpoint (the runtime's meter,
    /// summed over the generations); null for a process without one (the FUSE processes, Python).
    /// </summary>
    private static async Task<long?> HeapOfAsync(ChaosDeployment d, string name)
    {
        if (name == "SDK process (this one)")
        {
            // The live heap: a full blocking collection first (tens of milliseconds every sample), so that garbage a
            // generation-2 collection has not reached yet does not read as growth.
            return GC.GetTotalMemory(forceFullCollection: true);
        }

        var port = name switch
        {
            "silo A" => d.Silos[0].MetricsPort,
            "silo B" => d.Silos[1].MetricsPort,
            _ => 0,
        };
        if (port == 0)
        {
            return null;
        }

        try
        {
            var text = await Scraper.GetStringAsync(new Uri($"http://127.0.0.1:{port}/metrics"));
            long sum = 0;
            var found = false;
            foreach (var line in text.Split('\n'))
            {
                if (line.StartsWith("dotnet_gc_last_collection_heap_size_bytes{", StringComparison.Ordinal)
                    && double.TryParse(line[(line.LastIndexOf(' ') + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
                {
                    sum += (long)value;
                    found = true;
                }
            }

            return found ? sum : null;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            // A silo being restarted.
            return null;
        }
    }

    private static readonly HttpClient Scraper = new() { Timeout = TimeSpan.FromSeconds(5) };

    private static string Hash(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    private static void Progress(string message) => Console.Error.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {message}");

    /// <summary>One process at one moment: resident memory, threads and open descriptors from /proc.</summary>
    private sealed record Sample(string Name, int Pid, double Minute, long Rss, int Threads, int Files)
    {
        /// <summary>The managed heap after the last GC, where the process shows it.</summary>
        public long? Heap { get; init; }

        public static Sample? Of(string name, int pid, double minute)
        {
            try
            {
                long rss = 0;
                var threads = 0;
                foreach (var line in File.ReadLines($"/proc/{pid}/status"))
                {
                    if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    {
                        rss = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
                    }
                    else if (line.StartsWith("Threads:", StringComparison.Ordinal))
                    {
                        threads = int.Parse(line.Split('\t', ' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
                    }
                }

                return new Sample(name, pid, minute, rss, threads, Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Gone between the listing and the read (a silo being restarted).
                return null;
            }
        }
    }

    /// <summary>The last JSON line a soak_fuse.py process printed.</summary>
    private sealed record PythonStats(long Ops, long Bytes, long Errors, long Wrong, IReadOnlyList<string> FirstErrors)
    {
        /// <summary>Errors not within a restart by their time (HH:mm:ss UTC, today); errors past the timestamped ones count as outside.</summary>
        public long ErrorsOutside(Func<DateTime, bool> inRestart)
        {
            var inside = FirstErrors.Count(e => TimeSpan.TryParseExact(e.Split(' ')[0], @"hh\:mm\:ss", CultureInfo.InvariantCulture, out var t)
                && (inRestart(DateTime.UtcNow.Date + t) || inRestart(DateTime.UtcNow.Date + t + TimeSpan.FromSeconds(1))));
            return Errors - inside;
        }

        public static PythonStats Parse(string output)
        {
            var last = output.Split('\n').LastOrDefault(l => l.TrimStart().StartsWith('{'));
            if (last is null)
            {
                return new PythonStats(0, 0, 1, 0, ["the process printed no figures:\n" + output]);
            }

            using var json = JsonDocument.Parse(last);
            var root = json.RootElement;
            return new PythonStats(
                root.GetProperty("ops").GetInt64(),
                root.GetProperty("bytes").GetInt64(),
                root.GetProperty("errors").GetInt64(),
                root.GetProperty("wrong").GetInt64(),
                [.. root.GetProperty("first_errors").EnumerateArray().Select(e => e.GetString() ?? string.Empty)]);
        }
    }

    /// <summary>The SDK's share of the load, in this process.</summary>
    private sealed class SdkLoad(GrainFsClient client, byte[][] expected)
    {
        private readonly ConcurrentDictionary<string, (string Hash, long Acked)> _written = new(StringComparer.Ordinal);
        private readonly string[] _recent = new string[64];
        private int _recentCount;
        private long _datasetReads;
        private long _datasetBytes;
        private long _writtenReads;
        private long _writtenBytes;
        private long _writes;
        private long _writeBytes;
        private long _readErrors;
        private long _writtenReadErrors;
        private long _writeErrors;
        private long _wrong;
        private long _wrongWritten;
        private int _next;

        public ConcurrentQueue<(DateTime When, string Kind, string Message)> Errors { get; } = new();

        /// <summary>Acknowledged writes not checked yet: name, hash and when (Stopwatch ticks).</summary>
        public ConcurrentDictionary<string, (string Hash, long Acked)> Written => _written;

        public long DatasetReads => Interlocked.Read(ref _datasetReads);

        public long DatasetBytes => Interlocked.Read(ref _datasetBytes);

        public long WrittenReads => Interlocked.Read(ref _writtenReads);

        public long WrittenBytes => Interlocked.Read(ref _writtenBytes);

        public long Writes => Interlocked.Read(ref _writes);

        public long WriteBytes => Interlocked.Read(ref _writeBytes);

        public long ReadErrors => Interlocked.Read(ref _readErrors);

        public long WrittenReadErrors => Interlocked.Read(ref _writtenReadErrors);

        public long WriteErrors => Interlocked.Read(ref _writeErrors);

        public long Wrong => Interlocked.Read(ref _wrong);

        public long WrongWritten => Interlocked.Read(ref _wrongWritten);

        public string Summary() =>
            $"SDK reads {DatasetReads:N0} + {WrittenReads:N0} written, writes {Writes:N0}, errors {ReadErrors}/{WrittenReadErrors}/{WriteErrors}, wrong {Wrong + WrongWritten}";

        public List<Task> Start(CancellationToken stop) =>
        [
            Task.Run(() => ReadDatasetAsync(1, stop)),
            Task.Run(() => ReadDatasetAsync(2, stop)),
            Task.Run(() => ReadWrittenAsync(stop)),
            Task.Run(() => WriteAsync(stop)),
        ];

        private async Task ReadDatasetAsync(int seed, CancellationToken stop)
        {
            var random = new Random(seed);
            var buffer = new byte[ChaosDeployment.FileBytes + ChaosDeployment.Files];
            while (!stop.IsCancellationRequested)
            {
                var i = random.Next(ChaosDeployment.Files);
                var read = await client.ReadAsync("/ds/" + ChaosDeployment.Name(i), 0, buffer, CancellationToken.None);
                if (!read.IsOk)
                {
                    Interlocked.Increment(ref _readErrors);
                    Errors.Enqueue((DateTime.UtcNow, "read", read.Message ?? read.Status.ToString()));
                    await Task.Delay(100, CancellationToken.None);
                    continue;
                }

                Interlocked.Increment(ref _datasetReads);
                Interlocked.Add(ref _datasetBytes, read.Value);
                if (!buffer.AsSpan(0, read.Value).SequenceEqual(expected[i]))
                {
                    Interlocked.Increment(ref _wrong);
                    Errors.Enqueue((DateTime.UtcNow, "wrong", $"/ds/{ChaosDeployment.Name(i)}: {read.Value} bytes, content differs"));
                }
            }
        }

        // Reads back files this process wrote (acknowledged), through the SDK, while they may be neither persisted nor cached.
        private async Task ReadWrittenAsync(CancellationToken stop)
        {
            var random = new Random(7);
            var buffer = new byte[64 << 10];
            while (!stop.IsCancellationRequested)
            {
                // One of the newest files (acknowledged within 5 s: the verifier removes files 10 s after).
                string? name;
                lock (_recent)
                {
                    name = _recentCount == 0 ? null : _recent[(_recentCount - 1 - random.Next(Math.Min(_recentCount, _recent.Length))) % _recent.Length];
                }

                if (name is null || !_written.TryGetValue(name, out var entry) || Stopwatch.GetElapsedTime(entry.Acked) > TimeSpan.FromSeconds(5))
                {
                    await Task.Delay(200, CancellationToken.None);
                    continue;
                }

                var read = await client.ReadAsync("/w/" + name, 0, buffer, CancellationToken.None);
                if (!read.IsOk)
                {
                    Interlocked.Increment(ref _writtenReadErrors);
                    Errors.Enqueue((DateTime.UtcNow, "read-written", read.Message ?? read.Status.ToString()));
                    await Task.Delay(100, CancellationToken.None);
                    continue;
                }

                Interlocked.Increment(ref _writtenReads);
                Interlocked.Add(ref _writtenBytes, read.Value);
                if (Hash(buffer[..read.Value]) != entry.Hash)
                {
                    Interlocked.Increment(ref _wrongWritten);
                    Errors.Enqueue((DateTime.UtcNow, "wrong", $"/w/{name}: {read.Value} bytes, content differs"));
                }

                await Task.Delay(20, CancellationToken.None);
            }
        }

        private async Task WriteAsync(CancellationToken stop)
        {
            var random = new Random(99);
            while (!stop.IsCancellationRequested)
            {
                var bytes = new byte[random.Next(4 << 10, 64 << 10)];
                random.NextBytes(bytes);
                var name = $"sdk-{Interlocked.Increment(ref _next):D6}";
                var written = await client.WriteFileAsync("/w/" + name, new MemoryStream(bytes), cancellationToken: CancellationToken.None);
                if (written.IsOk)
                {
                    _written[name] = (Hash(bytes), Stopwatch.GetTimestamp());
                    lock (_recent)
                    {
                        _recent[_recentCount++ % _recent.Length] = name;
                    }

                    Interlocked.Increment(ref _writes);
                    Interlocked.Add(ref _writeBytes, bytes.Length);
                }
                else
                {
                    Interlocked.Increment(ref _writeErrors);
                    Errors.Enqueue((DateTime.UtcNow, "write", written.Message ?? written.Status.ToString()));
                }

                await Task.Delay(200, CancellationToken.None);
            }
        }
    }

    /// <summary>
    /// Checks acknowledged writes as the soak goes, 10 s after each was acknowledged: persisted, its bytes in the
    /// under-storage folder equal to what was written, then removed (through the SDK) so that nothing grows with the
    /// run's length. A check that fails on a cluster error (a silo restarting) is tried again, up to 5 times.
    /// </summary>
    private sealed class Verifier(GrainFsClient client, string folder, SdkLoad sdk, string pythonAcked)
    {
        private static readonly TimeSpan Age = TimeSpan.FromSeconds(10);
        private readonly ConcurrentDictionary<string, (string Hash, long Acked, int Attempts)> _python = new(StringComparer.Ordinal);
        private readonly Dictionary<string, int> _attempts = new(StringComparer.Ordinal);
        private long _position;
        private long _verified;

        public ConcurrentQueue<string> Lost { get; } = new();

        public long Verified => Interlocked.Read(ref _verified);

        public async Task RunAsync(CancellationToken stop)
        {
            while (!stop.IsCancellationRequested)
            {
                ReadPythonAcked();
                await CheckAsync(all: false);
                try
                {
                    await Task.Delay(1000, stop);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }

        public async Task DrainAsync()
        {
            ReadPythonAcked();
            for (var round = 0; round < 6 && (!sdk.Written.IsEmpty || !_python.IsEmpty); round++)
            {
                await CheckAsync(all: true);
            }

            foreach (var name in sdk.Written.Keys.Concat(_python.Keys))
            {
                Lost.Enqueue($"{name}: not confirmed after 6 attempts");
            }
        }

        private async Task CheckAsync(bool all)
        {
            foreach (var (name, (hash, acked)) in sdk.Written.ToArray())
            {
                if ((all || Stopwatch.GetElapsedTime(acked) >= Age) && await CheckOneAsync(name, hash))
                {
                    sdk.Written.TryRemove(name, out _);
                }
            }

            foreach (var (name, (hash, acked, _)) in _python.ToArray())
            {
                if ((all || Stopwatch.GetElapsedTime(acked) >= Age) && await CheckOneAsync(name, hash))
                {
                    _python.TryRemove(name, out _);
                }
            }
        }

        // True when the write is settled (confirmed and removed, or found lost); false to try again later.
        private async Task<bool> CheckOneAsync(string name, string hash)
        {
            var persisted = await client.PersistAsync("/w/" + name, TimeSpan.FromMinutes(2));
            var local = Path.Combine(folder, name);
            if (persisted.IsOk && File.Exists(local) && Hash(await File.ReadAllBytesAsync(local)) == hash)
            {
                var removed = await client.RemoveAsync("/w/" + name);
                if (!removed.IsOk)
                {
                    // Confirmed; removed on a later round.
                    return Retry(name, $"remove failed: {removed.Message}");
                }

                Interlocked.Increment(ref _verified);
                _attempts.Remove(name);
                return true;
            }

            if (persisted.IsOk)
            {
                Lost.Enqueue($"{name}: {(File.Exists(local) ? "content differs" : "not in under-storage")} although persisted");
                return true;
            }

            return Retry(name, persisted.Message ?? persisted.Status.ToString());
        }

        private bool Retry(string name, string why)
        {
            var attempts = _attempts.GetValueOrDefault(name) + 1;
            _attempts[name] = attempts;
            if (attempts < 6)
            {
                return false;
            }

            Lost.Enqueue($"{name}: {why} (6 attempts)");
            return true;
        }

        // New lines of the Python writer's acknowledgement file ("name sha256"); a line being written is left for later.
        private void ReadPythonAcked()
        {
            if (!File.Exists(pythonAcked))
            {
                return;
            }

            using var file = new FileStream(pythonAcked, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            file.Position = _position;
            var buffer = new byte[file.Length - _position];
            var read = file.Read(buffer);
            var end = Array.LastIndexOf(buffer, (byte)'\n', read - 1 < 0 ? 0 : read - 1);
            if (read == 0 || end < 0)
            {
                return;
            }

            _position += end + 1;
            foreach (var line in Encoding.UTF8.GetString(buffer, 0, end).Split('\n'))
            {
                var parts = line.Split(' ');
                if (parts.Length == 2)
                {
                    _python[parts[0]] = (parts[1], Stopwatch.GetTimestamp(), 0);
                }
            }
        }
    }
}
