using System.Collections.Concurrent;
using GrainFs.Client;

namespace GrainFs.Vfs;

/// <summary>A file open for writing: the writer of its new version (made at the first write of a file opened without O_TRUNC).</summary>
public sealed class WriteHandle
{
    internal WriteHandle(ulong id, Inode inode, GrainFsWriter? writer, long baseSize)
    {
        Id = id;
        Inode = inode;
        Writer = writer;
        BaseSize = baseSize;
    }

    /// <summary>The handle number (FUSE fh).</summary>
    public ulong Id { get; }

    /// <summary>The file's inode.</summary>
    public Inode Inode { get; }

    /// <summary>The new version being written, or null while nothing was written.</summary>
    public GrainFsWriter? Writer { get; internal set; }

    /// <summary>The size of the version the handle was opened at (a write into it is refused unless it is empty).</summary>
    public long BaseSize { get; }

    internal SemaphoreSlim Gate { get; } = new(1, 1);
}

/// <summary>The write side of the VFS: create, write, flush (the commit), mkdir, unlink, rmdir, rename, setattr.</summary>
public sealed partial class VirtualFileSystem
{
    private const int OpenExclusive = 0x80;
    private const uint RenameNoReplace = 1;
    private const uint RenameExchange = 2;
    private const ulong WriteHandleBit = 1UL << 62;
    private readonly HandleTable<WriteHandle> _writes = new();
    private readonly ConcurrentDictionary<ulong, WriteHandle> _writing = new();

    /// <summary>Raised when a name in a directory changed elsewhere (another client's commit, rename or removal): the front end tells its kernel (inval_entry).</summary>
    public event Action<ulong, string>? EntryInvalidated;

    /// <summary>Raised when an inode's attributes or data changed elsewhere: the front end tells its kernel (inval_inode, whole range).</summary>
    public event Action<ulong>? InodeInvalidated;

    /// <summary>Files open for writing.</summary>
    public int OpenWrites => _writes.Count;

    /// <summary>Another client (or this one) changed paths: the kernel's entries and attributes of them are dropped, and a reader of an old version lets go.</summary>
    private void OnPathsChanged(string[] paths)
    {
        foreach (var path in paths)
        {
            var (parent, inode, name) = Inodes.FindPath(path);
            if (inode is not null)
            {
                inode.Reader = null;
                if (_writing.ContainsKey(inode.Ino))
                {
                    // Our own file being written: its attributes are the writer's, not the cluster's.
                    continue;
                }

                InodeInvalidated?.Invoke(inode.Ino);
            }

            if (parent is not null)
            {
                EntryInvalidated?.Invoke(parent.Ino, name);
            }
        }
    }

    private WriteHandle? FindWrite(ulong fh) => (fh & WriteHandleBit) != 0 ? _writes.Find(fh & ~WriteHandleBit) : null;

    private ulong AddWrite(Inode inode, GrainFsWriter? writer, long baseSize)
    {
        var handle = _writes.Add(id => new WriteHandle(id | WriteHandleBit, inode, writer, baseSize));
        if (writer is not null)
        {
            _writing[inode.Ino] = handle;
        }

        return handle.Id;
    }

    /// <summary>The attributes of an inode while a handle writes it: what the writer holds so far.</summary>
    private Attr? WritingAttr(Inode inode) =>
        _writing.TryGetValue(inode.Ino, out var handle) && handle.Writer is { IsClosed: false } writer
            ? AttrOf(inode.Ino, inode.Entry with { Size = writer.Length })
            : null;

    /// <summary>creat/open(O_CREAT): a new file open for writing; the inode's lookup count goes up by one. <paramref name="flags"/> are open(2) flags (O_EXCL, O_TRUNC, access mode).</summary>
    public async ValueTask<FsResult<(Attr Attr, ulong Fh)>> CreateAsync(ulong parent, string name, int flags, int mode, uint uid, uint gid, CancellationToken cancellationToken)
    {
        if (Inodes.Find(parent) is not { } directory)
        {
            return FsResult<(Attr, ulong)>.Fail(FsStatus.Stale, $"inode {parent} is not known (forgotten)");
        }

        var status = FsPath.CheckName(name, out var error);
        if (status != FsStatus.Ok)
        {
            return FsResult<(Attr, ulong)>.Fail(status, error);
        }

        var path = FsPath.Combine(Inodes.PathOf(directory), name);
        if (ReadOnly)
        {
            return FsResult<(Attr, ulong)>.Fail(FsStatus.ReadOnly, $"{path}: read-only file system");
        }

        var created = await _client.CreateAsync(path, new CreateOptions { Exclusive = (flags & OpenExclusive) != 0, Mode = mode & 0xFFF, Uid = (int)uid, Gid = (int)gid }, cancellationToken).ConfigureAwait(false);
        if (!created.IsOk)
        {
            return Failed<(Attr, ulong)>(created.Status, created.Message, path);
        }

        var writer = created.Value!;
        var entry = new FsEntry(name, FsKind.File, 0, DateTime.UtcNow, writer.Tag, mode & 0xFFF, (int)uid, (int)gid);
        var inode = Inodes.Remember(directory, name, entry, lookups: 1);
        var fh = AddWrite(inode, writer, 0);
        return FsResult<(Attr, ulong)>.Ok((AttrOf(inode), fh));
    }

