using GrainFs.Client;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace GrainFs.Vfs;

/// <summary>
/// POSIX semantics over the GrainFS SDK, for any front end (the FUSE adapter is one): inodes with numbers of their own
/// and the kernel's lookup counts (<see cref="InodeTable"/>), file handles opened at a version, directory handles that
/// list one page at a time, and the permission, read-only and statfs policy. Every operation answers with an
/// <see cref="FsResult{T}"/> whose status is the errno to give the caller; failures of the cluster or under-storage
/// are EIO, logged with the path.
/// </summary>
public sealed partial class VirtualFileSystem
{
    private const int AccessWrite = 2;
    private const int OpenAccessMode = 3;
    private const int OpenTruncate = 0x200;
    private readonly GrainFsClient _client;
    private readonly VfsOptions _options;
    private readonly ILogger _logger;
    private readonly HandleTable<FileHandle> _files = new();
    private readonly HandleTable<DirectoryHandle> _directories = new();
    private long _statFsUntil;
    private StatFs _statFs;

    /// <summary>Creates the VFS of a client; throws <see cref="ArgumentException"/> naming a bad option.</summary>
    public VirtualFileSystem(GrainFsClient client, VfsOptions options, ILogger? logger = null)
    {
        var problems = options.Validate().ToList();
        if (problems.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", problems), nameof(options));
        }

        _client = client;
        _options = options;
        _logger = logger ?? NullLogger.Instance;
        FsPath.TryNormalize(options.Root, out var root, out _);
        Inodes = new InodeTable(root);
        client.PathsChanged += OnPathsChanged;
    }

    /// <summary>The inodes the front end holds.</summary>
    public InodeTable Inodes { get; }

    /// <summary>
    /// Takes over from an earlier process that served the same kernel connection: the inodes it numbered (from the
    /// journal at <paramref name="journalPath"/>, kept from now on) and handle numbers above <paramref name="handleBase"/>,
    /// so a number the kernel still holds never names another file. Handles the earlier process opened are not known:
    /// a read through one reads the inode's current version, a directory listing starts again at its offset, and a write
    /// or flush through a write handle fails with EBADF (what it had not flushed went with it). Returns the inodes taken over.
    /// </summary>
    public int Restore(string journalPath, ulong handleBase)
    {
        _files.StartAfter(handleBase);
        _directories.StartAfter(handleBase);
        _writes.StartAfter(handleBase);
        return Inodes.Restore(journalPath);
    }

    /// <summary>Files open with a handle.</summary>
    public int OpenFiles => _files.Count;

    /// <summary>Directories open.</summary>
    public int OpenDirectories => _directories.Count;

    /// <summary>The read-only policy (<see cref="VfsOptions.ReadOnly"/>): every change is EROFS.</summary>
    public bool ReadOnly => _options.ReadOnly;

    /// <summary>A directory handle (to look at its state; null when not open).</summary>
    public DirectoryHandle? FindDirectory(ulong fh) => _directories.Find(fh);

    // ------------------------------------------------------------------ names and attributes

    /// <summary>Looks up <paramref name="name"/> in a directory; on success the inode's lookup count goes up by one.</summary>
    public async ValueTask<FsResult<Attr>> LookupAsync(ulong parent, string name, CancellationToken cancellationToken)
    {
        if (Inodes.Find(parent) is not { } directory)
        {
            return Stale(parent);
        }

        var status = FsPath.CheckName(name, out var error);
        if (status != FsStatus.Ok)
        {
            return FsResult<Attr>.Fail(status, error);
        }

        var path = FsPath.Combine(Inodes.PathOf(directory), name);
        var stat = await _client.StatAsync(path, cancellationToken).ConfigureAwait(false);
        if (!stat.IsOk)
        {
            return Failed<Attr>(stat.Status, stat.Message, path);
        }

        return FsResult<Attr>.Ok(AttrOf(Inodes.Remember(directory, name, stat.Value!, lookups: 1)));
    }

