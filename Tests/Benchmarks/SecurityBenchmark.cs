using System.Diagnostics;
using System.Globalization;
using System.Text;
using GrainFs.Client;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Benchmarks;

/// <summary>
/// What the trust model costs: two embedded silo processes started side by side on the same data, one as users run it
/// (mutual TLS on the gateway and the data port, logins, per-call access checks) and one with --insecure-no-auth, and
/// the same four workloads run on each in turn within every repeat: a warm remote read (data port), uncached stats
/// (gateway calls), cold fills from moto (both), and a warm short-circuit read (neither, so the gap is the rest).
/// Prints the medians, secure over insecure, against the goals of the security issue, and keeps them in a results file.
/// </summary>
internal static class SecurityBenchmark
{
    private sealed record Side(string Name, SiloProcess Silo, GrainFsClient Local, GrainFsClient Remote, GrainFsClient Uncached, bool Insecure);

    private sealed record Row(string Name, string What, string Unit, double Goal, List<double> On, List<double> Off)
    {
        // The machine's busy cores during each sample (from /proc/stat): whether a side was bound by CPU.
        public List<double> BusyOn { get; } = [];

        public List<double> BusyOff { get; } = [];

        // Cores used during each sample by the benchmark's clients, the side's silo and the other side's silo (idle, it should use none).
        public List<string> Processes { get; } = [];
    }

    // Bytes the clients of this process read, by path (short-circuit, remote, fill): each row checks it took the path it measures.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> BytesByPath = new(StringComparer.Ordinal);

