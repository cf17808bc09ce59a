namespace GrainFs.Client;

// API of the write path (bodies land with the core; signatures are fixed).
public sealed partial class GrainFsClient
{
    /// <summary>Creates (or, without <see cref="CreateOptions.Exclusive"/>, replaces at close) the file at <paramref name="path"/> for writing.
    /// EEXIST (exclusive and it exists), EISDIR, ENOENT (no parent), EROFS (read-only mount).</summary>
    public ValueTask<FsResult<GrainFsWriter>> CreateAsync(string path, CreateOptions? options = null, CancellationToken cancellationToken = default) =>
        throw new NotImplementedException();

    /// <summary>Writes all of <paramref name="source"/> to a new version of <paramref name="path"/> and closes it (fs put).</summary>
    public ValueTask<FsResult<FsEntry>> WriteFileAsync(string path, Stream source, CreateOptions? options = null, CancellationToken cancellationToken = default) =>
        throw new NotImplementedException();

    /// <summary>Makes a directory; with <paramref name="parents"/> also its missing parents and no error when it exists (mkdir -p).</summary>
    public ValueTask<FsResult<FsEntry>> MakeDirectoryAsync(string path, bool parents = false, int mode = 0x1ED, CancellationToken cancellationToken = default) =>
        throw new NotImplementedException();

    /// <summary>Removes a file or an empty directory; with <paramref name="recursive"/> a directory and everything under it. The count removed.</summary>
    public ValueTask<FsResult<int>> RemoveAsync(string path, bool recursive = false, CancellationToken cancellationToken = default) =>
        throw new NotImplementedException();

    /// <summary>Renames within a mount (EXDEV across mounts; a directory on an object store: EOPNOTSUPP). With <paramref name="noReplace"/>, EEXIST when the destination exists.</summary>
    public ValueTask<FsResult<FsEntry>> RenameAsync(string source, string destination, bool noReplace = false, CancellationToken cancellationToken = default) =>
        throw new NotImplementedException();

    /// <summary>Copies a file to a new file (any mounts); the copy is written with <paramref name="options"/>.</summary>
    public ValueTask<FsResult<FsEntry>> CopyAsync(string source, string destination, CreateOptions? options = null, CancellationToken cancellationToken = default) =>
        throw new NotImplementedException();

    /// <summary>Waits until the file at <paramref name="path"/> (or every file under a directory) is persisted; EIO with the reason when its upload failed and
    /// <paramref name="timeout"/> passed, ETIMEDOUT when it is still pending then, EINVAL for a MUST_CACHE file.</summary>
    public ValueTask<FsResult<FsEntry>> PersistAsync(string path, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        throw new NotImplementedException();

    /// <summary>Changes mode, owner, group, mtime, or truncates to 0 (a new, empty version).</summary>
    public ValueTask<FsResult<FsEntry>> SetAttributesAsync(string path, AttributeChange change, CancellationToken cancellationToken = default) =>
        throw new NotImplementedException();
}

// Signatures of GrainFsWriter (bodies land with the core).
public sealed partial class GrainFsWriter
{
    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/> (any offset: holes read as zeros). EDQUOT / ENOSPC / EIO on failure.</summary>
    public ValueTask<FsResult<int>> WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) =>
        throw new NotImplementedException();

    /// <summary>Sends what is buffered to the write worker and waits until it is synced there (fsync).</summary>
    public ValueTask<FsResult<bool>> FlushAsync(CancellationToken cancellationToken = default) => throw new NotImplementedException();

    /// <summary>Attributes committed with the file at close (mode, owner, group, mtime; Size truncates what was written).</summary>
    public FsStatus SetAttributes(AttributeChange change) => throw new NotImplementedException();

    /// <summary>Commits the file: from the moment this returns every client sees the new version. Idempotent.</summary>
    public ValueTask<FsResult<FsEntry>> CloseAsync(CancellationToken cancellationToken = default) => throw new NotImplementedException();

    /// <summary>Drops what was written (nothing becomes visible, nothing is left behind).</summary>
    public ValueTask AbortAsync() => throw new NotImplementedException();

    /// <summary>Reads back bytes written so far (a file open for reading and writing).</summary>
    public ValueTask<FsResult<int>> ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    /// <inheritdoc />
    public ValueTask DisposeAsync() => IsClosed ? ValueTask.CompletedTask : AbortAsync();
}
