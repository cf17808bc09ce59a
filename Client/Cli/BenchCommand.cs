using System.Buffers;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.IO.Hashing;
using System.Text;
using GrainFs.Client;
using GrainFs.DataPlane;

namespace GrainFs.Cli;

/// <summary>
/// `grainfs bench`, in the habits of `juicefs bench`: writes and reads back big files and many small files, then stats
/// the small ones, through the SDK (a GrainFS path) or through a FUSE mount (<c>--fuse</c>: a local folder), with a
/// progress line per stage on stderr and a table (or <c>--json</c>) on stdout. Every byte read back is checked against
/// what was written; the files are removed at the end unless <c>--keep</c>.
/// </summary>
internal static class BenchCommand
{
    public static Command Build()
    {
        var path = Commands.Positional("path", "a writable GrainFS directory (or, with --fuse, a local folder inside a GrainFS FUSE mount)");
        var fuse = Commands.Switch("--fuse", "PATH is a local folder (inside a GrainFS FUSE mount): measure through the mount with plain file I/O");
        var bigSize = Commands.Valued("--big-file-size", "SIZE", "size of each big file (default 1GiB)");
        var smallSize = Commands.Valued("--small-file-size", "SIZE", "size of each small file (default 128KiB)");
        var smallCount = Commands.Valued("--small-files", "N", "small files per thread (default 100)");
        var threads = Commands.Valued("--threads", "N", "concurrent workers, each with its own big file and small files (default 1)");
        var blockSize = Commands.Valued("--block-size", "SIZE", "bytes per write and read call (default 1MiB)");
        var keep = Commands.Switch("--keep", "keep the files written (in a folder named __grainfs_bench_* under PATH)");
        var json = Commands.Switch("--json", "one JSON object: the settings and, per stage, bytes, files, seconds, MiB/s and files/s");
        var command = new Command("bench", "measure writes and reads of big and small files and stats, through the SDK or a FUSE mount (a table at the end)")
        {
            path, fuse, bigSize, smallSize, smallCount, threads, blockSize, keep, json,
        };
        command.SetAction((parse, _) =>
        {
            var settings = new BenchSettings(
                Size(parse.GetValue(bigSize), "--big-file-size", 1L << 30, 0, 1L << 40),
                Size(parse.GetValue(smallSize), "--small-file-size", 128 << 10, 0, 1L << 30),
                (int)Count(parse.GetValue(smallCount), "--small-files", 100, 0, 1_000_000),
                (int)Count(parse.GetValue(threads), "--threads", 1, 1, 256),
                (int)Size(parse.GetValue(blockSize), "--block-size", 1 << 20, 4096, 64L << 20));
            var target = parse.GetValue(path)!;
            if (parse.GetValue(fuse))
            {
                if (!Directory.Exists(target))
                {
                    throw new UsageException($"--fuse: '{target}' is not a local folder");
                }

                return RunAsync(new FolderTarget(Path.GetFullPath(target)), settings, parse.GetValue(keep), parse.GetValue(json), new Terminal(Console.Out, Console.OpenStandardOutput()));
            }

            return Commands.WithClientAsync(parse, (client, terminal) => RunAsync(new SdkTarget(client, target.TrimEnd('/')), settings, parse.GetValue(keep), parse.GetValue(json), terminal));
        });
        return command;
    }

    private static long Size(string? text, string option, long fallback, long least, long most)
    {
        if (text is null)
        {
            return fallback;
        }

        if (!ByteSize.TryParse(text, out var bytes, out var error))
        {
            throw new UsageException($"{option}: {error}");
        }

        return bytes < least || bytes > most
            ? throw new UsageException($"{option} '{text}': from {ByteSize.Format(least)} to {ByteSize.Format(most)}")
            : bytes;
    }

    private static long Count(string? text, string option, long fallback, long least, long most)
    {
        if (text is null)
        {
            return fallback;
        }

        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value >= least && value <= most
            ? value
            : throw new UsageException($"{option} '{text}': a whole number from {least} to {most}");
    }

