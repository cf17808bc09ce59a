using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Amazon.S3.Model;
using Amazon.S3.Transfer;
using GrainFs.Client;
using GrainFs.DataPlane;
using GrainFs.DataPlane.Blocks;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Benchmarks;

/// <summary>
/// The write path against baselines measured in the same run: MUST_CACHE writes through the SDK and through FUSE
/// against writing the same bytes to a file on the write tier's disk; ASYNC_THROUGH close latency against THROUGH;
/// the persist queue's upload throughput against AWSSDK multipart uploads of the same bytes to the same moto; the
/// persist rate limit against the configured rate; a checkpoint written through FUSE against local disk; reading a
/// file right after writing it against a warm read of it.
/// </summary>
internal static partial class WriteBenchmark
{
    private const int WriteChunk = 1 << 20;
    private const int PartSize = 16 << 20;
    private const int PersistParallel = 2;

    private static readonly List<Result> Rows = [];
    private static readonly List<string> Notes = [];

    /// <summary>One row of the table: a GrainFS figure, its same-run baseline, and the goal for their ratio.</summary>
    internal sealed record Result(string Name, double GrainFs, double Baseline, string Unit, double Ratio, string Goal, bool Meets);

    private sealed record Settings(
        long WriteBytes, long CheckpointBytes, int CloseFiles, long CloseBytes, long PersistBytes, int PersistFiles,
        long RateBytesPerSecond, long RateBytes, int Repeats);