    /// <summary>The front end forgot <paramref name="count"/> lookups of an inode.</summary>
    public void Forget(ulong ino, ulong count) => Inodes.Forget(ino, count);

    /// <summary>Fresh attributes of an inode (one stat, none when the client's metadata cache holds the answer).</summary>
    public async ValueTask<FsResult<Attr>> GetAttrAsync(ulong ino, CancellationToken cancellationToken)
    {
        if (Inodes.Find(ino) is not { } inode)
        {
            return Stale(ino);
        }

        if (WritingAttr(inode) is { } writing)
        {
            return FsResult<Attr>.Ok(writing);
        }

        var path = Inodes.PathOf(inode);
        var stat = await _client.StatAsync(path, cancellationToken).ConfigureAwait(false);
        if (!stat.IsOk)
        {
            return Failed<Attr>(stat.Status, stat.Message, path);
        }

        InodeTable.Refresh(inode, stat.Value!);
        return FsResult<Attr>.Ok(AttrOf(inode));
    }

    /// <summary>The attributes an inode reports: its kind and size, the mount's or the options' owner and permission bits.</summary>
    public Attr AttrOf(Inode inode) => AttrOf(inode.Ino, inode.Entry);

    private Attr AttrOf(ulong ino, FsEntry entry)
    {
        var permissions = _options.Mode ?? ((entry.Mode & 0xFFF) != 0 ? entry.Mode & 0xFFF : entry.IsDirectory ? 0x1ED : 0x1A4);
        if (entry.IsDirectory && _options.Mode is { } forced)
        {
            // r on a directory is useless without x: directories get x wherever r is set.
            permissions = forced | ((forced & 0x124) >> 2);
        }

        var type = entry.IsDirectory ? Attr.TypeDirectory : Attr.TypeFile;
        var uid = entry.Uid >= 0 ? (uint)entry.Uid : _options.Uid;
        var gid = entry.Gid >= 0 ? (uint)entry.Gid : _options.Gid;
        return new Attr(ino, entry.IsDirectory, entry.Size, entry.MtimeUtc, type | (uint)permissions, uid, gid);
    }

    // ------------------------------------------------------------------ files

    /// <summary>
    /// Opens a file for reading. With <paramref name="handle"/> the version seen now is pinned to the returned handle
    /// (close-to-open); without, reads go through the inode's reader of its current version (the no-open fast path:
    /// no round trip per open). Write access is refused by the read-only policy.
    /// </summary>
    public async ValueTask<FsResult<ulong>> OpenAsync(ulong ino, int flags, bool handle, CancellationToken cancellationToken)
    {
        if (Inodes.Find(ino) is not { } inode)
        {
            return FsResult<ulong>.Fail(FsStatus.Stale, $"inode {ino} is not known (forgotten)");
        }

        if ((flags & OpenAccessMode) != 0 || (flags & OpenTruncate) != 0)
        {
            return ReadOnly
                ? FsResult<ulong>.Fail(FsStatus.ReadOnly, $"{Inodes.PathOf(inode)}: read-only file system")
                : await OpenForWriteAsync(inode, flags, cancellationToken).ConfigureAwait(false);
        }

        if (!handle)
        {
            return FsResult<ulong>.Ok(0);
        }

        var path = Inodes.PathOf(inode);
        var opened = await _client.OpenAsync(path, cancellationToken).ConfigureAwait(false);
        if (!opened.IsOk)
        {
            return Failed<ulong>(opened.Status, opened.Message, path);
        }

        InodeTable.Refresh(inode, opened.Value!.Version.Entry);
        return FsResult<ulong>.Ok(_files.Add(id => new FileHandle(id, inode, opened.Value!)).Id);
    }