    private static async Task<int> RunAsync(IBenchTarget target, BenchSettings settings, bool keep, bool asJson, Terminal terminal)
    {
        var folder = $"__grainfs_bench_{Environment.ProcessId}_{DateTime.UtcNow:yyyyMMddHHmmss}";
        var made = await target.MakeDirectoryAsync(folder);
        if (made is not null)
        {
            return Program.Fail(FsStatus.IoError, $"{target.Describe(folder)}: cannot make the bench folder: {made}");
        }

        var stages = new List<StageResult>();
        string? failure = null;
        try
        {
            var threads = Enumerable.Range(0, settings.Threads).ToArray();
            foreach (var t in threads)
            {
                made = await target.MakeDirectoryAsync($"{folder}/t{t}");
                if (made is not null)
                {
                    return Program.Fail(FsStatus.IoError, $"{target.Describe($"{folder}/t{t}")}: {made}");
                }
            }

            string Big(int t) => $"{folder}/t{t}/big";
            string Small(int t, int i) => $"{folder}/t{t}/small-{i:D6}";
            var big = settings.BigFileSize > 0 ? threads.Select(t => (Name: Big(t), Size: settings.BigFileSize)).ToList() : [];
            var small = threads.SelectMany(t => Enumerable.Range(0, settings.SmallFiles).Select(i => (Name: Small(t, i), Size: settings.SmallFileSize))).ToList();
            var plan = new (string Stage, List<(string Name, long Size)> Files, StageKind Kind)[]
            {
                ("Write big file", big, StageKind.Write),
                ("Read big file", big, StageKind.Read),
                ("Write small file", small, StageKind.Write),
                ("Read small file", small, StageKind.Read),
                ("Stat file", small, StageKind.Stat),
            };
            foreach (var (stage, files, kind) in plan)
            {
                if (files.Count == 0)
                {
                    continue;
                }

                var (result, error) = await RunStageAsync(target, stage, files, kind, settings);
                stages.Add(result);
                if (error is not null)
                {
                    failure = error;
                    break;
                }
            }
        }
        finally
        {
            if (!keep)
            {
                var removed = await target.RemoveTreeAsync(folder);
                if (removed is not null)
                {
                    await Console.Error.WriteLineAsync($"grainfs bench: could not remove {target.Describe(folder)}: {removed}");
                }
            }
            else
            {
                await Console.Error.WriteLineAsync($"grainfs bench: kept {target.Describe(folder)}");
            }
        }

        Print(terminal, stages, settings, target, asJson);
        return failure is null ? 0 : Program.Fail(FsStatus.IoError, failure);
    }

    private enum StageKind
    {
        Write,
        Read,
        Stat,
    }

