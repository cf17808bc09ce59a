using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using GrainFs.Client;
using GrainFs.Fuse;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Benchmarks.Chaos;

/// <summary>One fault of the suite and what readers and writers saw while it lasted and after.</summary>
internal sealed record FaultRow(string Fault, string Expectation, long Reads, long Writes, long ReadErrors, long WriteErrors, long Wrong, long Lost, double? RecoverySeconds, bool Met, string? FirstError);

/// <summary>
/// The fault suite (infra/chaos/run.sh): a GrainFS deployment on loopback — s3rver (objects on disk, so it can be stopped
/// and started again), one silo whose SSD tier sits on infra/chaos/faultfs.py and whose HDD tier on a folder, a FUSE
/// mount, readers through the SDK and FUSE checking every byte, a writer through the SDK whose acknowledged files are
/// checked once uploaded — and each fault injected for real while they run. Prints the table: fault, expectation, reads,
/// writes, errors, bytes wrong, acknowledged writes lost, recovery time (from the fault's end, or its start for a fault
/// that is over at once, until every reader has read right again).
/// </summary>
internal static partial class ChaosSuite
{
    private const int Files = 300;
    private const int FileBytes = 48 << 10;

    public static async Task<int> RunAsync(BenchArgs args)
    {
        var hold = TimeSpan.FromSeconds(args.Int("--hold", 8));
        var only = args.TextOrNull("--only")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var s3rverJs = Path.Combine(Repo.Root, "infra", "bench", "node_modules", "s3rver", "bin", "s3rver.js");
        var work = TestProcess.NewFolder("chaos");
        var source = Directory.CreateDirectory(Path.Combine(work, "source")).FullName;
        var expected = new byte[Files][];
        var random = new Random(17);
        for (var i = 0; i < Files; i++)
        {
            expected[i] = new byte[FileBytes + i];
            random.NextBytes(expected[i]);
            await File.WriteAllBytesAsync(Path.Combine(source, Name(i)), expected[i]);
        }

        Progress("starting s3rver, a faulty-disk tier, a silo and a FUSE mount");
        var s3Folder = Path.Combine(work, "s3");
        var s3 = await S3rverServer.StartAsync(s3rverJs, s3Folder, "chaos");
        var s3Port = new Uri(s3.Endpoint).Port;
        using (var upload = s3.Client())
        {
            foreach (var path in Directory.EnumerateFiles(source))
            {
                await upload.PutObjectAsync(new Amazon.S3.Model.PutObjectRequest { BucketName = "chaos", Key = "ds/" + Path.GetFileName(path), FilePath = path, UseChunkEncoding = false });
            }
        }

        await using var disk = await FaultFs.StartAsync();
        var hdd = TestProcess.NewFolder("chaos-hdd");
        var writes = TestProcess.NewFolder("chaos-writes");
        var silo = await SiloProcess.StartAsync("chaos", new SiloProcessOptions
        {
            Tiers = [$"SSD={disk.MountPoint}:256MiB", $"HDD={hdd}:256MiB"],
            // A stalled fill is noticed in 5 s here (30 s by default), so that the suite's faults stay short.
            Environment = new Dictionary<string, string?> { ["GrainFs__Cache__FillStallTimeout"] = "00:00:05" },
        });
        await using var client = await GrainFsClient.ConnectAsync(new GrainFsClientOptions { GatewayPort = silo.GatewayPort, MetadataCacheEntries = 0 });
        Check(await client.MountAsync("/ds", "s3://chaos/ds", new Dictionary<string, string>
        {
            ["endpoint"] = s3.Endpoint,
            ["access-key"] = s3.AccessKey,
            ["secret-key"] = s3.SecretKey,
            ["readonly"] = "true",
        }));
        Check(await client.MountAsync("/w", $"file://{writes}"));
        Check(await client.LoadAsync("/ds"));
        var fuse = await FuseProcess.StartAsync(silo);
        var rows = new List<FaultRow>();
        try
        {
            var load = new Load(client, Path.Combine(fuse.MountPoint, "ds"), expected, writes);
            var scenarios = new (string Name, string Fault, string Expectation, Func<Task> Inject, Func<Task>? Clear, string? WriteErrorsNaming)[]
            {
                ("fuse-kill", "FUSE serving process SIGKILLed 3 times, 1 s apart", "no error, every byte right (readers pause)", async () =>
                {
                    var state = MountState.For(fuse.MountPoint, 0);
                    for (var k = 0; k < 3; k++)
                    {
                        var serving = MountState.ReadPid(state.ServingFile);
                        Signal(serving, 9);
                        while (MountState.ReadPid(state.ServingFile) is var now && (now == 0 || now == serving))
                        {
                            await Task.Delay(20);
                        }

                        await Task.Delay(1000);
                    }
                }, null, null),
                ("silo-stop", $"silo SIGSTOPped for {hold.TotalSeconds:0} s", "no error, every byte right (readers pause)", () => Stop(silo.Process.Id), () => Continue(silo.Process.Id), null),
                ("s3-stall", $"S3 server SIGSTOPped for {hold.TotalSeconds:0} s (stalled mid-request)", "no error for cached reads; writes acknowledged, uploaded once it answers", () => Stop(s3.Process.Id), () => Continue(s3.Process.Id), null),
                ("s3-down", $"S3 server stopped for {hold.TotalSeconds:0} s, then started again", "no error for cached reads; acknowledged writes uploaded once it is back", async () => await s3.DisposeAsync(), async () =>
                {
                    s3 = await S3rverServer.StartAsync(s3rverJs, s3Folder, "chaos", port: s3Port);
                }, null),
                ("disk-eio", $"the SSD tier's disk returns EIO on every read for {hold.TotalSeconds:0} s", "no error (blocks refilled on HDD, SSD out of service)", () => disk.FailAsync("read EIO"), () => disk.FailAsync(string.Empty), null),
                ("disk-full", $"the SSD tier's disk (the write tier) returns ENOSPC on every write for {hold.TotalSeconds:0} s, the cache freed first", "reads: no error (fills land on HDD); writes: a clear 'No space left on device' while it lasts, nothing acknowledged lost", async () =>
                {
                    await disk.FailAsync("write ENOSPC\ncreate ENOSPC");
                    Check(await client.FreeAsync("/ds"));
                }, () => disk.FailAsync(string.Empty), "No space left on device"),
                ("files-removed", "every block file removed behind the worker (both tiers)", "no error (blocks dropped and refilled)", () =>
                {
                    foreach (var folder in new[] { Path.Combine(disk.Backing, "blocks"), Path.Combine(hdd, "blocks") })
                    {
                        foreach (var file in Directory.Exists(folder) ? Directory.GetFiles(folder, "*", SearchOption.AllDirectories) : [])
                        {
                            File.Delete(file);
                        }
                    }

                    return Task.CompletedTask;
                }, null, null),
            };

            foreach (var scenario in scenarios.Where(s => only is null || only.Contains(s.Name)))
            {
                Progress($"{scenario.Name}: {scenario.Fault}");
                rows.Add(await load.RunAsync(scenario.Fault, scenario.Expectation, scenario.Inject, scenario.Clear, hold, scenario.WriteErrorsNaming));
                var row = rows[^1];
                Progress($"{scenario.Name}: reads {row.Reads}, writes {row.Writes}, errors {row.ReadErrors}/{row.WriteErrors}, wrong {row.Wrong}, lost {row.Lost}, recovery {row.RecoverySeconds:F1} s: {(row.Met ? "met" : "NOT MET")}{(row.FirstError is null ? string.Empty : " (" + row.FirstError + ")")}");
            }
        }
        finally
        {
            await fuse.DisposeAsync();
            await silo.DisposeAsync();
            await s3.DisposeAsync();
        }

        var table = Table(rows);
        Console.WriteLine(table);
        var results = Directory.CreateDirectory(Path.Combine(Repo.Root, "infra", "chaos", "results")).FullName;
        var file = Path.Combine(results, $"chaos-{DateTime.UtcNow:yyyy-MM-dd-HHmm}.md");
        await File.WriteAllTextAsync(file, $"# GrainFS fault suite — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC\n\nCommand: `infra/chaos/run.sh`\n\n{table}");
        Progress($"results: {file}");
        return rows.All(r => r.Met) ? 0 : 1;
    }

