using System.Diagnostics;
using System.IO.Enumeration;
using System.Runtime.CompilerServices;
using GrainFs.DataPlane;
using GrainFs.Storage.Metadata;
using Microsoft.Win32.SafeHandles;

namespace GrainFs.Storage.UnderStorage;

/// <summary>
/// A local or POSIX-mounted folder (NFS, CephFS, …) as under-storage. Directory enumeration and stat
/// are blocking system calls, so they run on the thread pool, never on the caller's (grain) thread.
/// Writes go to a temporary file beside the target and are renamed over it, so readers never see half a file.
/// </summary>
/// <remarks>
/// Nothing outside the root is ever read or changed. The root is canonicalised (realpath) once; every path is checked
/// for '..' and NUL, then resolved the same way, symbolic links of every component included, and must be the root or
/// below it. A symbolic link whose final target lies outside the root (or dangles, or loops) is not there: hidden from
/// listings and stat, not found on read, refused on write; one whose target is inside resolves and reads normally (a
/// linked folder lists its target's contents). Only entries that are links cost a resolution in a listing.
/// </remarks>
public sealed partial class LocalUnderStorage : IUnderStorage
{
    /// <summary>Entries per listing page.</summary>
    public const int PageSize = 1000;

    private static readonly KeyValuePair<string, object?> SchemeTag = new("scheme", "file");
    private readonly string _root;
    private readonly IReadOnlyList<string>? _allowedRoots;
    private volatile string? _realRoot;
    private readonly Microsoft.Extensions.Logging.ILogger _logger;

    /// <summary>
    /// Creates the adapter for an absolute folder path. With <paramref name="allowedRoots"/> (canonical full paths; null
    /// or empty: any folder), the folder, its symbolic links resolved, must be one of them or lie below one; else
    /// <see cref="UnderStorageException"/> (AccessDenied) naming the folder and --allow-local-root.
    /// </summary>
    public LocalUnderStorage(string root, IReadOnlyList<string>? allowedRoots = null, Microsoft.Extensions.Logging.ILogger? logger = null)
    {
        _logger = logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        _root = root.Length > 1 ? root.TrimEnd('/') : root;
        Uri = "file://" + _root;
        _allowedRoots = allowedRoots is { Count: > 0 } ? allowedRoots : null;

        // Canonicalised once, here; a folder missing now (an NFS export not mounted yet) is resolved, and checked, at first use.
        _ = ResolveRoot(out _);
    }

    /// <inheritdoc />
    public string Uri { get; }

    /// <inheritdoc />
    public string Scheme => "file";

    /// <inheritdoc />
    public UnderStorageCapabilities Capabilities =>
        UnderStorageCapabilities.Write | UnderStorageCapabilities.ServerSideCopy | UnderStorageCapabilities.AtomicRename
        | UnderStorageCapabilities.DirectoryRename | UnderStorageCapabilities.RealDirectories;

    /// <summary>Derives a version tag from a file's mtime and size (a local file has no ETag).</summary>
    public static string LocalETag(long mtimeTicks, long size) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{mtimeTicks:x}-{size:x}");

    /// <summary>The canonical root, or null with the errno of its resolution; throws when it lies outside the allowed roots.</summary>
    private string? ResolveRoot(out int errno)
    {
        if (_realRoot is { } known)
        {
            errno = 0;
            return known;
        }

        var real = RealPath.Resolve(Path.GetFullPath(_root), out errno);
        if (real is null)
        {
            return null;
        }

        if (_allowedRoots is { } allowed && !IsAllowed(real, allowed))
        {
            var folder = real == _root ? _root : $"{_root} (which resolves to {real})";
            throw new UnderStorageException(UnderStorageError.AccessDenied, Uri,
                $"the folder {folder} is outside the folders this silo allows for local mounts (--allow-local-root {string.Join(", ", allowed)})");
        }

        _realRoot = real;
        return real;
    }

