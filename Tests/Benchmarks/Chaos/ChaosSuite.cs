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
    private const int Files = ChaosDeployment.Files;
    private const int FileBytes = ChaosDeployment.FileBytes;

    /// <summary>A fault: how it is injected and cleared, what readers and writers should see, and a check after the load stopped (null: nothing more).</summary>
    private sealed record Scenario(string Name, string Fault, string Expectation, Func<Task> Inject, Func<Task>? Clear = null, string? WriteErrorsNaming = null, Func<Task<string?>>? Verify = null);

    public static async Task<int> RunAsync(BenchArgs args)
    {
        var hold = TimeSpan.FromSeconds(args.Int("--hold", 8));
        var only = args.TextOrNull("--only")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var work = TestProcess.NewFolder("chaos");
        await using var d = await ChaosDeployment.StartAsync(work, Progress);
        var client = d.Client;
        var rows = new List<FaultRow>();
        var load = new Load(client, Path.Combine(d.Fuse.MountPoint, "ds"), d.Expected, d.Writes);
        var seconds = hold.TotalSeconds.ToString("0", CultureInfo.InvariantCulture);
        long fillsBefore = 0;
        var scenarios = new Scenario[]
        {
            new("fuse-kill", "FUSE serving process SIGKILLed 3 times, 1 s apart", "no error, every byte right (readers pause)", async () =>
            {
                var state = MountState.For(d.Fuse.MountPoint, 0);
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
            }),
            new("silo-kill", $"silo B SIGKILLed, started again {seconds} s later on its ports and folders", "reads: no error, every byte right (lookups asked again, blocks it held read again through silo A); writes: only a write in flight to B's worker fails, naming it (the next files go to A), nothing acknowledged lost", () =>
            {
                d.KillSilo(1);
                return Task.CompletedTask;
            }, () => d.StartSiloAgainAsync(1), "write worker chaos-b"),
            new("silo-stop", $"silo A SIGSTOPped for {seconds} s", "no error, every byte right (readers pause)", () => Stop(d.Silos[0].Process.Id), async () =>
            {
                await Continue(d.Silos[0].Process.Id);
                await Task.Delay(2000);
                if (d.Silos[0].Process.HasExited)
                {
                    // Declared dead by the other silo while it was stopped, it ended itself on waking, as Orleans silos do.
                    Progress("silo A ended itself after it was declared dead; starting it again");
                    await d.StartSiloAgainAsync(0);
                }
            }),
            new("pg-kill", $"PostgreSQL SIGKILLed (postmaster and backends), started again {seconds} s later", "reads: no error (metadata held by the grains); writes: no error or a clear 'the metadata store failed' while it is down, nothing acknowledged lost", () => SignalAll(d.Postgres.ServerProcesses(), 9), () => d.Postgres.StartAgainAsync(), "the metadata store failed"),
            new("pg-stop", $"PostgreSQL's processes SIGSTOPped for {seconds} s", "as for pg-kill", async () =>
            {
                stoppedPostgres = d.Postgres.ServerProcesses();
                await SignalAll(stoppedPostgres, 19);
            }, () => SignalAll(stoppedPostgres, 18)),
            new("s3-stall", $"S3 server SIGSTOPped for {seconds} s (stalled mid-request)", "no error for cached reads; writes acknowledged, uploaded once it answers", () => Stop(d.S3.Process.Id), () => Continue(d.S3.Process.Id)),
            new("s3-down", $"S3 server stopped for {seconds} s, then started again", "no error for cached reads; acknowledged writes uploaded once it is back", () => d.StopS3Async(), () => d.StartS3AgainAsync()),
            new("s3-reset", $"every connection to S3 reset (TCP RST, by a loopback proxy) once it carried 80 KiB of responses, for {seconds} s, the cache freed first", "no error, every byte right (a fill cut mid-body is retried on a new connection)", async () =>
            {
                d.Proxy.ResetAfterBytes = 80 << 10;
                ChaosDeployment.Check(await client.FreeAsync("/ds"));
            }, () =>
            {
                d.Proxy.ResetAfterBytes = null;
                return Task.CompletedTask;
            }, Verify: () => Task.FromResult(d.Proxy.Resets > 0 ? null : "the proxy reset no connection")),
            new("disk-eio", $"silo A's SSD tier disk returns EIO on every read for {seconds} s", "no error (blocks refilled elsewhere, the SSD out of service)", () => d.Disk.FailAsync("read EIO"), () => d.Disk.FailAsync(string.Empty)),
            new("disk-full", $"silo A's SSD tier disk (its write tier) returns ENOSPC on every write for {seconds} s, the cache freed first", "reads: no error (fills land elsewhere); writes: no error or a clear 'No space left on device', nothing acknowledged lost", async () =>
            {
                await d.Disk.FailAsync("write ENOSPC\ncreate ENOSPC");
                ChaosDeployment.Check(await client.FreeAsync("/ds"));
            }, () => d.Disk.FailAsync(string.Empty), "No space left on device"),
            new("tmpfs-full", $"silo B's MEM tier (a 32 MiB tmpfs) filled by a foreign file for {seconds} s, the cache freed first", "reads: no error (fills go to other tiers while it is full); writes: no error or a clear 'No space left on device' for files whose worker is B, nothing acknowledged lost", async () =>
            {
                ChaosDeployment.Check(await client.FreeAsync("/ds"));
                FillUp(Path.Combine(d.Tmpfs, "foreign.fill"));
            }, () =>
            {
                File.Delete(Path.Combine(d.Tmpfs, "foreign.fill"));
                return Task.CompletedTask;
            }, "No space left on device"),
            new("tier-removed", "silo A's HDD tier folder removed (rm -r)", "no error (its blocks dropped and refilled, the folder made again)", () =>
            {
                Directory.Delete(d.Hdd[0], recursive: true);
                return Task.CompletedTask;
            }),
            new("files-removed", "every block file removed behind the workers (every tier of both silos)", "no error (blocks dropped and refilled)", () =>
            {
                foreach (var folder in new[] { Path.Combine(d.Disk.Backing, "blocks"), Path.Combine(d.Hdd[0], "blocks"), Path.Combine(d.Hdd[1], "blocks"), Path.Combine(d.Tmpfs, "blocks") })
                {
                    foreach (var file in Directory.Exists(folder) ? Directory.GetFiles(folder, "*", SearchOption.AllDirectories) : [])
                    {
                        File.Delete(file);
                    }
                }

                return Task.CompletedTask;
            }),
            new("clock-step", "GrainFS's clock (TimeProvider, read from a file) stepped 2 h ahead on both silos; a TTL of 1 h set first on /ds and on the pinned /pin", "no error (the /ds blocks freed by their TTL and refilled on the next read); the pinned /pin blocks kept (reading /pin afterwards fills nothing)", async () =>
            {
                // Pinned blocks removed by the earlier faults are filled again (keeping their pin) before the step.
                if (await ReadPinnedAsync(client, d.Pinned) is { } wrong)
                {
                    throw new InvalidOperationException(wrong);
                }

                ChaosDeployment.Check(await client.SetTtlAsync("/ds", TimeSpan.FromHours(1)));
                ChaosDeployment.Check(await client.SetTtlAsync("/pin", TimeSpan.FromHours(1)));
                fillsBefore = await FillsAsync(client);
                await d.SetClockAsync(TimeSpan.FromHours(2));
            }, Verify: async () =>
            {
                var refilled = await FillsAsync(client) - fillsBefore;
                if (refilled < Files / 3)
                {
                    return $"{refilled} fills after the step: the TTL freed too little of /ds";
                }

                var before = await FillsAsync(client);
                if (await ReadPinnedAsync(client, d.Pinned) is { } wrong)
                {
                    return wrong;
                }

                var pinnedFills = await FillsAsync(client) - before;
                Progress($"clock-step: {refilled} fills of /ds after the step; reading the {ChaosDeployment.PinnedFiles} pinned files filled {pinnedFills}");
                return pinnedFills == 0 ? null : $"reading the pinned files filled {pinnedFills} blocks: the step freed pinned blocks";
            }),
        };

        foreach (var scenario in scenarios.Where(s => only is null || only.Contains(s.Name)))
        {
            Progress($"{scenario.Name}: {scenario.Fault}");
            rows.Add(await load.RunAsync(scenario.Fault, scenario.Expectation, scenario.Inject, scenario.Clear, hold, scenario.WriteErrorsNaming, scenario.Verify));
            var row = rows[^1];
            Progress($"{scenario.Name}: reads {row.Reads}, writes {row.Writes}, errors {row.ReadErrors}/{row.WriteErrors}, wrong {row.Wrong}, lost {row.Lost}, recovery {row.RecoverySeconds:F1} s: {(row.Met ? "met" : "NOT MET")}{(row.FirstError is null ? string.Empty : " (" + row.FirstError + ")")}");
        }

        var table = Table(rows);
        Console.WriteLine(table);
        var results = Directory.CreateDirectory(Path.Combine(Repo.Root, "infra", "chaos", "results")).FullName;
        var file = Path.Combine(results, $"chaos-{DateTime.UtcNow:yyyy-MM-dd-HHmm}.md");
        await File.WriteAllTextAsync(file, $"# GrainFS fault suite — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC\n\nCommand: `infra/chaos/run.sh`\n\n{table}");
        Progress($"results: {file}");
        return rows.All(r => r.Met) ? 0 : 1;
    }

    private static IReadOnlyList<int> stoppedPostgres = [];

    // Reads every /pin file through the SDK and compares it with its source; the first difference, or null.
    private static async Task<string?> ReadPinnedAsync(GrainFsClient client, string folder)
    {
        var bytes = new byte[FileBytes];
        foreach (var file in Directory.GetFiles(folder))
        {
            var read = await client.ReadAsync("/pin/" + Path.GetFileName(file), 0, bytes);
            var want = await File.ReadAllBytesAsync(file);
            if (!read.IsOk || !bytes.AsSpan(0, read.Value).SequenceEqual(want))
            {
                return $"/pin/{Path.GetFileName(file)} read wrong: {read.Message}";
            }
        }

        return null;
    }

    private static async Task<long> FillsAsync(GrainFsClient client)
    {
        var report = await client.GetReportAsync();
        ChaosDeployment.Check(report);
        return report.Value!.Sum(w => w.Fills);
    }

    // Writes zeros until the file system is full (a foreign process filling a tmpfs).
    private static void FillUp(string path)
    {
        var chunk = new byte[1 << 20];
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 0);
        try
        {
            while (true)
            {
                file.Write(chunk);
            }
        }
        catch (IOException)
        {
            // Full.
        }
    }

    private static Task SignalAll(IReadOnlyList<int> pids, int signal)
    {
        if (pids.Count == 0)
        {
            throw new InvalidOperationException("PostgreSQL is not running");
        }

        foreach (var pid in pids)
        {
            // A backend may have ended since it was listed.
            _ = NativeKill(pid, signal);
        }

        return Task.CompletedTask;
    }

    private static string Name(int i) => ChaosDeployment.Name(i);

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

        public async Task<FaultRow> RunAsync(string fault, string expectation, Func<Task> inject, Func<Task>? clear, TimeSpan hold, string? writeErrorsNaming, Func<Task<string?>>? verify)
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
            var failed = verify is null ? null : await verify();
            var met = _readErrors == 0 && writesAsExpected && _wrong == 0 && lost == 0 && recovery is not null && failed is null;
            return new FaultRow(fault, expectation, _reads, _writes, _readErrors, _writeErrors, _wrong, lost, recovery, met, _firstError ?? _firstWriteError ?? failed);
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