    private static async Task<(StageResult Result, string? Error)> RunStageAsync(IBenchTarget target, string stage, List<(string Name, long Size)> files, StageKind kind, BenchSettings settings)
    {
        var totalBytes = kind == StageKind.Stat ? 0 : files.Sum(f => f.Size);
        string? error = null;
        var clock = Stopwatch.StartNew();
        using var progress = new StageProgress(stage, files.Count, totalBytes, clock);
        var next = -1;
        var workers = Enumerable.Range(0, Math.Min(settings.Threads, files.Count)).Select(_ => Task.Run(async () =>
        {
            var buffer = ArrayPool<byte>.Shared.Rent(settings.BlockSize);
            try
            {
                int i;
                while (Volatile.Read(ref error) is null && (i = Interlocked.Increment(ref next)) < files.Count)
                {
                    var (name, size) = files[i];
                    var failed = kind switch
                    {
                        StageKind.Write => await target.WriteAsync(name, size, buffer.AsMemory(0, settings.BlockSize), n => progress.Add(n, 0)),
                        StageKind.Read => await target.ReadCheckedAsync(name, size, buffer.AsMemory(0, settings.BlockSize), n => progress.Add(n, 0)),
                        _ => await target.StatAsync(name, size),
                    };
                    if (failed is not null)
                    {
                        Interlocked.CompareExchange(ref error, $"{stage}: {target.Describe(name)}: {failed}", null);
                        return;
                    }

                    progress.Add(0, 1);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        })).ToArray();
        await Task.WhenAll(workers);
        clock.Stop();
        var (doneBytes, doneFiles) = progress.Totals;
        progress.Finish();
        return (new StageResult(stage, doneFiles, doneBytes, clock.Elapsed.TotalSeconds), error);
    }

    private static void Print(Terminal terminal, List<StageResult> stages, BenchSettings settings, IBenchTarget target, bool asJson)
    {
        if (asJson)
        {
            using var json = Output.JsonWriter(terminal.Stream);
            json.WriteStartObject();
            json.WriteString("through", target.Through);
            json.WriteNumber("bigFileSize", settings.BigFileSize);
            json.WriteNumber("smallFileSize", settings.SmallFileSize);
            json.WriteNumber("smallFiles", settings.SmallFiles);
            json.WriteNumber("threads", settings.Threads);
            json.WriteNumber("blockSize", settings.BlockSize);
            json.WriteStartArray("stages");
            foreach (var s in stages)
            {
                json.WriteStartObject();
                json.WriteString("stage", s.Stage);
                json.WriteNumber("files", s.Files);
                json.WriteNumber("bytes", s.Bytes);
                json.WriteNumber("seconds", Math.Round(s.Seconds, 4));
                json.WriteNumber("mibPerSecond", Math.Round(s.Bytes / 1048576.0 / Math.Max(s.Seconds, 1e-6), 2));
                json.WriteNumber("filesPerSecond", Math.Round(s.Files / Math.Max(s.Seconds, 1e-6), 2));
                json.WriteNumber("millisecondsPerFile", s.Files == 0 ? 0 : Math.Round(s.Seconds * 1000 / s.Files, 3));
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
            json.Flush();
            terminal.Stream.Write("\n"u8);
            return;
        }

        var rows = stages.Select(s =>
        {
            var seconds = Math.Max(s.Seconds, 1e-6);
            var perFile = s.Files == 0 ? 0 : s.Seconds / s.Files;
            return s.Stage.Contains("big", StringComparison.Ordinal)
                ? (s.Stage, Value: string.Create(CultureInfo.InvariantCulture, $"{s.Bytes / 1048576.0 / seconds:F2} MiB/s"), Cost: string.Create(CultureInfo.InvariantCulture, $"{perFile:F2} s/file"))
                : (s.Stage, Value: string.Create(CultureInfo.InvariantCulture, $"{s.Files / seconds:F1} files/s"), Cost: string.Create(CultureInfo.InvariantCulture, $"{perFile * 1000:F2} ms/file"));
        }).ToList();
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Through {target.Through}: {settings.Threads} thread(s), big files {ByteSize.Format(settings.BigFileSize)}, {settings.SmallFiles} small files of {ByteSize.Format(settings.SmallFileSize)} per thread, {ByteSize.Format(settings.BlockSize)} per call");
        var widths = (Item: Math.Max(4, rows.Max(r => r.Stage.Length)), Value: Math.Max(5, rows.Max(r => r.Value.Length)), Cost: Math.Max(4, rows.Max(r => r.Cost.Length)));
        var rule = $"+-{new string('-', widths.Item)}-+-{new string('-', widths.Value)}-+-{new string('-', widths.Cost)}-+";
        text.AppendLine(rule);
        text.AppendLine($"| {"ITEM".PadRight(widths.Item)} | {"VALUE".PadLeft(widths.Value)} | {"COST".PadLeft(widths.Cost)} |");
        text.AppendLine(rule);
        foreach (var (stage, value, cost) in rows)
        {
            text.AppendLine($"| {stage.PadRight(widths.Item)} | {value.PadLeft(widths.Value)} | {cost.PadLeft(widths.Cost)} |");
        }

        text.AppendLine(rule);
        terminal.Out.Write(text.ToString());
    }

    /// <summary>The bytes of file <paramref name="name"/> at <paramref name="offset"/>: a stream seeded by the name, so a read checks what a write wrote.</summary>
    internal static void Fill(string name, long offset, Span<byte> destination)
    {
        // 8-byte words, a mix of the name's hash and the word's index: cheap, different per file and per place, and
        // checkable anywhere. Offsets past the first are whole words (calls move by the block size, a multiple of 8).
        var seed = XxHash64.HashToUInt64(Encoding.UTF8.GetBytes(name));
        var first = offset / 8;
        var skip = (int)(offset % 8);
        if (skip != 0)
        {
            Span<byte> word = stackalloc byte[8];
            BitConverter.TryWriteBytes(word, Word(seed, first));
            var n = Math.Min(8 - skip, destination.Length);
            word.Slice(skip, n).CopyTo(destination);
            destination = destination[n..];
            first++;
        }

        var words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(destination);
        for (var i = 0; i < words.Length; i++)
        {
            words[i] = Word(seed, first + i);
        }

        var tail = destination[(words.Length * 8)..];
        if (tail.Length > 0)
        {
            Span<byte> word = stackalloc byte[8];
            BitConverter.TryWriteBytes(word, Word(seed, first + words.Length));
            word[..tail.Length].CopyTo(tail);
        }
    }

    private static ulong Word(ulong seed, long index)
    {
        var x = seed ^ ((ulong)index * 0x9E3779B97F4A7C15UL);
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        return x ^ (x >> 31);
    }

    private sealed record BenchSettings(long BigFileSize, long SmallFileSize, int SmallFiles, int Threads, int BlockSize);

    private sealed record StageResult(string Stage, long Files, long Bytes, double Seconds);

    /// <summary>A stage's progress line on stderr: a bar, bytes or files, and the rate so far.</summary>
    private sealed class StageProgress : IDisposable
    {
        private readonly string _stage;
        private readonly int _files;
        private readonly long _bytes;
        private readonly Stopwatch _clock;
        private readonly bool _plain = Console.IsErrorRedirected;
        private readonly Timer _timer;
        private long _doneBytes;
        private long _doneFiles;

        public StageProgress(string stage, int files, long bytes, Stopwatch clock)
        {
            (_stage, _files, _bytes, _clock) = (stage, files, bytes, clock);
            _timer = new Timer(_ => Draw(), null, _plain ? 2000 : 200, _plain ? 2000 : 200);
        }

        public (long Bytes, long Files) Totals => (Interlocked.Read(ref _doneBytes), Interlocked.Read(ref _doneFiles));

        public void Add(long bytes, long files)
        {
            Interlocked.Add(ref _doneBytes, bytes);
            Interlocked.Add(ref _doneFiles, files);
        }

        public void Finish()
        {
            _timer.Dispose();
            Draw();
            if (!_plain)
            {
                Console.Error.WriteLine();
            }
        }

        public void Dispose() => _timer.Dispose();

        private void Draw()
        {
            var (bytes, files) = Totals;
            var share = _bytes > 0 ? (double)bytes / _bytes : _files == 0 ? 1 : (double)files / _files;
            var filled = (int)(Math.Clamp(share, 0, 1) * 30);
            var seconds = Math.Max(_clock.Elapsed.TotalSeconds, 0.001);
            var rate = _bytes > 0 ? string.Create(CultureInfo.InvariantCulture, $"{bytes / 1048576.0 / seconds:F1} MiB/s") : string.Create(CultureInfo.InvariantCulture, $"{files / seconds:F0} files/s");
            var line = string.Create(CultureInfo.InvariantCulture, $"{_stage,-17} [{new string('#', filled)}{new string('.', 30 - filled)}] {files}/{_files} files  {rate}");
            lock (Console.Error)
            {
                Console.Error.Write(_plain ? line + "\n" : "\r" + line);
            }
        }
    }

    /// <summary>Where the bench writes: GrainFS through the SDK, or a local folder (a FUSE mount). Each call answers null or an error.</summary>
    private interface IBenchTarget
    {
        string Through { get; }

        string Describe(string name);

        Task<string?> MakeDirectoryAsync(string name);

        Task<string?> WriteAsync(string name, long size, Memory<byte> buffer, Action<long> progress);

        Task<string?> ReadCheckedAsync(string name, long size, Memory<byte> buffer, Action<long> progress);

        Task<string?> StatAsync(string name, long size);

        Task<string?> RemoveTreeAsync(string name);
    }

    private static string? Compare(string name, long offset, ReadOnlySpan<byte> read)
    {
        var expected = ArrayPool<byte>.Shared.Rent(read.Length);
        try
        {
            Fill(name, offset, expected.AsSpan(0, read.Length));
            var mismatch = read.CommonPrefixLength(expected.AsSpan(0, read.Length));
            return mismatch == read.Length ? null : string.Create(CultureInfo.InvariantCulture, $"byte {offset + mismatch} read back differs from the byte written");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(expected);
        }
    }

    private sealed class SdkTarget(GrainFsClient client, string root) : IBenchTarget
    {
        public string Through => "the SDK";

        public string Describe(string name) => $"{root}/{name}";

        public async Task<string?> MakeDirectoryAsync(string name)
        {
            var made = await client.MakeDirectoryAsync(Describe(name), parents: true);
            return made.IsOk ? null : made.Describe();
        }

        public async Task<string?> WriteAsync(string name, long size, Memory<byte> buffer, Action<long> progress)
        {
            var created = await client.CreateAsync(Describe(name));
            if (!created.IsOk)
            {
                return created.Describe();
            }

            await using var writer = created.Value!;
            for (long offset = 0; offset < size;)
            {
                var n = (int)Math.Min(buffer.Length, size - offset);
                Fill(name, offset, buffer.Span[..n]);
                var written = await writer.WriteAsync(offset, buffer[..n]);
                if (!written.IsOk)
                {
                    return written.Describe();
                }

                offset += n;
                progress(n);
            }

            var closed = await writer.CloseAsync();
            return closed.IsOk ? null : closed.Describe();
        }

        public async Task<string?> ReadCheckedAsync(string name, long size, Memory<byte> buffer, Action<long> progress)
        {
            var opened = await client.OpenAsync(Describe(name));
            if (!opened.IsOk)
            {
                return opened.Describe();
            }

            var file = opened.Value!;
            long offset = 0;
            while (offset < size)
            {
                var read = await file.ReadAsync(offset, buffer[..(int)Math.Min(buffer.Length, size - offset)]);
                if (!read.IsOk)
                {
                    return read.Describe();
                }

                if (read.Value == 0)
                {
                    break;
                }

                if (Compare(name, offset, buffer.Span[..read.Value]) is { } wrong)
                {
                    return wrong;
                }

                offset += read.Value;
                progress(read.Value);
            }

            return offset == size ? null : string.Create(CultureInfo.InvariantCulture, $"{offset} bytes read back of {size} written");
        }

        public async Task<string?> StatAsync(string name, long size)
        {
            var stat = await client.StatAsync(Describe(name));
            return !stat.IsOk ? stat.Describe() : stat.Value!.Size == size ? null : string.Create(CultureInfo.InvariantCulture, $"size {stat.Value.Size}, {size} written");
        }

        public async Task<string?> RemoveTreeAsync(string name)
        {
            var removed = await client.RemoveAsync(Describe(name), recursive: true);
            return removed.IsOk ? null : removed.Describe();
        }
    }

    private sealed class FolderTarget(string root) : IBenchTarget
    {
        public string Through => "the FUSE mount";

        public string Describe(string name) => Path.Combine(root, name);

        public Task<string?> MakeDirectoryAsync(string name) => Try(() => Directory.CreateDirectory(Describe(name)));

        public Task<string?> WriteAsync(string name, long size, Memory<byte> buffer, Action<long> progress) => TryAsync(async () =>
        {
            await using var stream = new FileStream(Describe(name), FileMode.CreateNew, FileAccess.Write, FileShare.None, 0, FileOptions.Asynchronous);
            for (long offset = 0; offset < size;)
            {
                var n = (int)Math.Min(buffer.Length, size - offset);
                Fill(name, offset, buffer.Span[..n]);
                await stream.WriteAsync(buffer[..n]);
                offset += n;
                progress(n);
            }
        });

        public async Task<string?> ReadCheckedAsync(string name, long size, Memory<byte> buffer, Action<long> progress)
        {
            string? wrong = null;
            long offset = 0;
            var failed = await TryAsync(async () =>
            {
                await using var stream = new FileStream(Describe(name), FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.Asynchronous);
                int read;
                while (wrong is null && (read = await stream.ReadAsync(buffer)) > 0)
                {
                    wrong = Compare(name, offset, buffer.Span[..read]);
                    offset += read;
                    progress(read);
                }
            });
            return failed ?? wrong ?? (offset == size ? null : string.Create(CultureInfo.InvariantCulture, $"{offset} bytes read back of {size} written"));
        }

        public Task<string?> StatAsync(string name, long size)
        {
            var info = new FileInfo(Describe(name));
            return Task.FromResult(!info.Exists ? "not found" : info.Length == size ? null : string.Create(CultureInfo.InvariantCulture, $"size {info.Length}, {size} written"));
        }

        public Task<string?> RemoveTreeAsync(string name) => Try(() => Directory.Delete(Describe(name), recursive: true));

        private static Task<string?> Try(Action action)
        {
            try
            {
                action();
                return Task.FromResult<string?>(null);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return Task.FromResult<string?>(e.Message);
            }
        }

        private static async Task<string?> TryAsync(Func<Task> action)
        {
            try
            {
                await action();
                return null;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return e.Message;
            }
        }
    }
}
