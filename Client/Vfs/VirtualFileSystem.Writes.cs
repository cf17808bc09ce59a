using GrainFs.Client;

namespace GrainFs.Vfs;

// API of the VFS write path (bodies land with the core; signatures are fixed).
public sealed partial class VirtualFileSystem
{
    /// <summary>Raised when a name in a directory changed elsewhere (another client's commit, rename or removal): the front end tells its kernel (inval_entry).</summary>
    public event Action<ulong, string>? EntryInvalidated;

    /// <summary>Raised when an inode's attributes or data changed elsewhere: the front end tells its kernel (inval_inode, whole range).</summary>
    public event Action<ulong>? InodeInvalidated;

    private void RaiseInvalidated(ulong parent, string name, ulong ino)
    {
        EntryInvalidated?.Invoke(parent, name);
        InodeInvalidated?.Invoke(ino);
    }

    /// <summary>creat/open(O_CREAT): a new file open for writing; the inode's lookup count goes up by one. <paramref name="flags"/> are open(2) flags (O_EXCL, O_TRUNC, access mode).</summary>
    public ValueTask<FsResult<(Attr Attr, ulong Fh)>> CreateAsync(ulong parent, string name, int flags, int mode, uint uid, uint gid, CancellationToken cancellationToken) =>
        throw new NotImplementedException();

    /// <summary>Writes to a handle opened for writing; the bytes taken.</summary>
    public ValueTask<FsResult<int>> WriteAsync(ulong ino, ulong fh, long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken) =>
        throw new NotImplementedException();

    /// <summary>close(2) of a descriptor (FUSE flush): a file written through the handle is committed, visible to every client once this returns.</summary>
    public ValueTask<FsStatus> FlushAsync(ulong ino, ulong fh, CancellationToken cancellationToken) => throw new NotImplementedException();

    /// <summary>fsync(2): the handle's bytes are synced on the write worker.</summary>
    public ValueTask<FsStatus> FsyncAsync(ulong ino, ulong fh, CancellationToken cancellationToken) => throw new NotImplementedException();

    /// <summary>The last close of a handle (FUSE release): a write handle still uncommitted is committed; then the handle goes.</summary>
    public ValueTask ReleaseAsync(ulong fh) => throw new NotImplementedException();

    /// <summary>mkdir(2); the new inode's lookup count goes up by one.</summary>
    public ValueTask<FsResult<Attr>> MakeDirectoryAsync(ulong parent, string name, int mode, uint uid, uint gid, CancellationToken cancellationToken) =>
        throw new NotImplementedException();

    /// <summary>unlink(2).</summary>
    public ValueTask<FsStatus> UnlinkAsync(ulong parent, string name, CancellationToken cancellationToken) => throw new NotImplementedException();

    /// <summary>rmdir(2).</summary>
    public ValueTask<FsStatus> RemoveDirectoryAsync(ulong parent, string name, CancellationToken cancellationToken) => throw new NotImplementedException();

    /// <summary>rename(2) / renameat2: <paramref name="flags"/> RENAME_NOREPLACE (1) is honoured, RENAME_EXCHANGE (2) is EINVAL.</summary>
    public ValueTask<FsStatus> RenameAsync(ulong parent, string name, ulong newParent, string newName, uint flags, CancellationToken cancellationToken) =>
        throw new NotImplementedException();

    /// <summary>setattr: mode, owner, times, size (truncate) of an inode, through the open handle <paramref name="fh"/> when the kernel gives one (0 otherwise).</summary>
    public ValueTask<FsResult<Attr>> SetAttrAsync(ulong ino, ulong fh, AttributeChange change, CancellationToken cancellationToken) =>
        throw new NotImplementedException();
}