    public static async Task<int> RunAsync(BenchArgs args)
    {
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Name == "grainfs.client.bytes_read")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "path" && tag.Value is string path)
                {
                    BytesByPath.AddOrUpdate(path, value, (_, total) => total + value);
                }
            }
        });
        listener.Start();

        var root = args.Text("--folder", Path.Combine(Path.GetTempPath(), "grainfs-bench", "security"));
        var bigBytes = (long)args.Int("--big-mib", 512) << 20;
        var statCount = args.Int("--stat", 20_000);
        var coldCount = args.Int("--cold", 500);
        var repeats = args.Int("--repeats", 3);
        var readers = args.Int("--readers", 8);
        var only = args.Text("--only", "remote,stat,cold,short-circuit").Split(',');
        var output = args.Text("--out", Path.Combine(Repo.Root, "infra", "bench", "results", "security"));
        var local = Path.Combine(root, "local");
        MakeData(local, bigBytes, statCount);

        await using var moto = await MotoServer.StartAsync();
        const string bucket = "cold";
        var coldKeys = await BenchData.UploadObjectsAsync(moto, bucket, coldCount, 100 * 1024);
        var capacity = bigBytes + (coldCount * 110_000L) + (256L << 20);
        var shms = new List<string>();
        var sides = new List<Side>();
        try
        {
            foreach (var insecure in new[] { false, true })
            {
                var name = insecure ? "off" : "on";
                var shm = $"/dev/shm/grainfs-bench-sec-{name}-{Environment.ProcessId}";
                shms.Add(shm);
                var silo = await SiloProcess.StartAsync("security-" + name, new SiloProcessOptions
                {
                    Dll = args.TextOrNull("--silo"),
                    Tiers = [$"MEM={shm}:{capacity}"],
                    ExtraArgs = insecure ? ["--host", "bench-host", "--insecure-no-auth"] : ["--host", "bench-host"],
                    Environment = moto.Environment,
                    Dashboard = false,
                    ForwardStandardError = true,
                });
                GrainFsClientOptions Options(string host, int metadataEntries = GrainFsClientOptions.DEFAULT_METADATA_CACHE_ENTRIES) => new()
                {
                    GatewayPort = silo.GatewayPort,
                    Host = host,
                    InsecureNoAuth = insecure,
                    MetadataCacheEntries = metadataEntries,
                    ReplicateAfterReads = 0,
                };
                var side = new Side(name, silo,
                    await GrainFsClient.ConnectAsync(Options("bench-host")),
                    await GrainFsClient.ConnectAsync(Options("another-host")),
                    await GrainFsClient.ConnectAsync(Options("bench-host", 0)),
                    insecure);
                sides.Add(side);
                Check(await side.Local.MountAsync("/local", $"file://{local}", new Dictionary<string, string> { ["readonly"] = "true" }));
                Check(await side.Local.MountAsync("/s3", $"s3://{bucket}", new Dictionary<string, string> { ["readonly"] = "true" }));
                // Every stat target's directory listed once, so stats measure the calls, not the first listing.
                await foreach (var _ in side.Uncached.ListAsync("/local/stat"))
                {
                }
            }

            // Both sides load the big file at once, so that their block files' pages interleave in memory: a file loaded
            // before the other read 15% faster from /dev/shm on this VM (the order of the loads decided the short-circuit
            // row, whichever side had security on).
            foreach (var load in await Task.WhenAll(sides.Select(side => side.Local.LoadAsync("/local/big.bin").AsTask())))
            {
                Check(load);
            }

            Console.WriteLine($"# security benchmark: on = mutual TLS + logins + access checks, off = --insecure-no-auth; {bigBytes >> 20} MiB warm file, {statCount:N0} stat targets, {coldCount:N0} × 100 KB objects on moto, {readers} readers, {repeats} repeats after a warm-up");
            var rows = new[]
            {
                new Row("remote", $"warm remote read, {bigBytes >> 20} MiB over the data port, 4 MiB reads", "MB/s", 0.8, [], []),
                new Row("stat", $"uncached stat, {readers} in flight, client metadata cache off", "stat/s", 0.8, [], []),
                new Row("cold", $"cold fill, {coldCount:N0} × 100 KB from moto, {readers} readers", "files/s", 0.9, [], []),
                new Row("short-circuit", $"warm short-circuit read, {bigBytes >> 20} MiB, 4 MiB reads", "MB/s", 0.95, [], []),
            };
            var buffer = GC.AllocateUninitializedArray<byte>(4 << 20, pinned: true);
            var statPaths = Enumerable.Range(0, statCount).Select(i => $"/local/stat/f{i:D6}").ToArray();

            // Each workload runs on both sides back to back, the side going first alternating, so that a pair shares the
            // machine's state; repeat 0 warms both up (JIT, connections, pools) and is not counted.
            async Task MeasureAsync(int repeat, Row row, Func<Side, Task<double>> run)
            {
                if (!only.Contains(row.Name))
                {
                    return;
                }

                foreach (var side in (repeat + Array.IndexOf(rows, row)) % 2 == 0 ? sides : Enumerable.Reverse(sides))
                {
                    await SettleAsync();
                    BytesByPath.Clear();
                    var other = sides.Single(s => s != side);
                    var before = CpuTicks();
                    var processes = new[] { Environment.ProcessId, side.Silo.Process.Id, other.Silo.Process.Id };
                    var cpuBefore = processes.Select(ProcessTicks).ToArray();
                    var value = await run(side);
                    var after = CpuTicks();
                    var cpuAfter = processes.Select(ProcessTicks).ToArray();
                    if (repeat > 0)
                    {
                        var wall = (after.Total - before.Total) / (double)Environment.ProcessorCount;
                        row.Processes.Add(string.Create(CultureInfo.InvariantCulture, $"{side.Name}: clients {(cpuAfter[0] - cpuBefore[0]) / wall:F2}, silo {(cpuAfter[1] - cpuBefore[1]) / wall:F2}, other silo {(cpuAfter[2] - cpuBefore[2]) / wall:F2}"));
                        (side.Insecure ? row.Off : row.On).Add(value);
                        (side.Insecure ? row.BusyOff : row.BusyOn).Add((after.Busy - before.Busy) / (double)(after.Total - before.Total) * Environment.ProcessorCount);
                    }
                }
            }

            // The big file read whole by one of a side's clients: MB/s, checked to have come by the path named.
            async Task<double> ReadBigAsync(Side side, GrainFsClient client, string path)
            {
                var clock = Stopwatch.StartNew();
                await BenchData.ReadAllAsync(Check(await client.OpenAsync("/local/big.bin")), buffer);
                var value = bigBytes / clock.Elapsed.TotalSeconds / 1e6;
                ExpectPath(side, path, bigBytes);
                return value;
            }

            for (var r = 0; r <= repeats; r++)
            {
                await MeasureAsync(r, rows[0], side => ReadBigAsync(side, side.Remote, "remote"));
                await MeasureAsync(r, rows[1], async side =>
                {
                    var clock = Stopwatch.StartNew();
                    await Parallel.ForEachAsync(statPaths, new ParallelOptions { MaxDegreeOfParallelism = readers }, async (path, ct) => Check(await side.Uncached.StatAsync(path, ct)));
                    return statCount / clock.Elapsed.TotalSeconds;
                });
                await MeasureAsync(r, rows[2], async side =>
                {
                    Check(await side.Local.FreeAsync("/s3"));
                    BytesByPath.Clear();
                    var clock = Stopwatch.StartNew();
                    await Parallel.ForEachAsync(coldKeys, new ParallelOptions { MaxDegreeOfParallelism = readers }, async (key, ct) =>
                    {
                        var data = System.Buffers.ArrayPool<byte>.Shared.Rent(128 * 1024);
                        var file = Check(await side.Local.OpenAsync("/s3/" + key, ct));
                        Check(await file.ReadAsync(0, data.AsMemory(0, (int)file.Length), ct));
                        System.Buffers.ArrayPool<byte>.Shared.Return(data);
                    });
                    return coldKeys.Count / clock.Elapsed.TotalSeconds;
                });
                await MeasureAsync(r, rows[3], side => ReadBigAsync(side, side.Local, "short-circuit"));
            }

            var table = new StringBuilder();
            table.AppendLine("| measurement | security on | security off | on / off (median of pairs) | goal | busy cores on / off |");
            table.AppendLine("| --- | --- | --- | --- | --- | --- |");
            foreach (var row in rows.Where(r => r.On.Count > 0))
            {
                var on = Median(row.On);
                var off = Median(row.Off);
                // The ratio is the median of each repeat's pair (measured back to back), which drift between repeats cancels.
                var ratio = Median([.. row.On.Zip(row.Off, (a, b) => a / b)]);
                table.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {row.What} | {on:N0} {row.Unit} | {off:N0} {row.Unit} | {ratio:F2} | ≥ {row.Goal:F2} | {Median(row.BusyOn):F2} / {Median(row.BusyOff):F2} of {Environment.ProcessorCount} |"));
            }

            var samples = new StringBuilder();
            foreach (var row in rows.Where(r => r.On.Count > 0))
            {
                samples.AppendLine(string.Create(CultureInfo.InvariantCulture, $"- {row.What}: on [{string.Join(", ", row.On.Select(v => v.ToString("N0", CultureInfo.InvariantCulture)))}], off [{string.Join(", ", row.Off.Select(v => v.ToString("N0", CultureInfo.InvariantCulture)))}]"));
                samples.AppendLine($"  cores used: {string.Join("; ", row.Processes)}");
            }

            Console.WriteLine();
            Console.Write(table);
            Console.Write(samples);
            Directory.CreateDirectory(output);
            var file = Path.Combine(output, $"security-{DateTime.Now:yyyy-MM-dd-HHmm}.md");
            await File.WriteAllTextAsync(file,
                $"# Security on vs off, {DateTime.Now:yyyy-MM-dd HH:mm}\n\n{Environment.ProcessorCount} cores; `grainfs-bench security {string.Join(' ', Environment.GetCommandLineArgs().Skip(2))}`\n\n{table}\nSamples (each repeat):\n\n{samples}");
            Console.WriteLine($"results: {file}");
            return 0;
        }
        finally
        {
            foreach (var side in sides)
            {
                await side.Local.DisposeAsync();
                await side.Remote.DisposeAsync();
                await side.Uncached.DisposeAsync();
                await side.Silo.DisposeAsync();
            }

            foreach (var shm in shms.Where(Directory.Exists))
            {
                Directory.Delete(shm, recursive: true);
            }
        }
    }

    // Fails the run when a measurement read its bytes some other way than the one it is named for.
    private static void ExpectPath(Side side, string path, long bytes)
    {
        var other = BytesByPath.Where(p => p.Key != path && p.Value > 0).Select(p => $"{p.Key} {p.Value:N0} B").ToList();
        if (BytesByPath.GetValueOrDefault(path) != bytes || other.Count > 0)
        {
            throw new InvalidOperationException($"security {side.Name}: expected {bytes:N0} bytes by {path}, read {BytesByPath.GetValueOrDefault(path):N0} by {path}{(other.Count > 0 ? ", " + string.Join(", ", other) : string.Empty)}");
        }

        BytesByPath.Clear();
    }

    // Waits (at most 10 s) until the machine is idle (under 0.15 cores busy over 200 ms): the work a sample leaves
    // behind (tiered JIT, GC, the silo finishing its requests) is not charged to the next sample, of either side.
    private static async Task SettleAsync()
    {
        for (var i = 0; i < 50; i++)
        {
            var before = CpuTicks();
            await Task.Delay(200);
            var after = CpuTicks();
            if ((after.Busy - before.Busy) / (double)(after.Total - before.Total) * Environment.ProcessorCount < 0.15)
            {
                return;
            }
        }
    }

    // Busy and total jiffies of all cores so far (the first line of /proc/stat; idle and iowait count as not busy).
    private static (long Busy, long Total) CpuTicks()
    {
        var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8).Select(f => long.Parse(f, CultureInfo.InvariantCulture)).ToArray();
        var total = fields.Sum();
        return (total - fields[3] - fields[4], total);
    }

    // User and system clock ticks a process has used (fields 14 and 15 of /proc/PID/stat, after the command's parentheses).
    private static long ProcessTicks(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
    }

    private static T Check<T>(FsResult<T> result) => result.IsOk ? result.Value! : throw new InvalidOperationException(result.Message);

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }

    private static void MakeData(string local, long bigBytes, int statCount)
    {
        var marker = Path.Combine(local, $".complete-{bigBytes}-{statCount}");
        if (File.Exists(marker))
        {
            return;
        }

        if (Directory.Exists(local))
        {
            Directory.Delete(local, recursive: true);
        }

        Directory.CreateDirectory(Path.Combine(local, "stat"));
        BenchData.WriteRandomFile(Path.Combine(local, "big.bin"), bigBytes, new Random(1));

        for (var i = 0; i < statCount; i++)
        {
            File.WriteAllBytes(Path.Combine(local, "stat", $"f{i:D6}"), [(byte)i]);
        }

        File.WriteAllText(marker, "ok");
    }
}