    private static bool IsAllowed(string real, IReadOnlyList<string> allowed)
    {
        foreach (var root in allowed)
        {
            if (RealPath.IsSameOrBelow(real, root))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The canonical path of <paramref name="relative"/> when something is there inside the root, every link on the way
    /// followed; null with the errno otherwise. What a link leads to outside the root is not there (ENOENT). Throws
    /// InvalidArgument for a path with an empty, '.' or '..' component or a NUL.
    /// </summary>
    private string? Inside(string relative, out int errno)
    {
        UnderStorageFactory.ThrowIfNotRelative(relative, Uri);
        var root = ResolveRoot(out errno);
        if (root is null || relative.Length == 0)
        {
            return root;
        }

        var real = RealPath.Resolve(Path.Join(root, relative), out errno);
        if (real is null || RealPath.IsSameOrBelow(real, root))
        {
            return real;
        }

        errno = RealPath.ENOENT;
        return null;
    }

    /// <summary>The error for a path <see cref="Inside"/> found nothing at.</summary>
    private UnderStorageException NotThere(string relative, int errno, string what) => errno == RealPath.EACCES
        ? new UnderStorageException(UnderStorageError.AccessDenied, Describe(relative), "permission denied")
        : new UnderStorageException(UnderStorageError.NotFound, Describe(relative), what);

    /// <inheritdoc />
    public async IAsyncEnumerable<IReadOnlyList<EntryRecord>> ListAsync(string directory, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var started = Stopwatch.GetTimestamp();
        IEnumerator<EntryRecord> enumerator;
        try
        {
            enumerator = await Task.Run(() => Open(directory), cancellationToken).ConfigureAwait(false);
        }
        catch (UnderStorageException)
        {
            Record("list", "error", started);
            throw;
        }

        using (enumerator)
        {
            while (true)
            {
                var page = await Task.Run(() => NextPage(enumerator, directory), cancellationToken).ConfigureAwait(false);
                if (page.Count > 0)
                {
                    yield return page;
                }

                if (page.Count < PageSize)
                {
                    break;
                }
            }
        }

        Record("list", "ok", started);
    }

    private IEnumerator<EntryRecord> Open(string directory)
    {
        var full = Inside(directory, out var errno) ?? throw NotThere(directory, errno, "no such directory");
        if (!Directory.Exists(full))
        {
            throw File.Exists(full)
                ? new UnderStorageException(UnderStorageError.NotADirectory, Describe(directory), "not a directory")
                : new UnderStorageException(UnderStorageError.NotFound, Describe(directory), "no such directory");
        }

        var options = new EnumerationOptions { RecurseSubdirectories = false, IgnoreInaccessible = false, AttributesToSkip = 0, ReturnSpecialDirectories = false };
        try
        {
            // The enumerator opens the directory at once, so a folder we may not read fails here.
            var enumerable = new FileSystemEnumerable<EntryRecord?>(full, ToRecord, options);
            return Filter(enumerable).GetEnumerator();
        }
        catch (UnauthorizedAccessException e)
        {
            throw new UnderStorageException(UnderStorageError.AccessDenied, Describe(directory), "permission denied", e);
        }

        static IEnumerable<EntryRecord> Filter(IEnumerable<EntryRecord?> source)
        {
            foreach (var item in source)
            {
                if (item is { } record)
                {
                    yield return record;
                }
            }
        }
    }

    private List<EntryRecord> NextPage(IEnumerator<EntryRecord> enumerator, string directory)
    {
        var page = new List<EntryRecord>(PageSize);
        try
        {
            while (page.Count < PageSize && enumerator.MoveNext())
            {
                page.Add(enumerator.Current);
            }
        }
        catch (UnauthorizedAccessException e)
        {
            throw new UnderStorageException(UnderStorageError.AccessDenied, Describe(directory), "permission denied", e);
        }
        catch (IOException e)
        {
            throw new UnderStorageException(UnderStorageError.Other, Describe(directory), e.Message, e);
        }

        return page;
    }

    private EntryRecord? ToRecord(ref FileSystemEntry entry)
    {
        var name = entry.FileName;
        if (FsNameTooLong(name) || IsTempName(name))
        {
            return null;
        }

        if (name.Contains('\uFFFD') && !Path.Exists(entry.ToFullPath()))
        {
            // A name that is not UTF-8: .NET shows its bad bytes as U+FFFD, a name no file has, and two such names would
            // show as one. Skipped, with a warning naming the folder; the rest of the folder lists as usual.
            LogUndecodableName(_logger, Path.GetDirectoryName(entry.ToFullPath()) ?? _root, name.ToString());
            GrainFsMetrics.UnderStorageSkippedNames.Add(1, SchemeTag);
            return null;
        }

        try
        {
            var info = entry.ToFileSystemInfo();
            var isDirectory = entry.IsDirectory;
            if ((entry.Attributes & FileAttributes.ReparsePoint) != 0)
            {
                // A symbolic link: reported as what it leads to, as a POSIX reader following it would see, when that is
                // inside the root (listed only after the root resolved); one leading outside, nowhere or round in a loop is not there.
                var target = RealPath.Resolve(entry.ToFullPath(), out _);
                if (target is null || !RealPath.IsSameOrBelow(target, _realRoot!))
                {
                    return null;
                }

                info = Directory.Exists(target) ? new DirectoryInfo(target) : new FileInfo(target);
                if (!info.Exists)
                {
                    return null;
                }

                isDirectory = info is DirectoryInfo;
            }

            var mtime = info.LastWriteTimeUtc.Ticks;
            var size = isDirectory ? 0 : ((FileInfo)info).Length;
            var mode = (int)info.UnixFileMode;
            return isDirectory
                ? new EntryRecord(name.ToString(), EntryKind.Directory, 0, mtime, string.Empty, mode)
                : new EntryRecord(name.ToString(), EntryKind.File, size, mtime, LocalETag(mtime, size), mode);
        }
        catch (IOException)
        {
            // Removed between enumeration and stat: it is simply not there.
            return null;
        }
    }

    private static bool FsNameTooLong(ReadOnlySpan<char> name) =>
        System.Text.Encoding.UTF8.GetByteCount(name) > 255;

    /// <inheritdoc />
    public async ValueTask<EntryRecord?> StatAsync(string path, CancellationToken cancellationToken = default)
    {
        var started = Stopwatch.GetTimestamp();
        var result = await Task.Run(() => StatSync(path), cancellationToken).ConfigureAwait(false);
        Record("stat", "ok", started);
        return result;
    }

    /// <summary>Stat of a path inside the root (links followed, and confined); null when nothing is there.</summary>
    private EntryRecord? StatSync(string relative)
    {
        var full = Inside(relative, out var errno);
        if (full is null)
        {
            return errno == RealPath.EACCES
                ? throw new UnderStorageException(UnderStorageError.AccessDenied, Describe(relative), "permission denied")
                : null;
        }

        return StatReal(full, relative);
    }

    /// <summary>Stat of <paramref name="full"/>, a path already resolved inside the root, named as <paramref name="relative"/>.</summary>
    private EntryRecord? StatReal(string full, string relative)
    {
        var name = relative.Length == 0 ? string.Empty : FsPathName(relative);
        try
        {
            // Throws for a path we may not look at, where FileInfo.Exists would only say false.
            _ = File.GetAttributes(full);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (UnauthorizedAccessException e)
        {
            throw new UnderStorageException(UnderStorageError.AccessDenied, Describe(relative), "permission denied", e);
        }
        catch (IOException)
        {
            // ENOTDIR: a file stands where a directory of the path should be.
            return null;
        }

        FileSystemInfo info = new FileInfo(full);
        if (!info.Exists)
        {
            info = new DirectoryInfo(full);
            if (!info.Exists)
            {
                return null;
            }

            return new EntryRecord(name, EntryKind.Directory, 0, info.LastWriteTimeUtc.Ticks, string.Empty, (int)info.UnixFileMode);
        }

        var file = (FileInfo)info;
        var mtime = file.LastWriteTimeUtc.Ticks;
        return new EntryRecord(name, EntryKind.File, file.Length, mtime, LocalETag(mtime, file.Length), (int)file.UnixFileMode);
    }

    private static string FsPathName(string relative)
    {
        var slash = relative.LastIndexOf('/');
        return slash < 0 ? relative : relative[(slash + 1)..];
    }

    /// <inheritdoc />
    public async ValueTask<int> ReadAsync(string path, long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        var started = Stopwatch.GetTimestamp();
        var full = Inside(path, out var errno) ?? throw NotThere(path, errno, "no such file");
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(full, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, FileOptions.Asynchronous);
        }
        catch (FileNotFoundException e)
        {
            throw new UnderStorageException(UnderStorageError.NotFound, Describe(path), "no such file", e);
        }
        catch (DirectoryNotFoundException e)
        {
            throw new UnderStorageException(UnderStorageError.NotFound, Describe(path), "no such file", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw Directory.Exists(full)
                ? new UnderStorageException(UnderStorageError.IsADirectory, Describe(path), "is a directory", e)
                : new UnderStorageException(UnderStorageError.AccessDenied, Describe(path), "permission denied", e);
        }

        using (handle)
        {
            var total = 0;
            while (total < destination.Length)
            {
                var read = await RandomAccess.ReadAsync(handle, destination[total..], offset + total, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                total += read;
            }

            GrainFsMetrics.UnderStorageBytesRead.Add(total, SchemeTag);
            Record("read", "ok", started);
            return total;
        }
    }

    /// <inheritdoc />
    public async ValueTask<Stream> OpenReadAsync(string path, long offset, long length, string? expectedETag, CancellationToken cancellationToken = default)
    {
        return await Task.Run<Stream>(() =>
        {
            var full = Inside(path, out var errno) ?? throw NotThere(path, errno, "no such file");
            FileStream stream;
            try
            {
                stream = new FileStream(full, new FileStreamOptions { Mode = FileMode.Open, Access = FileAccess.Read, Share = FileShare.ReadWrite | FileShare.Delete, Options = FileOptions.Asynchronous | FileOptions.SequentialScan, BufferSize = 0 });
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                throw new UnderStorageException(UnderStorageError.NotFound, Describe(path), "no such file", e);
            }
            catch (UnauthorizedAccessException e)
            {
                throw new UnderStorageException(UnderStorageError.AccessDenied, Describe(path), "permission denied", e);
            }

            if (expectedETag is not null)
            {
                var info = new FileInfo(full);
                var actual = LocalETag(info.LastWriteTimeUtc.Ticks, info.Length);
                if (actual != expectedETag)
                {
                    stream.Dispose();
                    throw new UnderStorageException(UnderStorageError.Changed, Describe(path), "the file changed since it was listed");
                }
            }

            stream.Position = offset;
            return new BoundedStream(stream, length);
        }, cancellationToken).ConfigureAwait(false);
    }

    private string Describe(string relative) => relative.Length == 0 ? Uri : Uri + "/" + relative;

    private static void Record(string op, string outcome, long started)
    {
        var tags = new TagList { SchemeTag, { "op", op }, { "outcome", outcome } };
        GrainFsMetrics.UnderStorageRequests.Add(1, tags);
        GrainFsMetrics.UnderStorageLatency.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds, tags);
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    [Microsoft.Extensions.Logging.LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Warning, Message = "{Folder}: the name '{Name}' is not UTF-8 (its bad bytes show as U+FFFD); the file is skipped, rename it to list it")]
    private static partial void LogUndecodableName(Microsoft.Extensions.Logging.ILogger logger, string folder, string name);
}