    public static async Task<int> RunAsync(BenchArgs args)
    {
        var s = new Settings(
            Size(args, "--write-size", "512MiB"),
            Size(args, "--checkpoint-size", "2GiB"),
            args.Int("--close-files", 10),
            Size(args, "--close-size", "4MiB"),
            Size(args, "--persist-size", "256MiB"),
            args.Int("--persist-files", 8),
            Size(args, "--persist-rate", "20MiB"),
            Size(args, "--rate-size", "256MiB"),
            args.Int("--repeats", 3));
        var only = args.Text("--only", "throughput,close,persist,rate,checkpoint").Split(',', StringSplitOptions.TrimEntries);
        var output = args.Text("--out", Path.Combine(Repo.Root, "infra", "bench", "results", "write"));
        var work = TestProcess.NewFolder("write");
        var local = Path.Combine(work, "local");
        var ssd = Path.Combine(work, "ssd");
        Directory.CreateDirectory(local);
        Directory.CreateDirectory(ssd);

        // At the peak the disk holds a checkpoint three times over: the local copy (deleted before GrainFS writes), the
        // write tier's blocks, and moto's spooled copy while it is persisted.
        var need = (2 * s.CheckpointBytes) + (3 * s.WriteBytes) + (1L << 30);
        var free = new DriveInfo(work).AvailableFreeSpace;
        if (only.Contains("checkpoint") && free < need)
        {
            Console.Error.WriteLine($"grainfs-bench write: {ByteSize.Format(free)} free in {work}, the run needs about {ByteSize.Format(need)}; give a smaller --checkpoint-size (e.g. 512MiB)");
            return 2;
        }

        var tierBytes = Math.Max(s.CheckpointBytes, Math.Max(s.WriteBytes, Math.Max(s.PersistBytes, s.RateBytes))) + (1L << 30);
        var data = GC.AllocateUninitializedArray<byte>(64 << 20, pinned: true);
        new Random(7).NextBytes(data);
        Console.WriteLine($"# write benchmark: {ByteSize.Format(s.WriteBytes)} writes, {s.CloseFiles} × {ByteSize.Format(s.CloseBytes)} closes, {s.PersistFiles} files / {ByteSize.Format(s.PersistBytes)} persisted, {ByteSize.Format(s.RateBytes)} at --persist-rate {ByteSize.Format(s.RateBytesPerSecond)}, {ByteSize.Format(s.CheckpointBytes)} checkpoint; medians of {s.Repeats}");
        Console.WriteLine($"# write tier SSD={ssd} on {await FileSystemOfAsync(ssd)}, local disk baseline in {local} on {await FileSystemOfAsync(local)}, {ByteSize.Format(free)} free");

        await using var moto = await MotoServer.StartAsync();
        using var s3 = moto.Client();
        foreach (var bucket in new[] { "must-cache", "async-through", "direct-upload", "persist-rate" })
        {
            await s3.PutBucketAsync(bucket);
        }

        var shm = $"/dev/shm/grainfs-bench-write-{Environment.ProcessId}";
        try
        {
            if (only.Any(o => o is "throughput" or "close" or "persist" or "checkpoint"))
            {
                await using var silo = await StartSiloAsync(args, moto, shm, ssd, tierBytes, null);
                await using var client = await GrainFsClient.ConnectAsync(new GrainFsClientOptions { GatewayPort = silo.GatewayPort, Host = "bench-host" });
                Check(await client.MountAsync("/mc", "s3://must-cache", new Dictionary<string, string> { ["write-type"] = "MUST_CACHE", ["part-size"] = "16MiB" }));
                Check(await client.MountAsync("/at", "s3://async-through", new Dictionary<string, string> { ["write-type"] = "ASYNC_THROUGH", ["part-size"] = "16MiB" }));
                var worker = await WorkerAsync(client);
                FuseProcess? fuse = null;
                try
                {
                    if (only.Contains("throughput") || only.Contains("checkpoint"))
                    {
                        var mountPoint = Path.Combine(work, "mnt");
                        Directory.CreateDirectory(mountPoint);
                        fuse = await FuseProcess.StartAsync(silo, ["--host", "bench-host"], mountPoint, args.TextOrNull("--cli"));
                    }

                    if (only.Contains("throughput"))
                    {
                        await ThroughputAsync(client, fuse!.MountPoint, local, data, s);
                    }

                    if (only.Contains("close"))
                    {
                        await CloseLatencyAsync(client, worker, local, data, s);
                    }

                    if (only.Contains("persist"))
                    {
                        await PersistAsync(client, worker, s3, data, s);
                    }

                    if (only.Contains("checkpoint"))
                    {
                        await CheckpointAsync(client, worker, fuse!.MountPoint, local, data, s);
                    }
                }
                finally
                {
                    if (fuse is not null)
                    {
                        await fuse.DisposeAsync();
                    }
                }
            }

            if (Directory.Exists(shm))
            {
                Directory.Delete(shm, recursive: true);
            }

            if (only.Contains("rate"))
            {
                // A silo of its own: the rate is a silo setting.
                await using var silo = await StartSiloAsync(args, moto, shm, Path.Combine(work, "ssd-rate"), tierBytes, ByteSize.Format(s.RateBytesPerSecond));
                await using var client = await GrainFsClient.ConnectAsync(new GrainFsClientOptions { GatewayPort = silo.GatewayPort, Host = "bench-host" });
                Check(await client.MountAsync("/rate", "s3://persist-rate", new Dictionary<string, string> { ["write-type"] = "ASYNC_THROUGH", ["part-size"] = "16MiB" }));
                await RateAsync(client, await WorkerAsync(client), data, s);
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
        var table = Table();
        Console.WriteLine(table);
        await WriteResultsAsync(output, s, table);
        return Rows.TrueForAll(r => r.Meets) ? 0 : 1;
    }

    /// <summary>The file system a folder is on (device and mount point), to show that the baseline writes to the write tier's disk.</summary>
    private static async Task<string> FileSystemOfAsync(string folder)
    {
        var (_, stdout, _) = await TestProcess.RunAsync("df", ["--output=source,target", folder]);
        return string.Join(' ', stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Last().Split(' ', StringSplitOptions.RemoveEmptyEntries));
    }

    private static long Size(BenchArgs args, string flag, string fallback) =>
        ByteSize.TryParse(args.Text(flag, fallback), out var bytes, out var error) && bytes > 0 ? bytes : throw new ArgumentException($"{flag}: {error ?? "must be more than 0"}");

    private static async Task<SiloProcess> StartSiloAsync(BenchArgs args, MotoServer moto, string shm, string ssd, long tierBytes, string? persistRate)
    {
        Directory.CreateDirectory(ssd);
        var extra = new List<string> { "--host", "bench-host", "--write-tier", "SSD", "--persist-parallel", PersistParallel.ToString(CultureInfo.InvariantCulture) };
        if (persistRate is not null)
        {
            extra.AddRange(["--persist-rate", persistRate]);
        }

        return await SiloProcess.StartAsync("write", new SiloProcessOptions
        {
            Dll = args.TextOrNull("--silo"),
            Tiers = [$"MEM={shm}:256MiB", $"SSD={ssd}:{tierBytes}"],
            ExtraArgs = extra,
            Environment = moto.Environment,
            Dashboard = false,
            ForwardStandardError = true,
        });
    }

    private static async Task<IWorkerGrain> WorkerAsync(GrainFsClient client)
    {
        var silos = await client.Cache.GetSilosAsync();
        return client.Grains.GetGrain<IWorkerGrain>(silos.Single().Name);
    }

    private static T Check<T>(FsResult<T> result) => result.IsOk ? result.Value! : throw new InvalidOperationException(result.Message);

    private static void Row(string name, double grainfs, double baseline, string unit, string goal, Func<double, bool> meets)
    {
        var ratio = grainfs / baseline;
        var row = new Result(name, grainfs, baseline, unit, ratio, goal, meets(ratio));
        Rows.Add(row);
        Console.WriteLine(Line(row));
    }

    /// <summary>A figure that explains a row (a floor, a steady rate), printed and kept for the results file.</summary>
    private static void Note(string text)
    {
        Notes.Add(text);
        Console.WriteLine(text);
    }

    private static string Line(Result r) =>
        string.Create(CultureInfo.InvariantCulture, $"| {r.Name} | {r.GrainFs:N1} {r.Unit} | {r.Baseline:N1} {r.Unit} | {r.Ratio:F2} | {r.Goal} | {(r.Meets ? "yes" : "no")} |");

    private static string Table()
    {
        var text = new StringBuilder();
        text.AppendLine("| measurement | GrainFS | baseline | ratio | goal | meets |");
        text.AppendLine("| --- | --- | --- | --- | --- | --- |");
        foreach (var row in Rows)
        {
            text.AppendLine(Line(row));
        }

        return text.ToString();
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }

    private static double Mb(long bytes, TimeSpan elapsed) => bytes / elapsed.TotalSeconds / 1e6;

    /// <summary>Writes <paramref name="bytes"/> to a file in 1 MiB writes, fsyncs it and closes it (a local file, or one in the FUSE mount).</summary>
    private static TimeSpan WriteFile(string path, byte[] data, long bytes)
    {
        var clock = Stopwatch.StartNew();
        using (var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0))
        {
            for (long written = 0; written < bytes; written += WriteChunk)
            {
                stream.Write(data, (int)(written % data.Length), (int)Math.Min(WriteChunk, bytes - written));
            }

            stream.Flush(flushToDisk: true);
        }

        return clock.Elapsed;
    }

    /// <summary>
    /// Writes <paramref name="bytes"/> to local disk the way a write worker stores written blocks: 4 MiB block files,
    /// <see cref="GrainFsWriter.MaxInFlight"/> at once, each checksummed and fsynced (<see cref="BlockFileWriter"/>),
    /// renamed into place and its folder fsynced. What the write path's durability costs on this disk, without GrainFS.
    /// </summary>
    private static async Task<TimeSpan> WriteBlocksAsync(string folder, byte[] data, long bytes)
    {
        const int blockSize = 4 << 20;
        Directory.CreateDirectory(folder);
        var file = BlockKey.FileId("file:///bench", "blocks", "1", bytes, blockSize);
        var count = (int)((bytes + blockSize - 1) / blockSize);
        var clock = Stopwatch.StartNew();
        await Parallel.ForAsync(0, count, new ParallelOptions { MaxDegreeOfParallelism = GrainFsWriter.MaxInFlight }, async (i, ct) =>
        {
            var length = (int)Math.Min(blockSize, bytes - ((long)i * blockSize));
            var temp = Path.Combine(folder, $"{i}.tmp");
            using var source = new MemoryStream(data, (int)((long)i * blockSize % data.Length), length, writable: false);
            await BlockFileWriter.WriteAsync(temp, BlockKey.For(file, i), length, source, 0, 0, 0, null, ct, durable: true);
            File.Move(temp, Path.Combine(folder, $"{i}.block"));
            SyncFolder(folder);
        });
        var elapsed = clock.Elapsed;
        Directory.Delete(folder, recursive: true);
        return elapsed;
    }

    private static void SyncFolder(string path)
    {
        var fd = Open(path, 0x10000 /* O_RDONLY | O_DIRECTORY */);
        if (fd < 0 || Fsync(fd) != 0)
        {
            throw new IOException($"fsync of {path} failed (errno {Marshal.GetLastPInvokeError()})");
        }

        _ = Close(fd);
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    /// <summary>Reads a file to its end in 1 MiB reads.</summary>
    private static TimeSpan ReadFile(string path, byte[] buffer)
    {
        var clock = Stopwatch.StartNew();
        using var handle = File.OpenHandle(path);
        long offset = 0;
        int n;
        while ((n = RandomAccess.Read(handle, buffer, offset)) > 0)
        {
            offset += n;
        }

        return clock.Elapsed;
    }

    /// <summary>Writes a GrainFS file through the SDK in 1 MiB writes and closes it; the time from create to close.</summary>
    private static async Task<TimeSpan> WriteSdkAsync(GrainFsClient client, string path, byte[] data, long bytes, WriteType? writeType = null)
    {
        var clock = Stopwatch.StartNew();
        await using var writer = Check(await client.CreateAsync(path, new CreateOptions { WriteType = writeType }));
        for (long written = 0; written < bytes; written += WriteChunk)
        {
            Check(await writer.WriteAsync(written, data.AsMemory((int)(written % data.Length), (int)Math.Min(WriteChunk, bytes - written))));
        }

        Check(await writer.CloseAsync());
        return clock.Elapsed;
    }

    private static async Task<TimeSpan> ReadSdkAsync(GrainFsClient client, string path, byte[] buffer)
    {
        var clock = Stopwatch.StartNew();
        var file = Check(await client.OpenAsync(path));
        for (long offset = 0; offset < file.Length;)
        {
            offset += Check(await file.ReadAsync(offset, buffer));
        }

        return clock.Elapsed;
    }

    /// <summary>Drops the kernel's cached pages of a file (dd's nocache: posix_fadvise DONTNEED), so a read through FUSE reaches the daemon.</summary>
    private static async Task DropPagesAsync(string path)
    {
        var (code, _, error) = await TestProcess.RunAsync("dd", [$"if={path}", "iflag=nocache", "count=0", "status=none"]);
        if (code != 0)
        {
            throw new InvalidOperationException($"dd could not drop the cached pages of {path}: {error}");
        }
    }

    /// <summary>
    /// MUST_CACHE writes through the SDK and through FUSE against the same bytes written to a local file on the write
    /// tier's disk and fsynced; then each GrainFS file read right after it was written against a second, warm read.
    /// </summary>
    private static async Task ThroughputAsync(GrainFsClient client, string mountPoint, string local, byte[] data, Settings s)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(4 << 20, pinned: true);
        var fuseBuffer = GC.AllocateUninitializedArray<byte>(1 << 20, pinned: true);
        var disk = new List<double>();
        var sdk = new List<double>();
        var fuse = new List<double>();
        var sdkFirst = new List<double>();
        var sdkWarm = new List<double>();
        var fuseFirst = new List<double>();
        var fuseWarm = new List<double>();
        var blocks = new List<double>();

        // Untimed: every path once, so the JIT's first tiers are not measured (the first read of a block also checks its chunks).
        var warmUp = Math.Min(s.WriteBytes, 64L << 20);
        WriteFile(Path.Combine(local, "warm-up.bin"), data, warmUp);
        File.Delete(Path.Combine(local, "warm-up.bin"));
        await WriteBlocksAsync(Path.Combine(local, "blocks"), data, warmUp);
        await WriteSdkAsync(client, "/mc/warm-up.bin", data, warmUp);
        await ReadSdkAsync(client, "/mc/warm-up.bin", buffer);
        Check(await client.RemoveAsync("/mc/warm-up.bin"));
        WriteFile(Path.Combine(mountPoint, "mc", "warm-up.bin"), data, warmUp);
        ReadFile(Path.Combine(mountPoint, "mc", "warm-up.bin"), fuseBuffer);
        File.Delete(Path.Combine(mountPoint, "mc", "warm-up.bin"));

        for (var r = 0; r < s.Repeats; r++)
        {
            var localFile = Path.Combine(local, $"seq-{r}.bin");
            disk.Add(Mb(s.WriteBytes, WriteFile(localFile, data, s.WriteBytes)));
            File.Delete(localFile);
            blocks.Add(Mb(s.WriteBytes, await WriteBlocksAsync(Path.Combine(local, "blocks"), data, s.WriteBytes)));

            var sdkPath = $"/mc/seq-sdk-{r}.bin";
            sdk.Add(Mb(s.WriteBytes, await WriteSdkAsync(client, sdkPath, data, s.WriteBytes)));
            sdkFirst.Add(Mb(s.WriteBytes, await ReadSdkAsync(client, sdkPath, buffer)));
            sdkWarm.Add(Mb(s.WriteBytes, await ReadSdkAsync(client, sdkPath, buffer)));
            Check(await client.RemoveAsync(sdkPath));

            var fusePath = Path.Combine(mountPoint, "mc", $"seq-fuse-{r}.bin");
            fuse.Add(Mb(s.WriteBytes, WriteFile(fusePath, data, s.WriteBytes)));
            await DropPagesAsync(fusePath);
            fuseFirst.Add(Mb(s.WriteBytes, ReadFile(fusePath, fuseBuffer)));
            await DropPagesAsync(fusePath);
            fuseWarm.Add(Mb(s.WriteBytes, ReadFile(fusePath, fuseBuffer)));
            File.Delete(fusePath);
        }

        var size = ByteSize.Format(s.WriteBytes);
        Note(string.Create(CultureInfo.InvariantCulture, $"{size} written to local disk as the write tier stores blocks (4 MiB block files, {GrainFsWriter.MaxInFlight} at once, each checksummed, fsynced, renamed, its folder fsynced): {Median(blocks):N1} MB/s (median), against {Median(disk):N1} MB/s for one file fsynced at the end"));
        Row($"MUST_CACHE write of {size}, SDK (1 MiB writes, close) vs local disk (1 MiB writes, fsync)", Median(sdk), Median(disk), "MB/s", "≥ 0.8", ratio => ratio >= 0.8);
        Row($"MUST_CACHE write of {size}, FUSE (1 MiB writes, fsync, close) vs local disk (same)", Median(fuse), Median(disk), "MB/s", "≥ 0.8", ratio => ratio >= 0.8);
        Row($"read of the {size} file right after writing it vs a warm read, SDK (4 MiB reads)", Median(sdkFirst), Median(sdkWarm), "MB/s", "≥ 0.9", ratio => ratio >= 0.9);
        Row($"read of the {size} file right after writing it vs a warm read, FUSE (1 MiB reads, kernel pages dropped before each)", Median(fuseFirst), Median(fuseWarm), "MB/s", "≥ 0.9", ratio => ratio >= 0.9);
    }

    /// <summary>Waits, untimed, until the worker's persist queue is empty (nothing from one measurement uploads during the next).</summary>
    private static async Task DrainAsync(IWorkerGrain worker)
    {
        var deadline = Stopwatch.StartNew();
        while ((await worker.GetPersistStatusAsync()).Files > 0)
        {
            if (deadline.Elapsed > TimeSpan.FromMinutes(10))
            {
                throw new TimeoutException("the persist queue did not empty in 10 minutes");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>Close latency of an ASYNC_THROUGH file (synced on the worker and journaled) against a THROUGH one (uploaded first).</summary>
    private static async Task CloseLatencyAsync(GrainFsClient client, IWorkerGrain worker, string local, byte[] data, Settings s)
    {
        await DrainAsync(worker);
        var through = new List<double>();
        var asyncThrough = new List<double>();
        var disk = new List<double>();
        var sealOnly = new List<double>();
        for (var i = 0; i < s.CloseFiles; i++)
        {
            // What an ASYNC_THROUGH close cannot go below: the file's bytes synced on the worker's disk.
            var floor = Path.Combine(local, $"close-{i}.bin");
            disk.Add(WriteFile(floor, data, s.CloseBytes).TotalMilliseconds);
            File.Delete(floor);

            through.Add((await CloseOnlyAsync(client, $"/at/close-t-{i}.bin", data, s.CloseBytes, WriteType.Through)).TotalMilliseconds);
            asyncThrough.Add((await CloseOnlyAsync(client, $"/at/close-a-{i}.bin", data, s.CloseBytes, WriteType.AsyncThrough)).TotalMilliseconds);
            await DrainAsync(worker);
            sealOnly.Add((await CloseOnlyAsync(client, $"/at/close-s-{i}.bin", data, s.CloseBytes, WriteType.AsyncThrough, flushFirst: true)).TotalMilliseconds);
            await DrainAsync(worker);
            Check(await client.RemoveAsync($"/at/close-t-{i}.bin"));
            Check(await client.RemoveAsync($"/at/close-a-{i}.bin"));
            Check(await client.RemoveAsync($"/at/close-s-{i}.bin"));
        }

        Note(string.Create(CultureInfo.InvariantCulture, $"close latency floor: writing {ByteSize.Format(s.CloseBytes)} to local disk and fsyncing it takes {Median(disk):F1} ms; an ASYNC_THROUGH close after a flush (its blocks already synced on the worker: seal, journal, commit) {Median(sealOnly):F1} ms (medians)"));
        Row($"close latency of a {ByteSize.Format(s.CloseBytes)} file, ASYNC_THROUGH vs THROUGH (median of {s.CloseFiles})", Median(asyncThrough), Median(through), "ms", "≤ 0.1", ratio => ratio <= 0.1);
    }

    private static async Task<TimeSpan> CloseOnlyAsync(GrainFsClient client, string path, byte[] data, long bytes, WriteType writeType, bool flushFirst = false)
    {
        await using var writer = Check(await client.CreateAsync(path, new CreateOptions { WriteType = writeType }));
        for (long written = 0; written < bytes; written += WriteChunk)
        {
            Check(await writer.WriteAsync(written, data.AsMemory((int)(written % data.Length), (int)Math.Min(WriteChunk, bytes - written))));
        }

        if (flushFirst)
        {
            Check(await writer.FlushAsync());
        }

        var clock = Stopwatch.StartNew();
        Check(await writer.CloseAsync());
        return clock.Elapsed;
    }

    /// <summary>
    /// Writes <paramref name="count"/> ASYNC_THROUGH files of <paramref name="size"/> bytes, all written before any is
    /// closed (a file is uploaded only once committed), then closes them one after another; returns the time from the
    /// first close until the worker's persist queue is empty (every file persisted), with the queue's persisted-bytes
    /// counter sampled on the way.
    /// </summary>
    private static async Task<(TimeSpan Elapsed, List<(TimeSpan At, long Bytes)> Samples)> PersistFilesAsync(
        GrainFsClient client, IWorkerGrain worker, string folder, string prefix, byte[] data, int count, long size)
    {
        await DrainAsync(worker);
        var writers = new List<GrainFsWriter>();
        try
        {
            return await PersistWrittenAsync(client, worker, folder, prefix, data, count, size, writers);
        }
        finally
        {
            // Aborts what a failure left open.
            foreach (var writer in writers)
            {
                await writer.DisposeAsync();
            }
        }
    }

    private static async Task<(TimeSpan Elapsed, List<(TimeSpan At, long Bytes)> Samples)> PersistWrittenAsync(
        GrainFsClient client, IWorkerGrain worker, string folder, string prefix, byte[] data, int count, long size, List<GrainFsWriter> writers)
    {
        for (var i = 0; i < count; i++)
        {
            var writer = Check(await client.CreateAsync($"{folder}/{prefix}-{i}.bin", new CreateOptions { WriteType = WriteType.AsyncThrough }));
            writers.Add(writer);
            for (long written = 0; written < size; written += WriteChunk)
            {
                Check(await writer.WriteAsync(written, data.AsMemory((int)(written % data.Length), (int)Math.Min(WriteChunk, size - written))));
            }

            // Every block on the worker and synced, so the closes below only seal and commit.
            Check(await writer.FlushAsync());
        }

        var start = (await worker.GetPersistStatusAsync()).PersistedBytes;
        var samples = new List<(TimeSpan, long)>();
        var clock = Stopwatch.StartNew();
        foreach (var writer in writers)
        {
            Check(await writer.CloseAsync());
        }

        while (true)
        {
            var status = await worker.GetPersistStatusAsync();
            samples.Add((clock.Elapsed, status.PersistedBytes - start));
            if (status.Files == 0)
            {
                break;
            }

            if (clock.Elapsed > TimeSpan.FromMinutes(10))
            {
                throw new TimeoutException($"{count} files were not persisted in 10 minutes ({status.Failing} failing)");
            }

            await Task.Delay(10);
        }

        var elapsed = clock.Elapsed;
        for (var i = 0; i < count; i++)
        {
            var entry = Check(await client.StatAsync($"{folder}/{prefix}-{i}.bin"));
            if (entry.Persistence != Persistence.Persisted)
            {
                throw new InvalidOperationException($"{folder}/{prefix}-{i}.bin is {entry.Persistence} once the queue is empty");
            }
        }

        return (elapsed, samples);
    }

    /// <summary>The persist queue uploading pending files to moto against AWSSDK multipart uploads (TransferUtility) of the same bytes, as many files at once and parts of the same size.</summary>
    private static async Task PersistAsync(GrainFsClient client, IWorkerGrain worker, Amazon.S3.IAmazonS3 s3, byte[] data, Settings s)
    {
        var fileBytes = s.PersistBytes / s.PersistFiles;
        var total = fileBytes * s.PersistFiles;
        var direct = new List<double>();
        var grainfs = new List<double>();
        using var transfer = new TransferUtility(s3, new TransferUtilityConfig { MinSizeBeforePartUpload = PartSize });

        // Untimed: one file each way first (the JIT, the clients' connections).
        await using (var source = new RepeatingStream(data, fileBytes))
        {
            await transfer.UploadAsync(new TransferUtilityUploadRequest { BucketName = "direct-upload", Key = "warm-up.bin", InputStream = source, PartSize = PartSize, AutoCloseStream = false });
        }

        await s3.DeleteObjectAsync("direct-upload", "warm-up.bin");
        await PersistFilesAsync(client, worker, "/at", "warm-up", data, 1, fileBytes);
        Check(await client.RemoveAsync("/at/warm-up-0.bin"));

        for (var r = 0; r < s.Repeats; r++)
        {
            var keys = Enumerable.Range(0, s.PersistFiles).Select(i => $"direct-{r}-{i}.bin").ToList();
            var clock = Stopwatch.StartNew();
            await Parallel.ForEachAsync(keys, new ParallelOptions { MaxDegreeOfParallelism = PersistParallel }, async (key, ct) =>
            {
                await using var source = new RepeatingStream(data, fileBytes);
                await transfer.UploadAsync(new TransferUtilityUploadRequest { BucketName = "direct-upload", Key = key, InputStream = source, PartSize = PartSize, AutoCloseStream = false }, ct);
            });
            direct.Add(Mb(total, clock.Elapsed));
            await s3.DeleteObjectsAsync(new DeleteObjectsRequest { BucketName = "direct-upload", Objects = [.. keys.Select(k => new KeyVersion { Key = k })] });

            var (elapsed, _) = await PersistFilesAsync(client, worker, "/at", $"persist-{r}", data, s.PersistFiles, fileBytes);
            grainfs.Add(Mb(total, elapsed));
            for (var i = 0; i < s.PersistFiles; i++)
            {
                Check(await client.RemoveAsync($"/at/persist-{r}-{i}.bin"));
            }
        }

        Row($"persist of {s.PersistFiles} × {ByteSize.Format(fileBytes)} ASYNC_THROUGH files to moto (close → all persisted) vs TransferUtility uploads of the same bytes ({PersistParallel} files at once, 16 MiB parts)", Median(grainfs), Median(direct), "MB/s", "≥ 0.9", ratio => ratio >= 0.9);
    }

    /// <summary>The persist rate with --persist-rate R: the bytes of many pending files over the time from the first close until all are persisted, against R.</summary>
    private static async Task RateAsync(GrainFsClient client, IWorkerGrain worker, byte[] data, Settings s)
    {
        var files = (int)Math.Max(1, s.RateBytes / PartSize);
        var fileBytes = s.RateBytes / files;
        var total = fileBytes * files;
        var (elapsed, samples) = await PersistFilesAsync(client, worker, "/rate", "rate", data, files, fileBytes);
        var mib = 1024.0 * 1024.0;
        var measured = total / elapsed.TotalSeconds / mib;
        var configured = s.RateBytesPerSecond / mib;

        // The limiter lets one second of the rate through at once; past it (from the first file persisted after 2 s of
        // the rate's bytes) the slope is the steady rate.
        var from = samples.FirstOrDefault(x => x.Bytes >= 2 * s.RateBytesPerSecond);
        if (from.Bytes > 0 && from.Bytes < total)
        {
            var steady = (total - from.Bytes) / (elapsed - from.At).TotalSeconds / mib;
            Note(string.Create(CultureInfo.InvariantCulture, $"persist rate: {measured:F1} MiB/s over the whole run ({total / mib:F0} MiB in {elapsed.TotalSeconds:F1} s), {steady:F1} MiB/s past the first {from.Bytes / mib:F0} MiB (one second's burst)"));
        }

        Row($"persist rate with --persist-rate {ByteSize.Format(s.RateBytesPerSecond)}: {files} × {ByteSize.Format(fileBytes)} files (close → all persisted) vs the configured rate", measured, configured, "MiB/s", "1 ± 0.1", ratio => Math.Abs(ratio - 1) <= 0.1);
    }

    /// <summary>A checkpoint written through FUSE into an ASYNC_THROUGH mount (1 MiB writes, fsync, close) against the same to local disk.</summary>
    private static async Task CheckpointAsync(GrainFsClient client, IWorkerGrain worker, string mountPoint, string local, byte[] data, Settings s)
    {
        var disk = new List<double>();
        var fuse = new List<double>();
        var blocks = new List<double>();
        await WriteBlocksAsync(Path.Combine(local, "blocks"), data, Math.Min(s.CheckpointBytes, 64L << 20));
        for (var r = 0; r < s.Repeats; r++)
        {
            var localFile = Path.Combine(local, $"checkpoint-{r}.pt");
            disk.Add(Mb(s.CheckpointBytes, WriteFile(localFile, data, s.CheckpointBytes)));
            File.Delete(localFile);
            blocks.Add(Mb(s.CheckpointBytes, await WriteBlocksAsync(Path.Combine(local, "blocks"), data, s.CheckpointBytes)));

            await DrainAsync(worker);
            fuse.Add(Mb(s.CheckpointBytes, WriteFile(Path.Combine(mountPoint, "at", $"checkpoint-{r}.pt"), data, s.CheckpointBytes)));
            // Persisted before the next repeat, so no upload runs under a measured write; then removed (write tier, moto).
            Check(await client.PersistAsync($"/at/checkpoint-{r}.pt", TimeSpan.FromMinutes(10)));
            Check(await client.RemoveAsync($"/at/checkpoint-{r}.pt"));
        }

        Note(string.Create(CultureInfo.InvariantCulture, $"{ByteSize.Format(s.CheckpointBytes)} written to local disk as the write tier stores blocks: {Median(blocks):N1} MB/s (median), against {Median(disk):N1} MB/s for one file fsynced at the end"));
        Row($"{ByteSize.Format(s.CheckpointBytes)} checkpoint through FUSE into an ASYNC_THROUGH mount (1 MiB writes, fsync, close) vs local disk (same)", Median(fuse), Median(disk), "MB/s", "≥ 0.7", ratio => ratio >= 0.7);
    }

    private static async Task WriteResultsAsync(string output, Settings s, string table)
    {
        Directory.CreateDirectory(output);
        var stamp = DateTime.UtcNow.ToString("yyyy-MM-dd-HHmm", CultureInfo.InvariantCulture);
        var markdown = Path.Combine(output, $"write-{stamp}.md");
        var json = Path.Combine(output, $"write-{stamp}.json");
        await File.WriteAllTextAsync(json, JsonSerializer.Serialize(Rows, new JsonSerializerOptions { WriteIndented = true }));

        var given = Environment.GetCommandLineArgs().Skip(1).Where(a => !a.EndsWith(".dll", StringComparison.Ordinal));
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"# GrainFS write path — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        text.AppendLine();
        text.AppendLine($"Command: `grainfs-bench {string.Join(' ', given)}`");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"One silo (roles gpu,read,write; tiers MEM 256 MiB on /dev/shm, SSD on the run's folder; --write-tier SSD; --persist-parallel {PersistParallel}), the SDK client and the FUSE daemon on one host; moto on loopback as the S3 under-storage (mounts with 16 MiB parts). Local-disk baselines write a file in the same file system as the SSD tier, in 1 MiB writes, fsynced at the end. Medians of {s.Repeats} repeats; the rate row is one run on a silo started with --persist-rate.");
        text.AppendLine();
        text.AppendLine(table);
        foreach (var note in Notes)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"- {note}");
        }

        text.AppendLine();
        text.AppendLine("## Machine");
        text.AppendLine();
        var cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
        text.AppendLine(CultureInfo.InvariantCulture, $"- CPU: {Environment.ProcessorCount} × {cpu}");
        text.AppendLine(CultureInfo.InvariantCulture, $"- memory: {File.ReadLines("/proc/meminfo").First().Split(':', 2)[1].Trim()}");
        text.AppendLine(CultureInfo.InvariantCulture, $"- {RuntimeInformation.OSDescription}; .NET {Environment.Version}");
        text.AppendLine(CultureInfo.InvariantCulture, $"- load average at the end: {File.ReadAllText("/proc/loadavg").Trim()}");
        await File.WriteAllTextAsync(markdown, text.ToString());
        Console.WriteLine($"results: {markdown}, {json}");
    }

    /// <summary>A read-only stream of <paramref name="length"/> bytes that repeats <paramref name="data"/>: an upload's source with no copy of its own.</summary>
    private sealed class RepeatingStream(byte[] data, long length) : Stream
    {
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => true;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position
        {
            get => _position;
            set => _position = value;
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var at = (int)(_position % data.Length);
            var take = (int)Math.Min(Math.Min(buffer.Length, data.Length - at), length - _position);
            if (take <= 0)
            {
                return 0;
            }

            data.AsSpan(at, take).CopyTo(buffer);
            _position += take;
            return take;
        }

        public override long Seek(long offset, SeekOrigin origin) => _position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => length + offset,
        };

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