    private static string Name(int i) => $"f{i:D3}.bin";

    private static string Table(List<FaultRow> rows)
    {
        var text = new StringBuilder();
        text.AppendLine("Readers: 2 through the SDK and 1 through the FUSE mount (its page cache dropped for each file read), each reading random files of a 300-file dataset (48 KB each, cached before) and comparing every byte; a writer through the SDK (16 KB files into a local-folder mount), whose acknowledged files are compared with the folder once uploaded. Each fault runs 3 s after the load starts; the load goes on 5 s after it ends.");
        text.AppendLine();
        text.AppendLine("| fault | expectation | reads | writes | errors (reads / writes) | bytes wrong | acknowledged writes lost | recovery s | met |");
        text.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var r in rows)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {r.Fault} | {r.Expectation} | {r.Reads:N0} | {r.Writes:N0} | {r.ReadErrors} / {r.WriteErrors} | {r.Wrong} | {r.Lost} | {(r.RecoverySeconds is { } s ? s.ToString("F1", CultureInfo.InvariantCulture) : "—")} | {(r.Met ? "yes" : "NO")}{(r.FirstError is null ? string.Empty : ": " + Shorten(r.FirstError).Replace('|', '/'))} |");
        }

        return text.ToString();
    }

    // Scratch paths say nothing to a reader of the table.
    private static string Shorten(string message) => System.Text.RegularExpressions.Regex.Replace(message, @"'/tmp/[^']*'", "'…'");

    private static void Check<T>(FsResult<T> result)
    {
        if (!result.IsOk)
        {
            throw new InvalidOperationException(result.Message);
        }
    }

    private static Task Stop(int pid)
    {
        Signal(pid, 19);
        return Task.CompletedTask;
    }

    private static Task Continue(int pid)
    {
        Signal(pid, 18);
        return Task.CompletedTask;
    }

    private static void Signal(int pid, int signal)
    {
        if (NativeKill(pid, signal) != 0)
        {
            throw new InvalidOperationException($"kill -{signal} {pid}: {Marshal.GetLastPInvokeErrorMessage()}");
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int NativeKill(int pid, int signal);

    private static void Progress(string message) => Console.Error.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {message}");

    /// <summary>The readers and the writer, counted per fault.</summary>
    private sealed partial class Load(GrainFsClient client, string fuseFolder, byte[][] expected, string writesFolder)
    {
        private readonly Dictionary<string, string> _written = new(StringComparer.Ordinal);
        private long _reads;
        private long _writes;
        private long _readErrors;
        private long _writeErrors;
        private long _wrong;
        private string? _firstError;
        private string? _firstWriteError;
        private string? _writeErrorsNaming;
        private long _otherWriteErrors;
        private int _next;

        public async Task<FaultRow> RunAsync(string fault, string expectation, Func<Task> inject, Func<Task>? clear, TimeSpan hold, string? writeErrorsNaming)
        {
            (_reads, _writes, _readErrors, _writeErrors, _wrong, _firstError, _firstWriteError, _otherWriteErrors) = (0, 0, 0, 0, 0, null, null, 0);
            _writeErrorsNaming = writeErrorsNaming;
            lock (_written)
            {
                _written.Clear();
            }

            using var stop = new CancellationTokenSource();
            var lastGood = new long[3];
            var workers = new List<Task>
            {
                Task.Run(() => ReadSdkAsync(0, lastGood, stop.Token)),
                Task.Run(() => ReadSdkAsync(1, lastGood, stop.Token)),
                Task.Run(() => ReadFuseAsync(2, lastGood, stop.Token)),
                Task.Run(() => WriteAsync(stop.Token)),
            };
            await Task.Delay(TimeSpan.FromSeconds(3));
            await inject();
            if (clear is not null)
            {
                await Task.Delay(hold);
                await clear();
            }

            var cleared = Stopwatch.GetTimestamp();
            double? recovery = null;
            var deadline = Stopwatch.StartNew();
            while (deadline.Elapsed < TimeSpan.FromSeconds(60))
            {
                if (lastGood.All(t => Volatile.Read(ref t) > cleared))
                {
                    recovery = Stopwatch.GetElapsedTime(cleared, lastGood.Max()).TotalSeconds;
                    break;
                }

                await Task.Delay(50);
            }

            await Task.Delay(TimeSpan.FromSeconds(5));
            await stop.CancelAsync();
            await Task.WhenAll(workers);

            // Every acknowledged write reaches the folder, whole.
            var lost = 0L;
            List<KeyValuePair<string, string>> written;
            lock (_written)
            {
                written = [.. _written];
            }

            foreach (var (name, hash) in written)
            {
                var persisted = await client.PersistAsync("/w/" + name, TimeSpan.FromSeconds(120));
                var local = Path.Combine(writesFolder, name);
                if (!persisted.IsOk || !File.Exists(local) || Hash(await File.ReadAllBytesAsync(local)) != hash)
                {
                    lost++;
                }
            }

            // Write errors only where the fault makes them expected, and then each names the cause.
            var writesAsExpected = _writeErrors == 0 || (writeErrorsNaming is not null && _otherWriteErrors == 0);
            var met = _readErrors == 0 && writesAsExpected && _wrong == 0 && lost == 0 && recovery is not null;
            return new FaultRow(fault, expectation, _reads, _writes, _readErrors, _writeErrors, _wrong, lost, recovery, met, _firstError ?? _firstWriteError);
        }

        private async Task ReadSdkAsync(int worker, long[] lastGood, CancellationToken stop)
        {
            var random = new Random(worker);
            var buffer = new byte[FileBytes + Files];
            while (!stop.IsCancellationRequested)
            {
                var i = random.Next(Files);
                try
                {
                    using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                    var read = await client.ReadAsync("/ds/" + Name(i), 0, buffer, deadline.Token);
                    Count(read.IsOk ? null : read.Message, read.IsOk && Same(i, buffer.AsSpan(0, read.Value)), worker, lastGood);
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    Count(e.Message, false, worker, lastGood);
                }
            }
        }

        private async Task ReadFuseAsync(int worker, long[] lastGood, CancellationToken stop)
        {
            var random = new Random(worker);
            while (!stop.IsCancellationRequested)
            {
                var i = random.Next(Files);
                try
                {
                    var path = Path.Combine(fuseFolder, Name(i));
                    byte[] bytes;
                    using (var handle = File.OpenHandle(path))
                    {
                        // The kernel forgets the file's pages first, so the read reaches the mount's serving process.
                        _ = FAdvise(handle, 0, 0, 4);
                        bytes = new byte[RandomAccess.GetLength(handle)];
                        var done = 0;
                        while (done < bytes.Length)
                        {
                            var n = await RandomAccess.ReadAsync(handle, bytes.AsMemory(done), done, stop);
                            if (n == 0)
                            {
                                break;
                            }

                            done += n;
                        }

                        bytes = bytes[..done];
                    }

                    Count(null, Same(i, bytes), worker, lastGood);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    Count(e.Message, false, worker, lastGood);
                }
            }
        }

        private async Task WriteAsync(CancellationToken stop)
        {
            var random = new Random(99);
            while (!stop.IsCancellationRequested)
            {
                var bytes = new byte[16 << 10];
                random.NextBytes(bytes);
                var name = $"w{Interlocked.Increment(ref _next):D6}";
                try
                {
                    using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                    var written = await client.WriteFileAsync("/w/" + name, new MemoryStream(bytes), cancellationToken: deadline.Token);
                    if (written.IsOk)
                    {
                        lock (_written)
                        {
                            _written[name] = Hash(bytes);
                        }

                        Interlocked.Increment(ref _writes);
                    }
                    else
                    {
                        WriteError(written.Message);
                    }
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    WriteError(e.Message);
                }

                await Task.Delay(100, CancellationToken.None);
            }
        }

        // Right, or (the first time) why not, as the row's first error.
        private bool Same(int i, ReadOnlySpan<byte> got)
        {
            if (got.SequenceEqual(expected[i]))
            {
                return true;
            }

            var at = got.CommonPrefixLength(expected[i]);
            Interlocked.CompareExchange(ref _firstError, $"{Name(i)}: {got.Length} bytes read, {expected[i].Length} expected, first difference at byte {at}", null);
            return false;
        }

        private void Count(string? error, bool right, int worker, long[] lastGood)
        {
            if (error is not null)
            {
                Error(error);
                return;
            }

            Interlocked.Increment(ref _reads);
            if (!right)
            {
                Interlocked.Increment(ref _wrong);
                return;
            }

            Volatile.Write(ref lastGood[worker], Stopwatch.GetTimestamp());
        }

        private void Error(string? message)
        {
            Interlocked.Increment(ref _readErrors);
            Interlocked.CompareExchange(ref _firstError, message, null);
        }

        private void WriteError(string? message)
        {
            Interlocked.Increment(ref _writeErrors);
            Interlocked.CompareExchange(ref _firstWriteError, message, null);
            if (_writeErrorsNaming is null || message?.Contains(_writeErrorsNaming, StringComparison.Ordinal) != true)
            {
                Interlocked.Increment(ref _otherWriteErrors);
            }
        }

        private static string Hash(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes));

        [LibraryImport("libc", EntryPoint = "posix_fadvise")]
        private static partial int FAdvise(Microsoft.Win32.SafeHandles.SafeFileHandle fd, long offset, long length, int advice);
    }
}