    private async ValueTask<FsResult<ulong>> OpenForWriteAsync(Inode inode, int flags, CancellationToken cancellationToken)
    {
        var path = Inodes.PathOf(inode);
        if (inode.Entry.IsDirectory)
        {
            return FsResult<ulong>.Fail(FsStatus.IsADirectory, $"{path}: is a directory");
        }

        if ((flags & OpenTruncate) == 0)
        {
            var stat = await _client.StatAsync(path, cancellationToken).ConfigureAwait(false);
            if (!stat.IsOk)
            {
                return Failed<ulong>(stat.Status, stat.Message, path);
            }

            InodeTable.Refresh(inode, stat.Value!);
            return FsResult<ulong>.Ok(AddWrite(inode, null, stat.Value!.Size));
        }

        var created = await _client.CreateAsync(path, new CreateOptions { Mode = inode.Entry.Mode, Uid = inode.Entry.Uid, Gid = inode.Entry.Gid }, cancellationToken).ConfigureAwait(false);
        return created.IsOk ? FsResult<ulong>.Ok(AddWrite(inode, created.Value!, 0)) : Failed<ulong>(created.Status, created.Message, path);
    }

    /// <summary>Writes to a handle opened for writing; the bytes taken.</summary>
    public async ValueTask<FsResult<int>> WriteAsync(ulong ino, ulong fh, long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (FindWrite(fh) is not { } handle)
        {
            return FsResult<int>.Fail(FsStatus.BadHandle, $"inode {ino}: handle {fh} is not open for writing");
        }

        var path = Inodes.PathOf(handle.Inode);
        await handle.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (handle.Writer is null)
            {
                if (handle.BaseSize > 0)
                {
                    return FsResult<int>.Fail(FsStatus.NotPermitted, $"{path}: a file GrainFS holds cannot be changed in place ({handle.BaseSize} bytes; open it with O_TRUNC to write a new version)");
                }

                var created = await _client.CreateAsync(path, new CreateOptions { Mode = handle.Inode.Entry.Mode, Uid = handle.Inode.Entry.Uid, Gid = handle.Inode.Entry.Gid }, cancellationToken).ConfigureAwait(false);
                if (!created.IsOk)
                {
                    return Failed<int>(created.Status, created.Message, path);
                }

                handle.Writer = created.Value!;
                _writing[handle.Inode.Ino] = handle;
            }
        }
        finally
        {
            handle.Gate.Release();
        }