    /// <summary>
    /// Reads up to <c>destination.Length</c> bytes at <paramref name="offset"/> into the caller's buffer: through the
    /// handle's version, or (handle 0) the inode's current one. Returns the bytes read; 0 at or past the end.
    /// </summary>
    public async ValueTask<FsResult<int>> ReadAsync(ulong ino, ulong fh, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        if (FindWrite(fh) is { } writing)
        {
            return await ReadWritingAsync(writing, offset, destination, cancellationToken).ConfigureAwait(false);
        }

        GrainFsFile file;
        string path;
        if (_files.Find(fh) is { } open && open.Inode.Ino == ino)
        {
            file = open.File;
            path = file.Path;
        }
        else if (Inodes.Find(ino) is { } inode)
        {
            path = Inodes.PathOf(inode);
            if (inode.Reader is { } reader)
            {
                file = reader;
            }
            else
            {
                var opened = await _client.OpenAsync(path, cancellationToken).ConfigureAwait(false);
                if (!opened.IsOk)
                {
                    return Failed<int>(opened.Status, opened.Message, path);
                }

                inode.Reader = file = opened.Value!;
            }
        }
        else
        {
            return FsResult<int>.Fail(FsStatus.Stale, $"inode {ino} is not known (forgotten)");
        }

        var length = (int)Math.Min(destination.Length, Math.Max(0, file.Length - offset));
        if (length == 0)
        {
            return FsResult<int>.Ok(0);
        }

        var read = await file.ReadAsync(offset, destination[..length], cancellationToken).ConfigureAwait(false);
        return read.IsOk ? read : Failed<int>(read.Status, read.Message, path);
    }

    /// <summary>
    /// Where a read of up to <paramref name="size"/> bytes at <paramref name="offset"/> lies on this host, when the whole
    /// answer (the bytes up to the end of the file) is in one block file the client has read and checked before; false
    /// when the read must go through <see cref="ReadAsync"/> (a write handle, a cold or remote block, a read across
    /// blocks, at or past the end).
    /// </summary>
    public bool TryLocalSpan(ulong ino, ulong fh, long offset, int size, out LocalSpan span)
    {
        span = default;
        if (FindWrite(fh) is not null || (_files.Find(fh)?.File ?? Inodes.Find(ino)?.Reader) is not { } file)
        {
            return false;
        }

        var length = (int)Math.Min(size, file.Length - offset);
        return length > 0 && file.TryLocalSpan(offset, length, out span);
    }

    /// <summary>Closes a read handle (write handles close with <see cref="ReleaseAsync"/>).</summary>
    public void Release(ulong fh) => _files.Remove(fh);

    // ------------------------------------------------------------------ directories

    /// <summary>Opens a directory for listing; its handle lists one page at a time.</summary>
    public async ValueTask<FsResult<ulong>> OpenDirectoryAsync(ulong ino, CancellationToken cancellationToken)
    {
        if (Inodes.Find(ino) is not { } inode)
        {
            return FsResult<ulong>.Fail(FsStatus.Stale, $"inode {ino} is not known (forgotten)");
        }

        if (ino != InodeTable.RootIno && !inode.Entry.IsDirectory)
        {
            var path = Inodes.PathOf(inode);
            var stat = await _client.StatAsync(path, cancellationToken).ConfigureAwait(false);
            if (!stat.IsOk)
            {
                return Failed<ulong>(stat.Status, stat.Message, path);
            }

            if (!stat.Value!.IsDirectory)
            {
                return FsResult<ulong>.Fail(FsStatus.NotADirectory, $"{path}: not a directory");
            }
        }

        return FsResult<ulong>.Ok(_directories.Add(id => new DirectoryHandle(id, inode)).Id);
    }

    /// <summary>
    /// Lists a directory from <paramref name="offset"/> (0 from the start; else an entry's <see cref="DirEntry.NextOffset"/>)
    /// into <paramref name="sink"/> until it is full or the listing ends. With <paramref name="plus"/> every entry the sink
    /// takes (but "." and "..") counts as a lookup of its inode, as FUSE readdirplus requires. Without a handle
    /// (<paramref name="fh"/> 0) the listing is read from the start for this call.
    /// </summary>
    public async ValueTask<FsResult<int>> ReadDirectoryAsync(ulong ino, ulong fh, long offset, bool plus, IDirectorySink sink, CancellationToken cancellationToken)
    {
        var handle = _directories.Find(fh);
        if (handle is null)
        {
            if (Inodes.Find(ino) is not { } inode)
            {
                return FsResult<int>.Fail(FsStatus.Stale, $"inode {ino} is not known (forgotten)");
            }

            handle = new DirectoryHandle(0, inode);
        }

        await handle.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await ListAsync(handle, offset, plus, sink, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            handle.Gate.Release();
        }
    }

