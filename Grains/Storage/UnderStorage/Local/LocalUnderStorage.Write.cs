using System.Buffers;
using System.Diagnostics;
using GrainFs.Storage.Metadata;

namespace GrainFs.Storage.UnderStorage;

/// <summary>
/// The write side of a folder: temp file + rename, so a reader sees a whole old or a whole new file. A write lands in its
/// parent folder as resolved inside the root (see <see cref="WriteTarget"/>), so no link on the way can carry it outside.
/// </summary>
public sealed partial class LocalUnderStorage
{
    private const int CopyBufferSize = 1 << 20;
    private const int ENOSPC = 28;
    private const int EDQUOT = 122;
    private const int ENOTEMPTY = 39;

    /// <inheritdoc />
    public async ValueTask<EntryRecord> PutAsync(string path, Stream content, long? length = null, CancellationToken cancellationToken = default)
    {
        var started = Stopwatch.GetTimestamp();
        string? temp = null;
        try
        {
            var (full, previous) = await Task.Run(() =>
            {
                var target = WriteTarget(path);
                return (target, StatReal(target, path));
            }, cancellationToken).ConfigureAwait(false);
            if (previous is { Kind: EntryKind.Directory })
            {
                throw new UnderStorageException(UnderStorageError.IsADirectory, Describe(path), "is a directory");
            }

            temp = TempBeside(full);
            await WriteTempAsync(path, temp, content, length, cancellationToken).ConfigureAwait(false);
            var entry = await Task.Run(() => Commit(path, temp, full, previous), cancellationToken).ConfigureAwait(false);
            Record("put", "ok", started);
            return entry;
        }
        catch (ContentFailedException e)
        {
            // The caller's stream failed, not the store: its own exception goes back, and nothing was written.
            TryDelete(temp);
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException!);
            throw;
        }
        catch (Exception e) when (e is not UnderStorageException && !(e is OperationCanceledException && cancellationToken.IsCancellationRequested))
        {
            TryDelete(temp);
            Record("put", "error", started);
            throw Translate(e, path);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    private async Task WriteTempAsync(string path, string temp, Stream content, long? length, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBufferSize);
        try
        {
            using var handle = File.OpenHandle(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, FileOptions.Asynchronous, preallocationSize: length ?? 0);
            long written = 0;
            while (true)
            {
                int read;
                try
                {
                    read = await content.ReadAsync(buffer.AsMemory(0, CopyBufferSize), cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    throw new ContentFailedException(e);
                }

                if (read == 0)
                {
                    break;
                }

                await RandomAccess.WriteAsync(handle, buffer.AsMemory(0, read), written, cancellationToken).ConfigureAwait(false);
                written += read;
            }

            if (length is { } expected && expected != written)
            {
                throw new UnderStorageException(UnderStorageError.InvalidArgument, Describe(path), $"expected {expected} bytes, the content had {written}");
            }

            // Durable before it becomes visible: a crash after the rename never leaves a short file.
            RandomAccess.FlushToDisk(handle);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Renames the written temp file over the target; the new version's ETag always differs from the old one's.</summary>
    private EntryRecord Commit(string path, string temp, string full, EntryRecord? previous)
    {
        if (previous is { } old)
        {
            var info = new FileInfo(temp);
            if (info.Length == old.Size && info.LastWriteTimeUtc.Ticks <= old.MtimeTicks)
            {
                // Same size within the clock's granularity: move the mtime on, so the version (mtime + size) changes.
                File.SetLastWriteTimeUtc(temp, new DateTime(old.MtimeTicks + TimeSpan.TicksPerMillisecond, DateTimeKind.Utc));
            }
        }

        File.Move(temp, full, overwrite: true);
        return StatReal(full, path) ?? throw new UnderStorageException(UnderStorageError.Other, Describe(path), "the file vanished right after it was written");
    }

    /// <inheritdoc />
    public ValueTask DeleteAsync(string path, CancellationToken cancellationToken = default) =>
        RunAsync("delete", path, full =>
        {
            if (Directory.Exists(full))
            {
                throw new UnderStorageException(UnderStorageError.IsADirectory, Describe(path), "is a directory");
            }

            File.Delete(full);
        }, cancellationToken);

    /// <inheritdoc />
    public async ValueTask<EntryRecord> CopyAsync(string source, string destination, CancellationToken cancellationToken = default)
    {
        var started = Stopwatch.GetTimestamp();
        string? temp = null;
        try
        {
            var entry = await Task.Run(() =>
            {
                // The source is read, so every link of it is followed (and confined); the destination is written in its folder.
                var from = Inside(source, out var errno) ?? throw NotThere(source, errno, "no such file");
                if (Directory.Exists(from))
                {
                    throw new UnderStorageException(UnderStorageError.IsADirectory, Describe(source), "is a directory (only files are copied)");
                }

                var to = WriteTarget(destination);
                var previous = StatReal(to, destination);
                temp = TempBeside(to);
                File.Copy(from, temp);
                return Commit(destination, temp, to, previous);
            }, cancellationToken).ConfigureAwait(false);
            Record("copy", "ok", started);
            return entry;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            TryDelete(temp);
            Record("copy", "error", started);
            throw e is UnderStorageException u ? u : Translate(e, source);
        }
    }

    /// <inheritdoc />
    public async ValueTask<EntryRecord> RenameAsync(string source, string destination, CancellationToken cancellationToken = default)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            var entry = await Task.Run(() =>
            {
                // rename(2) moves the entry itself, a link as a link: neither end is followed, both folders are confined.
                var from = WriteTarget(source);
                var to = WriteTarget(destination);
                if (Directory.Exists(from))
                {
                    if (File.Exists(to))
                    {
                        throw new UnderStorageException(UnderStorageError.NotADirectory, Describe(destination), "not a directory (a directory cannot replace a file)");
                    }

                    if (Directory.Exists(to))
                    {
                        // POSIX: a directory may replace an empty one.
                        Directory.Delete(to, recursive: false);
                    }

                    Directory.Move(from, to);
                }
                else
                {
                    if (Directory.Exists(to))
                    {
                        throw new UnderStorageException(UnderStorageError.IsADirectory, Describe(destination), "is a directory (a file cannot replace it)");
                    }

                    File.Move(from, to, overwrite: true);
                }

                return StatReal(to, destination) ?? throw new UnderStorageException(UnderStorageError.Other, Describe(destination), "vanished right after the rename");
            }, cancellationToken).ConfigureAwait(false);
            Record("rename", "ok", started);
            return entry;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Record("rename", "error", started);
            throw e is UnderStorageException u ? u : Translate(e, source);
        }
    }

    /// <inheritdoc />
    public ValueTask MakeDirectoryAsync(string path, CancellationToken cancellationToken = default) =>
        RunAsync("mkdir", path, full =>
        {
            if (File.Exists(full) || Directory.Exists(full))
            {
                throw new UnderStorageException(UnderStorageError.AlreadyExists, Describe(path), "already exists");
            }

            var parent = Path.GetDirectoryName(full);
            if (parent is not null && !Directory.Exists(parent))
            {
                throw new UnderStorageException(UnderStorageError.NotFound, Describe(path), "the parent directory does not exist");
            }

            Directory.CreateDirectory(full);
        }, cancellationToken);

    /// <inheritdoc />
    public ValueTask RemoveDirectoryAsync(string path, CancellationToken cancellationToken = default) =>
        RunAsync("rmdir", path, full =>
        {
            if (!Directory.Exists(full))
            {
                throw File.Exists(full)
                    ? new UnderStorageException(UnderStorageError.NotADirectory, Describe(path), "not a directory")
                    : new UnderStorageException(UnderStorageError.NotFound, Describe(path), "no such directory");
            }

            Directory.Delete(full, recursive: false);
        }, cancellationToken);

    /// <summary>Runs a blocking file-system operation on the path's <see cref="WriteTarget"/>, on the thread pool, counted and with its errors translated.</summary>
    private async ValueTask RunAsync(string op, string path, Action<string> action, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            await Task.Run(() => action(WriteTarget(path)), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Record(op, "error", started);
            throw Translate(e, path);
        }

        Record(op, "ok", started);
    }

    /// <summary>
    /// Where a change at <paramref name="relative"/> lands: its parent folder resolved inside the root (links on the way
    /// followed and confined: NotFound when it is missing or leads outside) joined with its own name, which is not
    /// followed, as rename(2), unlink(2) and rmdir(2) do not follow it. A link there whose target lies outside the root (or
    /// nowhere, or in a loop) is refused with AccessDenied: nothing is created, replaced, moved or removed through it, and a
    /// name the listing hides cannot be reached by writing it either. The root itself is not a target.
    /// </summary>
    private string WriteTarget(string relative)
    {
        UnderStorageFactory.ThrowIfNotRelative(relative, Uri);
        if (relative.Length == 0)
        {
            throw new UnderStorageException(UnderStorageError.InvalidArgument, Uri, "the mount's root itself cannot be written, moved or removed");
        }

        var slash = relative.LastIndexOf('/');
        var parent = slash < 0 ? string.Empty : relative[..slash];
        var folder = Inside(parent, out var errno) ?? throw NotThere(relative, errno, "the parent directory does not exist");
        var full = Path.Join(folder, relative.AsSpan(slash + 1));
        if (IsLink(full))
        {
            var target = RealPath.Resolve(full, out _);
            if (target is null || !RealPath.IsSameOrBelow(target, _realRoot!))
            {
                throw new UnderStorageException(UnderStorageError.AccessDenied, Describe(relative),
                    "permission denied: a symbolic link that leads outside the mount (or nowhere) is not changed through GrainFS");
            }
        }

        return full;
    }

    private static bool IsLink(string full)
    {
        try
        {
            return File.ResolveLinkTarget(full, returnFinalTarget: false) is not null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Nothing there (or not looked at): not a link; the operation itself reports what it finds.
            return false;
        }
    }

    /// <summary>A temporary name in the target's own folder (same file system, so the rename is atomic).</summary>
    private static string TempBeside(string full) =>
        Path.Combine(Path.GetDirectoryName(full) ?? "/", $".grainfs-{Guid.NewGuid():N}.tmp");

    private UnderStorageException Translate(Exception e, string path) => e switch
    {
        UnderStorageException u => u,
        FileNotFoundException or DirectoryNotFoundException => new UnderStorageException(UnderStorageError.NotFound, Describe(path), "no such file or directory", e),
        UnauthorizedAccessException => new UnderStorageException(UnderStorageError.AccessDenied, Describe(path), "permission denied", e),
        IOException { HResult: ENOSPC or EDQUOT } => new UnderStorageException(UnderStorageError.NoSpace, Describe(path), "no space left (disk full or quota exhausted)", e),
        IOException { HResult: ENOTEMPTY } => new UnderStorageException(UnderStorageError.NotEmpty, Describe(path), "directory not empty", e),
        IOException when Inside(path, out _) is { } real && Directory.Exists(real) && e.Message.Contains("not empty", StringComparison.OrdinalIgnoreCase) =>
            new UnderStorageException(UnderStorageError.NotEmpty, Describe(path), "directory not empty", e),
        _ => new UnderStorageException(UnderStorageError.Other, Describe(path), e.Message, e),
    };

    /// <summary>Carries an exception of the content stream past the store's error translation.</summary>
    private sealed class ContentFailedException(Exception inner) : Exception(inner.Message, inner);

    /// <summary>True for the temporary file of a write in progress (never listed).</summary>
    internal static bool IsTempName(ReadOnlySpan<char> name) =>
        name.StartsWith(".grainfs-", StringComparison.Ordinal) && name.EndsWith(".tmp", StringComparison.Ordinal);

    private static void TryDelete(string? path)
    {
        if (path is null)
        {
            return;
        }

        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Debug.WriteLine($"could not delete {path}: {e.Message}");
        }
    }
}