        var wrote = await handle.Writer.WriteAsync(offset, data, cancellationToken).ConfigureAwait(false);
        return wrote.IsOk ? wrote : Failed<int>(wrote.Status, wrote.Message, path);
    }

    private async ValueTask<FsResult<int>> ReadWritingAsync(WriteHandle handle, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        if (handle.Writer is { IsClosed: false } writer)
        {
            var read = await writer.ReadAsync(offset, destination, cancellationToken).ConfigureAwait(false);
            return read.IsOk ? read : Failed<int>(read.Status, read.Message, writer.Path);
        }

        // Opened for writing but nothing written (or already committed): read the version there is.
        var path = Inodes.PathOf(handle.Inode);
        var opened = await _client.OpenAsync(path, cancellationToken).ConfigureAwait(false);
        if (!opened.IsOk)
        {
            return Failed<int>(opened.Status, opened.Message, path);
        }

        var file = opened.Value!;
        var length = (int)Math.Min(destination.Length, Math.Max(0, file.Length - offset));
        if (length == 0)
        {
            return FsResult<int>.Ok(0);
        }

        var result = await file.ReadAsync(offset, destination[..length], cancellationToken).ConfigureAwait(false);
        return result.IsOk ? result : Failed<int>(result.Status, result.Message, path);
    }

    /// <summary>close(2) of a descriptor (FUSE flush): a file written through the handle is committed, visible to every client once this returns.</summary>
    public async ValueTask<FsStatus> FlushAsync(ulong ino, ulong fh, CancellationToken cancellationToken)
    {
        if (FindWrite(fh) is not { } handle)
        {
            return FsStatus.Ok;
        }

        return await CommitAsync(handle, final: false, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Commits what the handle wrote; <paramref name="final"/> (the last close) also ends the writer. A flush of one of
    /// several descriptors (dd dup2s and closes its first one) commits too, and writing goes on.</summary>
    private async ValueTask<FsStatus> CommitAsync(WriteHandle handle, bool final, CancellationToken cancellationToken)
    {
        await handle.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (handle.Writer is not { IsClosed: false } writer)
            {
                return FsStatus.Ok;
            }

            var committed = final ? await writer.CloseAsync(cancellationToken).ConfigureAwait(false) : await writer.CommitAsync(cancellationToken).ConfigureAwait(false);
            if (final)
            {
                _writing.TryRemove(new KeyValuePair<ulong, WriteHandle>(handle.Inode.Ino, handle));
            }

            if (!committed.IsOk)
            {
                return Failed<int>(committed.Status, committed.Message, writer.Path).Status;
            }

            InodeTable.Refresh(handle.Inode, committed.Value! with { Name = handle.Inode.Name });
            return FsStatus.Ok;
        }
        finally
        {
            handle.Gate.Release();
        }
    }

    /// <summary>fsync(2): the handle's bytes are synced on the write worker.</summary>
    public async ValueTask<FsStatus> FsyncAsync(ulong ino, ulong fh, CancellationToken cancellationToken)
    {
        if (FindWrite(fh) is not { Writer: { IsClosed: false } writer })
        {
            return FsStatus.Ok;
        }

        var flushed = await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        return flushed.IsOk ? FsStatus.Ok : Failed<int>(flushed.Status, flushed.Message, writer.Path).Status;
    }

    /// <summary>The last close of a handle (FUSE release): a write handle still uncommitted is committed; then the handle goes.</summary>
    public async ValueTask ReleaseAsync(ulong fh)
    {
        if (FindWrite(fh) is not { } handle)
        {
            Release(fh);
            return;
        }

        try
        {
            await CommitAsync(handle, final: true, CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            _writes.Remove(fh & ~WriteHandleBit);
        }
    }

    /// <summary>mkdir(2); the new inode's lookup count goes up by one.</summary>
    public async ValueTask<FsResult<Attr>> MakeDirectoryAsync(ulong parent, string name, int mode, uint uid, uint gid, CancellationToken cancellationToken)
    {
        if (ChildPath(parent, name, out var directory) is not { } path)
        {
            return FsResult<Attr>.Fail(directory is null ? FsStatus.Stale : FsPath.CheckName(name, out _), $"{name}: cannot be made here");
        }

        if (ReadOnly)
        {
            return FsResult<Attr>.Fail(FsStatus.ReadOnly, $"{path}: read-only file system");
        }

        var made = await _client.MakeDirectoryAsync(path, mode, (int)uid, (int)gid, cancellationToken).ConfigureAwait(false);
        return made.IsOk
            ? FsResult<Attr>.Ok(AttrOf(Inodes.Remember(directory!, name, made.Value!, lookups: 1)))
            : Failed<Attr>(made.Status, made.Message, path);
    }

    private string? ChildPath(ulong parent, string name, out Inode? directory)
    {
        directory = Inodes.Find(parent);
        return directory is null || FsPath.CheckName(name, out _) != FsStatus.Ok ? null : FsPath.Combine(Inodes.PathOf(directory), name);
    }

    /// <summary>unlink(2).</summary>
    public ValueTask<FsStatus> UnlinkAsync(ulong parent, string name, CancellationToken cancellationToken) => RemoveAsync(parent, name, directory: false, cancellationToken);

    /// <summary>rmdir(2).</summary>
    public ValueTask<FsStatus> RemoveDirectoryAsync(ulong parent, string name, CancellationToken cancellationToken) => RemoveAsync(parent, name, directory: true, cancellationToken);

    private async ValueTask<FsStatus> RemoveAsync(ulong parent, string name, bool directory, CancellationToken cancellationToken)
    {
        if (ChildPath(parent, name, out var inode) is not { } path)
        {
            return inode is null ? FsStatus.Stale : FsPath.CheckName(name, out _);
        }

        if (ReadOnly)
        {
            return FsStatus.ReadOnly;
        }

        var removed = await _client.RemoveEntryAsync(path, directory, cancellationToken).ConfigureAwait(false);
        if (!removed.IsOk)
        {
            return Failed<int>(removed.Status, removed.Message, path).Status;
        }

        Inodes.Detach(inode!, name);
        return FsStatus.Ok;
    }

    /// <summary>rename(2) / renameat2: <paramref name="flags"/> RENAME_NOREPLACE (1) is honoured, RENAME_EXCHANGE (2) is EINVAL.</summary>
    public async ValueTask<FsStatus> RenameAsync(ulong parent, string name, ulong newParent, string newName, uint flags, CancellationToken cancellationToken)
    {
        if (ChildPath(parent, name, out var from) is not { } source || ChildPath(newParent, newName, out var to) is not { } target)
        {
            return Inodes.Find(parent) is null || Inodes.Find(newParent) is null ? FsStatus.Stale : FsStatus.InvalidArgument;
        }

        if ((flags & RenameExchange) != 0)
        {
            return FsStatus.InvalidArgument;
        }

        if (ReadOnly)
        {
            return FsStatus.ReadOnly;
        }

        var moved = await _client.RenameAsync(source, target, (flags & RenameNoReplace) != 0, cancellationToken).ConfigureAwait(false);
        if (!moved.IsOk)
        {
            // A directory the under-storage cannot rename: EXDEV makes mv copy it and remove the original, as across file systems.
            var status = moved.Status == FsStatus.NotSupported ? FsStatus.CrossDevice : moved.Status;
            return Failed<int>(status, moved.Message, source).Status;
        }

        Inodes.Detach(to!, newName);
        if (Inodes.Child(from!, name) is { } inode)
        {
            Inodes.Move(inode, to!, newName);
            InodeTable.Refresh(inode, moved.Value! with { Name = newName });
        }

        return FsStatus.Ok;
    }

    /// <summary>setattr: mode, owner, times, size (truncate) of an inode, through the open handle <paramref name="fh"/> when the kernel gives one (0 otherwise).</summary>
    public async ValueTask<FsResult<Attr>> SetAttrAsync(ulong ino, ulong fh, AttributeChange change, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(change);
        if (Inodes.Find(ino) is not { } inode)
        {
            return Stale(ino);
        }

        if (ReadOnly)
        {
            return FsResult<Attr>.Fail(FsStatus.ReadOnly, $"{Inodes.PathOf(inode)}: read-only file system");
        }

        // A file being written takes the change into the version it commits (tar and cp -a set attributes before the close).
        // The handle's gate orders this against its last close: a change after that close goes to the committed file.
        var handle = FindWrite(fh) ?? (_writing.TryGetValue(ino, out var writing) ? writing : null);
        if (handle is not null)
        {
            await handle.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (handle.Writer is null && change.Size == 0 && handle.BaseSize > 0)
                {
                    // ftruncate(fd, 0) of a file opened for writing: the writes that follow make its new version.
                    var created = await _client.CreateAsync(Inodes.PathOf(inode), new CreateOptions { Mode = inode.Entry.Mode, Uid = inode.Entry.Uid, Gid = inode.Entry.Gid }, cancellationToken).ConfigureAwait(false);
                    if (!created.IsOk)
                    {
                        return Failed<Attr>(created.Status, created.Message, Inodes.PathOf(inode));
                    }

                    handle.Writer = created.Value!;
                    _writing[ino] = handle;
                }

                if (handle.Writer is { IsClosed: false } writer)
                {
                    var status = writer.SetAttributes(change);
                    if (status != FsStatus.Ok)
                    {
                        return FsResult<Attr>.Fail(status, $"{writer.Path}: {status.Describe()}");
                    }

                    inode.Entry = inode.Entry with
                    {
                        Mode = change.Mode is { } mode ? mode & 0xFFF : inode.Entry.Mode,
                        Uid = change.Uid ?? inode.Entry.Uid,
                        Gid = change.Gid ?? inode.Entry.Gid,
                        MtimeUtc = change.MtimeUtc ?? inode.Entry.MtimeUtc,
                    };
                    return FsResult<Attr>.Ok(WritingAttr(inode) ?? AttrOf(inode));
                }
            }
            finally
            {
                handle.Gate.Release();
            }
        }

        var path = Inodes.PathOf(inode);
        if (change.IsEmpty)
        {
            return await GetAttrAsync(ino, cancellationToken).ConfigureAwait(false);
        }

        var changed = await _client.SetAttributesAsync(path, change, cancellationToken).ConfigureAwait(false);
        if (!changed.IsOk)
        {
            return Failed<Attr>(changed.Status, changed.Message, path);
        }

        InodeTable.Refresh(inode, changed.Value! with { Name = inode.Name });
        return FsResult<Attr>.Ok(AttrOf(inode));
    }
}