    private async ValueTask<FsResult<int>> ListAsync(DirectoryHandle handle, long offset, bool plus, IDirectorySink sink, CancellationToken cancellationToken)
    {
        var directory = handle.Inode;
        var path = Inodes.PathOf(directory);
        if (!handle.Started || offset < handle.WindowStart)
        {
            // From the start (a new listing, a rewind, or a seek back before the page held).
            handle.Started = true;
            handle.Window = [];
            handle.WindowStart = DirectoryHandle.DotEntries;
            handle.NextCursor = null;
            handle.Done = false;
            var first = await NextPageAsync(handle, path, cancellationToken).ConfigureAwait(false);
            if (!first.IsOk)
            {
                return first;
            }
        }

        var added = 0;
        for (var position = offset; ; position++)
        {
            if (position < DirectoryHandle.DotEntries)
            {
                var dotIno = position == 0 ? directory.Ino : (directory.Parent?.Ino ?? InodeTable.RootIno);
                var dot = new DirEntry(position == 0 ? "." : "..", new Attr(dotIno, true, 0, DateTime.UnixEpoch, Attr.TypeDirectory | 0x1ED, _options.Uid, _options.Gid), position + 1, IsDot: true);
                if (!sink.TryAdd(dot))
                {
                    return FsResult<int>.Ok(added);
                }

                added++;
                continue;
            }

            while (position >= handle.WindowStart + handle.Window.Count)
            {
                if (handle.Done)
                {
                    return FsResult<int>.Ok(added);
                }

                var next = await NextPageAsync(handle, path, cancellationToken).ConfigureAwait(false);
                if (!next.IsOk)
                {
                    return next;
                }
            }

            var entry = handle.Window[(int)(position - handle.WindowStart)];
            if (!TryAddEntry(sink, directory, entry, position + 1, plus))
            {
                return FsResult<int>.Ok(added);
            }

            added++;
        }
    }

    private bool TryAddEntry(IDirectorySink sink, Inode directory, FsEntry entry, long nextOffset, bool plus)
    {
        if (!plus)
        {
            // A plain listing names no inode for the kernel to keep: a known child's number, or none.
            var known = Inodes.Child(directory, entry.Name);
            return sink.TryAdd(new DirEntry(entry.Name, AttrOf(known?.Ino ?? ulong.MaxValue, entry), nextOffset, IsDot: false));
        }

        var child = Inodes.Remember(directory, entry.Name, entry, lookups: 1);
        if (sink.TryAdd(new DirEntry(entry.Name, AttrOf(child), nextOffset, IsDot: false)))
        {
            return true;
        }

        // Not sent: the kernel never learnt of this lookup.
        Inodes.Forget(child.Ino, 1);
        return false;
    }

    /// <summary>Moves the handle's window to the next page of the listing (the previous page is let go).</summary>
    private async ValueTask<FsResult<int>> NextPageAsync(DirectoryHandle handle, string path, CancellationToken cancellationToken)
    {
        var page = await _client.ListPageAsync(path, handle.NextCursor, 0, cancellationToken).ConfigureAwait(false);
        if (!page.IsOk)
        {
            return Failed<int>(page.Status, page.Message, path);
        }

        handle.WindowStart += handle.Window.Count;
        handle.Window = page.Value!.Entries;
        handle.NextCursor = page.Value.NextCursor;
        handle.Done = handle.NextCursor is null;
        return FsResult<int>.Ok(handle.Window.Count);
    }

