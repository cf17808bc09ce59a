using System.Buffers;
using System.CommandLine;
using System.Runtime.InteropServices;
using GrainFs.Client;

namespace GrainFs.Cli;

/// <summary>
/// The `grainfs fs` commands that write: put and its counterpart get, cp, mkdir, rm, mv, persist. Like cp, mv and rm
/// they print nothing on success, report each failure on stderr and go on with the next path, and exit 1 when any failed.
/// </summary>
internal sealed class WriteCommands(GrainFsClient client, Terminal terminal)
{
    /// <summary>Bytes moved per read between GrainFS and a local file.</summary>
    private const int TRANSFER_BUFFER = 4 << 20;

    /// <summary>Files of one directory page copied at once by cp -r.</summary>
    private const int COPY_PARALLELISM = 8;

    private static readonly TimeSpan DefaultPersistTimeout = TimeSpan.FromMinutes(10);

    private readonly TextWriter stdout = terminal.Out;
    private readonly Stream stdoutStream = terminal.Stream;

    public static IEnumerable<Command> Build()
    {
        var putLocal = Commands.Positional("local", "a local file, or - for stdin");
        var putPath = Commands.Positional("path", "the GrainFS file to write (replaced when it exists); an existing directory: the file goes inside it");
        var putWriteType = Commands.WriteTypeOption();
        var exclusive = Commands.Switch("--exclusive", "fail with EEXIST when the GrainFS file exists");
        var putJson = Commands.Switch("--json", "print the written entry as fs stat --json does");
        var put = new Command("put", "write a local file (or stdin) into GrainFS; it appears whole when the upload closes") { putLocal, putPath, putWriteType, exclusive, putJson };
        put.SetAction(async (parse, _) =>
        {
            var local = parse.GetValue(putLocal)!;

            // The local side is checked before connecting: a mistyped name fails at once.
            if (OpenLocal(local) is not { } source)
            {
                return 1;
            }

            await using (source)
            {
                var options = new CreateOptions { Exclusive = parse.GetValue(exclusive), WriteType = parse.GetValue(putWriteType), Mode = LocalMode(source) };
                return await Commands.WithClientAsync(parse, (c, t) => new WriteCommands(c, t).PutAsync(source, local, parse.GetValue(putPath)!, options, parse.GetValue(putJson)));
            }
        });
        yield return put;

        var getPath = Commands.Positional("path", "a GrainFS file");
        var getLocal = Commands.Positional("local", "the local file to write (replaced whole), an existing folder to write into, or - for stdout");
        var get = new Command("get", "copy a GrainFS file to a local file, through a temporary file renamed at the end (a failure leaves no half file)") { getPath, getLocal };
        get.SetAction((parse, _) =>
        {
            var path = parse.GetValue(getPath)!;
            var local = parse.GetValue(getLocal)!;
            if (local == "-")
            {
                return Commands.WithClientAsync(parse, (c, t) => new WriteCommands(c, t).GetAsync(path, null));
            }

            var target = Directory.Exists(local) ? Path.Combine(local, NameOf(path)) : local;
            var folder = Path.GetDirectoryName(Path.GetFullPath(target));
            if (folder is null || !Directory.Exists(folder) || Directory.Exists(target))
            {
                return Task.FromResult(Directory.Exists(target)
                    ? Program.Fail(FsStatus.IsADirectory, $"local file {target}: is a directory")
                    : Program.Fail(FsStatus.NotFound, $"local folder {folder ?? target}: {FsStatus.NotFound.Describe()}"));
            }

            return Commands.WithClientAsync(parse, (c, t) => new WriteCommands(c, t).GetAsync(path, target));
        });
        yield return get;

        var cpSource = Commands.Positional("src", "a GrainFS file, or with -r a directory");
        var cpDestination = Commands.Positional("dst", "the GrainFS path of the copy; an existing directory: the copy goes inside it");
        var cpRecursive = Commands.Switch("-r", "copy a directory and everything under it", "-R", "--recursive");
        var cpWriteType = Commands.WriteTypeOption();
        var cp = new Command("cp", "copy files inside GrainFS (across mounts too); the copies keep their permission bits") { cpSource, cpDestination, cpRecursive, cpWriteType };
        cp.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) =>
            new WriteCommands(c, t).CopyAsync(parse.GetValue(cpSource)!, parse.GetValue(cpDestination)!, parse.GetValue(cpRecursive), parse.GetValue(cpWriteType))));
        yield return cp;

        var mkdirPaths = new Argument<string[]>("path") { Description = "the directories to make", Arity = ArgumentArity.OneOrMore };
        var parents = Commands.Switch("-p", "make missing parents too, and no error when a directory exists", "--parents");
        var mkdir = new Command("mkdir", "make directories") { mkdirPaths, parents };
        mkdir.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new WriteCommands(c, t).MakeDirectoriesAsync(parse.GetValue(mkdirPaths)!, parse.GetValue(parents))));
        yield return mkdir;

        var rmPaths = new Argument<string[]>("path") { Description = "the files or directories to remove", Arity = ArgumentArity.OneOrMore };
        var rmRecursive = Commands.Switch("-r", "remove directories and everything under them", "-R", "--recursive");
        var rm = new Command("rm", "remove files (and with -r directories) from GrainFS and from under-storage") { rmPaths, rmRecursive };
        rm.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new WriteCommands(c, t).RemoveAsync(parse.GetValue(rmPaths)!, parse.GetValue(rmRecursive))));
        yield return rm;

        var mvSource = Commands.Positional("src", "a GrainFS file or directory");
        var mvDestination = Commands.Positional("dst", "its new path; an existing directory: it moves inside it");
        var mv = new Command("mv", "rename or move a file or directory (across mounts: copied, then removed)") { mvSource, mvDestination };
        mv.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new WriteCommands(c, t).MoveAsync(parse.GetValue(mvSource)!, parse.GetValue(mvDestination)!)));
        yield return mv;

        var persistPath = Commands.Positional("path", "a file, or a directory (every file under it)");
        var timeout = Commands.Checked<TimeSpan>("--timeout", "DURATION", "how long to wait: 30s, 10m, 2h or hh:mm:ss (default 10m); then ETIMEDOUT, or EIO with the reason when the upload failed",
            CacheCommands.TryParseDuration, $"not a duration; 30s, 10m, 2h, 7d or hh:mm:ss, at most {CacheCommands.MaxDurationDays}d");
        var persistJson = Commands.Switch("--json", "print the entry as fs stat --json does");
        var persist = new Command("persist", "wait until a file (or every file under a directory) is in under-storage") { persistPath, timeout, persistJson };
        persist.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) =>
            new WriteCommands(c, t).PersistAsync(parse.GetValue(persistPath)!, parse.GetValue(timeout) ?? DefaultPersistTimeout, parse.GetValue(persistJson))));
        yield return persist;
    }

    public async Task<int> PutAsync(Stream source, string local, string path, CreateOptions options, bool asJson)
    {
        if (Normalize(path) is not { } target)
        {
            return 1;
        }

        if (local != "-" && (await client.StatAsync(target)).Value is { IsDirectory: true })
        {
            target = FsPath.Combine(target, Path.GetFileName(local));
        }

        using var interrupt = new Interrupt();
        FsResult<FsEntry> written;
        try
        {
            written = await client.WriteFileAsync(target, source, options, interrupt.Token);
        }
        catch (OperationCanceledException) when (interrupt.Token.IsCancellationRequested)
        {
            return Interrupt.Report();
        }
        catch (IOException e)
        {
            // The SDK reads the stream; a failing read is the local side's fault, not the cluster's.
            return Program.Fail(LocalStatus(e), $"{(local == "-" ? "stdin" : "local file " + local)}: {e.Message}");
        }

        if (!written.IsOk)
        {
            return Program.Fail(written.Status, written.Describe());
        }

        if (asJson)
        {
            await Output.WriteEntryArrayAsync(stdoutStream, target, written.Value!);
        }

        return 0;
    }

    /// <summary>Copies a GrainFS file to <paramref name="local"/> through a temporary file next to it, or to stdout when it is null.</summary>
    public async Task<int> GetAsync(string path, string? local)
    {
        var opened = await client.OpenAsync(path);
        if (!opened.IsOk)
        {
            return Program.Fail(opened.Status, opened.Describe());
        }

        var file = opened.Value!;
        if (local is null)
        {
            var status = await ReadToAsync(file, stdoutStream, CancellationToken.None);
            await stdoutStream.FlushAsync();
            return status.IsOk ? 0 : Program.Fail(status.Status, status.Describe());
        }

        // Named after the target so a leftover (the process killed) says what it was; a random part keeps concurrent
        // gets apart; 50 characters of the name keep it under NAME_MAX in any UTF-8.
        var name = Path.GetFileName(local);
        var prefix = name.Length <= 50 ? name : name[..(char.IsHighSurrogate(name[49]) ? 49 : 50)];
        var temp = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(local))!, $".{prefix}.{Guid.NewGuid().ToString("N")[..8]}.grainfs-get");
        using var interrupt = new Interrupt();
        var renamed = false;
        try
        {
            FsResult<long> copied;
            await using (var output = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0, FileOptions.Asynchronous))
            {
                copied = await ReadToAsync(file, output, interrupt.Token);
                if (copied.IsOk)
                {
                    output.Flush(flushToDisk: true);
                }
            }

            if (!copied.IsOk)
            {
                return Program.Fail(copied.Status, copied.Describe());
            }

            File.Move(temp, local, overwrite: true);
            renamed = true;
            return 0;
        }
        catch (OperationCanceledException) when (interrupt.Token.IsCancellationRequested)
        {
            return Interrupt.Report();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Program.Fail(LocalStatus(e), $"local file {local}: {e.Message}");
        }
        finally
        {
            if (!renamed)
            {
                DeleteQuietly(temp);
            }
        }
    }

    /// <summary>Removes a temporary file; one that cannot be removed is left rather than hide the error that matters.</summary>
    private static void DeleteQuietly(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Writes a whole file version to <paramref name="destination"/> (fs get, fs cat); the bytes written, or the read's failure.</summary>
    public static async Task<FsResult<long>> ReadToAsync(GrainFsFile file, Stream destination, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(TRANSFER_BUFFER);
        try
        {
            long offset = 0;
            while (offset < file.Length)
            {
                var read = await file.ReadAsync(offset, buffer.AsMemory(0, (int)Math.Min(buffer.Length, file.Length - offset)), cancellationToken);
                if (!read.IsOk)
                {
                    return FsResult<long>.Fail(read.Status, read.Message);
                }

                if (read.Value == 0)
                {
                    return FsResult<long>.Fail(FsStatus.IoError, $"{file.Path}: ended at byte {offset} of {file.Length}");
                }

                await destination.WriteAsync(buffer.AsMemory(0, read.Value), cancellationToken);
                offset += read.Value;
            }

            return FsResult<long>.Ok(offset);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public async Task<int> CopyAsync(string source, string destination, bool recursive, WriteType? writeType)
    {
        if (Normalize(source) is not { } from || Normalize(destination) is not { } to)
        {
            return 1;
        }

        var stat = await client.StatAsync(from);
        if (!stat.IsOk)
        {
            return Program.Fail(stat.Status, stat.Describe());
        }

        var entry = stat.Value!;
        if (entry.IsDirectory && !recursive)
        {
            return Program.Fail(FsStatus.IsADirectory, $"cannot copy '{from}': is a directory; cp -r copies it and everything under it");
        }

        var target = await IntoAsync(from, to);
        if (target == from || (entry.IsDirectory && FsPath.IsSameOrBelow(target, from)))
        {
            return Program.Fail(FsStatus.InvalidArgument, target == from ? $"'{from}' and '{target}' are the same file" : $"cannot copy '{from}' into itself, '{target}'");
        }

        if (!entry.IsDirectory)
        {
            var copied = await client.CopyAsync(from, target, CopyOptions(entry, writeType));
            return copied.IsOk ? 0 : Program.Fail(copied.Status, copied.Describe());
        }

        return await CopyTreeAsync(from, entry, target, writeType) == 0 ? 0 : 1;
    }

    /// <summary>Copies a directory tree: its directories one by one, depth first, the files of a page a few at a time. The failures, each reported.</summary>
    private async Task<int> CopyTreeAsync(string source, FsEntry root, string destination, WriteType? writeType)
    {
        var failures = 0;
        var pending = new Stack<(string From, string To, FsEntry Entry)>();
        pending.Push((source, destination, root));
        var files = new List<(string From, string To, FsEntry Entry)>();
        while (pending.Count > 0)
        {
            var (from, to, directory) = pending.Pop();
            var made = await client.MakeDirectoryAsync(to, parents: false, PermissionBits(directory));

            // cp -r merges into a directory that is already there.
            if (!made.IsOk && !(made.Status == FsStatus.Exists && (await client.StatAsync(to)).Value is { IsDirectory: true }))
            {
                failures += Report(made.Status, made.Describe());
                continue;
            }

            string? cursor = null;
            do
            {
                var page = await client.ListPageAsync(from, cursor);
                if (!page.IsOk)
                {
                    failures += Report(page.Status, page.Describe());
                    break;
                }

                files.Clear();
                foreach (var entry in page.Value!.Entries)
                {
                    var child = (FsPath.Combine(from, entry.Name), FsPath.Combine(to, entry.Name), entry);
                    if (entry.IsDirectory)
                    {
                        pending.Push(child);
                    }
                    else
                    {
                        files.Add(child);
                    }
                }

                await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = COPY_PARALLELISM }, async (file, cancellationToken) =>
                {
                    var copied = await client.CopyAsync(file.From, file.To, CopyOptions(file.Entry, writeType), cancellationToken);
                    if (!copied.IsOk)
                    {
                        Interlocked.Add(ref failures, Report(copied.Status, copied.Describe()));
                    }
                });
                cursor = page.Value.NextCursor;
            }
            while (cursor is not null);
        }

        return failures;
    }

    public async Task<int> MakeDirectoriesAsync(string[] paths, bool parents)
    {
        var failures = 0;
        foreach (var path in paths)
        {
            var made = await client.MakeDirectoryAsync(path, parents);
            if (!made.IsOk)
            {
                failures += Report(made.Status, made.Describe());
            }
        }

        return failures == 0 ? 0 : 1;
    }

    public async Task<int> RemoveAsync(string[] paths, bool recursive)
    {
        var failures = 0;
        foreach (var path in paths)
        {
            if (Normalize(path) is not { } full)
            {
                failures++;
                continue;
            }

            if (full == FsPath.Root)
            {
                failures += Report(FsStatus.NotPermitted, "refusing to remove '/'");
                continue;
            }

            // The SDK removes an empty directory without recursive; rm does not.
            if (!recursive)
            {
                var stat = await client.StatAsync(full);
                if (!stat.IsOk || stat.Value!.IsDirectory)
                {
                    failures += stat.IsOk
                        ? Report(FsStatus.IsADirectory, $"cannot remove '{full}': is a directory; rm -r removes it and everything under it")
                        : Report(stat.Status, stat.Describe());
                    continue;
                }
            }

            var removed = await client.RemoveAsync(full, recursive);
            if (!removed.IsOk)
            {
                failures += Report(removed.Status, removed.Describe());
            }
        }

        return failures == 0 ? 0 : 1;
    }

    public async Task<int> MoveAsync(string source, string destination)
    {
        if (Normalize(source) is not { } from || Normalize(destination) is not { } to)
        {
            return 1;
        }

        var target = await IntoAsync(from, to);
        if (target != from && FsPath.IsSameOrBelow(target, from))
        {
            return Program.Fail(FsStatus.InvalidArgument, $"cannot move '{from}' into itself, '{target}'");
        }

        var renamed = await client.RenameAsync(from, target);
        if (renamed.Status != FsStatus.CrossDevice)
        {
            return renamed.IsOk ? 0 : Program.Fail(renamed.Status, renamed.Describe());
        }

        // Across mounts, as mv across file systems does: copy, and remove the source only once all of it is copied.
        var stat = await client.StatAsync(from);
        if (!stat.IsOk)
        {
            return Program.Fail(stat.Status, stat.Describe());
        }

        if (stat.Value!.IsDirectory)
        {
            if (await CopyTreeAsync(from, stat.Value, target, writeType: null) > 0)
            {
                return Program.Fail(FsStatus.IoError, $"'{from}' was not removed: parts of it could not be copied to '{target}'");
            }
        }
        else
        {
            var copied = await client.CopyAsync(from, target, CopyOptions(stat.Value, writeType: null));
            if (!copied.IsOk)
            {
                return Program.Fail(copied.Status, copied.Describe());
            }
        }

        var removed = await client.RemoveAsync(from, recursive: stat.Value.IsDirectory);
        return removed.IsOk ? 0 : Program.Fail(removed.Status, $"copied to '{target}', but: {removed.Describe()}");
    }

    public async Task<int> PersistAsync(string path, TimeSpan timeout, bool asJson)
    {
        if (Normalize(path) is not { } full)
        {
            return 1;
        }

        var persisted = await client.PersistAsync(full, timeout);
        if (!persisted.IsOk)
        {
            return Program.Fail(persisted.Status, persisted.Describe());
        }

        if (asJson)
        {
            await Output.WriteEntryArrayAsync(stdoutStream, full, persisted.Value!);
        }
        else
        {
            stdout.WriteLine($"{full} {persisted.Value!.Persistence.Name()}");
        }

        return 0;
    }

    /// <summary><paramref name="destination"/>, or the source's name inside it when it is an existing directory (as cp and mv do).</summary>
    private async Task<string> IntoAsync(string source, string destination) =>
        (await client.StatAsync(destination)).Value is { IsDirectory: true } && source != FsPath.Root
            ? FsPath.Combine(destination, NameOf(source))
            : destination;

    /// <summary>A copy is written with its source's permission bits, as cp makes them.</summary>
    private static CreateOptions CopyOptions(FsEntry source, WriteType? writeType) =>
        new() { WriteType = writeType, Mode = PermissionBits(source) };

    private static int PermissionBits(FsEntry entry) => Output.EffectiveMode(entry);

    /// <summary>The last name of a GrainFS path.</summary>
    private static string NameOf(string path)
    {
        var trimmed = path.Length > 1 ? path.TrimEnd('/') : path;
        return trimmed[(trimmed.LastIndexOf('/') + 1)..];
    }

    /// <summary>The normalised path, or null once why it is not a GrainFS path is on stderr.</summary>
    private static string? Normalize(string path)
    {
        var status = FsPath.TryNormalize(path, out var normalized, out var error);
        if (status == FsStatus.Ok)
        {
            return normalized;
        }

        Program.Fail(status, error ?? path);
        return null;
    }

    /// <summary>Prints one failure and counts it (1).</summary>
    private static int Report(FsStatus status, string message) => Program.Fail(status, message);

    /// <summary>Opens the local side of a put (stdin for "-"), or returns null once why it cannot be read is on stderr.</summary>
    private static Stream? OpenLocal(string local)
    {
        if (local == "-")
        {
            return Console.OpenStandardInput();
        }

        if (Directory.Exists(local))
        {
            Program.Fail(FsStatus.IsADirectory, $"local file {local}: is a directory");
            return null;
        }

        try
        {
            return new FileStream(local, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.Asynchronous | FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            var status = LocalStatus(e);
            Program.Fail(status, $"local file {local}: {(status == FsStatus.IoError ? e.Message : status.Describe())}");
            return null;
        }
    }

    /// <summary>The local file's permission bits for its copy in GrainFS (0644 for stdin and where the platform has none).</summary>
    private static int LocalMode(Stream source) =>
        source is FileStream file && !OperatingSystem.IsWindows() ? (int)File.GetUnixFileMode(file.SafeFileHandle) & 0xFFF : new CreateOptions().Mode;

    /// <summary>
    /// The errno of a local I/O failure: on Linux .NET carries the errno in HResult, and FsStatus values are errno
    /// numbers; elsewhere, or for one GrainFS does not name, EIO.
    /// </summary>
    private static FsStatus LocalStatus(Exception e) => e switch
    {
        FileNotFoundException or DirectoryNotFoundException => FsStatus.NotFound,
        UnauthorizedAccessException => FsStatus.AccessDenied,
        PathTooLongException => FsStatus.NameTooLong,
        IOException when e.HResult is > 0 and < 4096 && Enum.IsDefined((FsStatus)e.HResult) => (FsStatus)e.HResult,
        _ => FsStatus.IoError,
    };
}

/// <summary>
/// Ctrl-C and SIGTERM turned into a cancelled token for the command's lifetime, so a put aborts its upload (nothing
/// becomes visible) and a get deletes its temporary file instead of the process dying mid-way.
/// </summary>
internal sealed class Interrupt : IDisposable
{
    /// <summary>The conventional exit code of a process stopped by SIGINT.</summary>
    public const int EXIT_CODE = 130;

    private readonly CancellationTokenSource _cancel = new();
    private readonly PosixSignalRegistration _sigint;
    private readonly PosixSignalRegistration _sigterm;

    public Interrupt()
    {
        _sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Cancel);
        _sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Cancel);
    }

    public CancellationToken Token => _cancel.Token;

    /// <summary>Prints that the command was interrupted and returns <see cref="EXIT_CODE"/>.</summary>
    public static int Report()
    {
        Console.Error.WriteLine("grainfs: interrupted");
        return EXIT_CODE;
    }

    public void Dispose()
    {
        _sigint.Dispose();
        _sigterm.Dispose();
        _cancel.Dispose();
    }

    private void Cancel(PosixSignalContext context)
    {
        // A second signal is not caught: the process ends even if what it waits on ignores the token.
        if (_cancel.IsCancellationRequested)
        {
            return;
        }

        context.Cancel = true;
        _cancel.Cancel();
    }
}