/// <summary>
/// The file:// scheme: a local or POSIX-mounted folder; with <paramref name="allowedRoots"/> (canonical full paths), only
/// folders that are one of them or lie below one, symbolic links resolved (the silo's --allow-local-root).
/// </summary>
public sealed class LocalUnderStorageProvider(IReadOnlyList<string>? allowedRoots = null, Microsoft.Extensions.Logging.ILoggerFactory? loggers = null) : IUnderStorageProvider
{
    /// <inheritdoc />
    public string Scheme => "file";

    /// <inheritdoc />
    public string Example => "file:///absolute/folder";

    /// <inheritdoc />
    public IReadOnlyList<string> Properties { get; } = [];

    /// <inheritdoc />
    public bool TryParse(string uri, string rest, out UnderStorageUri parsed, out string? error)
    {
        parsed = new UnderStorageUri(Scheme, string.Empty, string.Empty);
        if (!rest.StartsWith('/'))
        {
            error = $"'{uri}': a file URI needs an absolute path (file:///data/set)";
            return false;
        }

        var clean = rest.Trim('/');
        if (!UnderStorageFactory.CleanComponents(clean, uri, out error))
        {
            return false;
        }

        parsed = new UnderStorageUri(Scheme, "/" + clean, string.Empty);
        return true;
    }

    /// <inheritdoc />
    public IUnderStorage Create(UnderStorageUri uri, IReadOnlyDictionary<string, string> properties, Func<string, string?> environment) =>
        new LocalUnderStorage(uri.Location, allowedRoots, loggers?.CreateLogger("GrainFs.UnderStorage.Local"));
}