    /// <summary>Closes a directory handle (its page goes with it).</summary>
    public void ReleaseDirectory(ulong fh) => _directories.Remove(fh);

    // ------------------------------------------------------------------ policy: statfs, access, writes

    /// <summary>
    /// Capacity and use of the write workers' write tiers in 4 KiB blocks, reused for <see cref="VfsOptions.StatFsCacheTime"/>
    /// (df and training launchers ask often). Read-only while the policy says so.
    /// </summary>
    public async ValueTask<FsResult<StatFs>> StatFsAsync(CancellationToken cancellationToken)
    {
        if (Environment.TickCount64 < Interlocked.Read(ref _statFsUntil))
        {
            return FsResult<StatFs>.Ok(_statFs);
        }

        const ulong BlockSize = 4096;
        var report = await _client.GetReportAsync(cancellationToken).ConfigureAwait(false);
        var stat = new StatFs(BlockSize, 0, 0, 0, ReadOnly, FsPath.MaxNameBytes);
        if (report.IsOk && report.Value is { } workers)
        {
            // The space that matters to a writer: the write tiers of the write workers (every tier when no worker writes).
            var tiers = workers.SelectMany(w => w.Tiers.Where(t => t.Tier == w.WriteTier)).ToList();
            if (tiers.Count == 0)
            {
                tiers = [.. workers.SelectMany(w => w.Tiers)];
            }

            var capacity = tiers.Sum(t => t.Capacity);
            var used = tiers.Sum(t => t.Used);
            stat = stat with { Blocks = (ulong)(capacity / (long)BlockSize), FreeBlocks = (ulong)Math.Max(0, (capacity - used) / (long)BlockSize), Files = 1UL << 40 };
            _statFs = stat;
            Interlocked.Exchange(ref _statFsUntil, Environment.TickCount64 + (long)_options.StatFsCacheTime.TotalMilliseconds);
        }

        // Without a report (the cluster is busy or gone) df still gets an answer, with no capacity; the next call asks again.
        return FsResult<StatFs>.Ok(stat);
    }

    /// <summary>access(2): permission bits are the kernel's to check (default_permissions); writing is this policy's.</summary>
    public FsStatus Access(ulong ino, int mask) =>
        Inodes.Find(ino) is null ? FsStatus.Stale : ReadOnly && (mask & AccessWrite) != 0 ? FsStatus.ReadOnly : FsStatus.Ok;

    /// <summary>
    /// A change GrainFS does not support (link, symlink, mknod of a device): EPERM, or EROFS on a read-only mount. Names are
    /// checked first, as POSIX checks them.
    /// </summary>
    public FsStatus Modify(ulong ino, string? name = null)
    {
        if (Inodes.Find(ino) is null)
        {
            return FsStatus.Stale;
        }

        if (name is not null && FsPath.CheckName(name, out _) is var status && status != FsStatus.Ok)
        {
            return status;
        }

        // What GrainFS does not keep (symlinks, hard links, device nodes) is not permitted; on a read-only mount nothing is.
        return ReadOnly ? FsStatus.ReadOnly : FsStatus.NotPermitted;
    }

    // ------------------------------------------------------------------ errors

    private static FsResult<Attr> Stale(ulong ino) => FsResult<Attr>.Fail(FsStatus.Stale, $"inode {ino} is not known (forgotten)");

    /// <summary>The errno a caller gets: an unmounted path is gone (ENOENT), a cluster that did not answer is EIO (logged).</summary>
    private FsResult<T> Failed<T>(FsStatus status, string? message, string path)
    {
        var errno = status switch
        {
            FsStatus.Stale => FsStatus.NotFound,
            FsStatus.TimedOut => FsStatus.IoError,
            _ => status,
        };
        if (errno == FsStatus.IoError)
        {
            LogIoError(_logger, path, message ?? status.Describe());
        }

        return FsResult<T>.Fail(errno, message);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "EIO for {Path}: {Reason}")]
    private static partial void LogIoError(ILogger logger, string path, string reason);
}
