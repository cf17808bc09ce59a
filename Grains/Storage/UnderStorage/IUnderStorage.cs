using GrainFs.Storage.Metadata;

namespace GrainFs.Storage.UnderStorage;

/// <summary>
/// The narrow interface every under-storage (a local/POSIX folder, an S3-compatible bucket) implements: a read side
/// (list, stat, ranged reads) and a write side (put, delete, copy, rename, directories) whose reach each adapter
/// declares in <see cref="Capabilities"/>. Paths are relative to the mount's root, slash-separated, already validated
/// ("" is the root). Failures throw <see cref="UnderStorageException"/>, which names the URI and the cause and never
/// a credential.
/// </summary>
public interface IUnderStorage : IAsyncDisposable
{
    /// <summary>The URI, as safe to print (no credentials).</summary>
    string Uri { get; }

    /// <summary>The URI scheme: "file" or "s3".</summary>
    string Scheme { get; }

    /// <summary>What the write side can do natively.</summary>
    UnderStorageCapabilities Capabilities { get; }

    /// <summary>
    /// Lists the direct children of a directory in pages (in no particular order). Throws with kind
    /// NotFound when the directory does not exist and NotADirectory when it is a file.
    /// </summary>
    IAsyncEnumerable<IReadOnlyList<EntryRecord>> ListAsync(string directory, CancellationToken cancellationToken = default);

    /// <summary>Stat of a file or directory; null when nothing exists at that path.</summary>
    ValueTask<EntryRecord?> StatAsync(string path, CancellationToken cancellationToken = default);

    /// <summary>
    /// Reads up to <c>destination.Length</c> bytes of a file starting at <paramref name="offset"/> into the caller's buffer;
    /// returns the number read, fewer only at the end of the file.
    /// </summary>
    ValueTask<int> ReadAsync(string path, long offset, Memory<byte> destination, CancellationToken cancellationToken = default);

    /// <summary>
    /// Opens a stream over <paramref name="length"/> bytes of a file at <paramref name="offset"/> (one request for
    /// an object store). When <paramref name="expectedETag"/> is given and the file has changed since, throws with kind
    /// <see cref="UnderStorageError.Changed"/>, so bytes of a new version are never stored under the old one.
    /// </summary>
    ValueTask<Stream> OpenReadAsync(string path, long offset, long length, string? expectedETag, CancellationToken cancellationToken = default);

    /// <summary>
    /// Writes a whole file from <paramref name="content"/> (read to its end; <paramref name="length"/> when known),
    /// replacing any file at the path. Atomic: a reader sees the old version or the new one, never a part, and the new
    /// version always has a new ETag. Files larger than the adapter's part size go up in parts where
    /// <see cref="UnderStorageCapabilities.Multipart"/> is declared. A folder adapter needs the parent directory to exist.
    /// Returns the new entry.
    /// </summary>
    ValueTask<EntryRecord> PutAsync(string path, Stream content, long? length = null, CancellationToken cancellationToken = default);

    /// <summary>Removes a file; removing one that is not there is not an error. Throws IsADirectory for a directory.</summary>
    ValueTask DeleteAsync(string path, CancellationToken cancellationToken = default);

    /// <summary>Copies a file to <paramref name="destination"/> (replacing a file there), inside the store where it can; returns the new entry.</summary>
    ValueTask<EntryRecord> CopyAsync(string source, string destination, CancellationToken cancellationToken = default);

    /// <summary>
    /// Renames a file (or, with <see cref="UnderStorageCapabilities.DirectoryRename"/>, a directory) atomically, replacing a file at
    /// <paramref name="destination"/>. Only where <see cref="UnderStorageCapabilities.AtomicRename"/> is declared; otherwise throws
    /// with kind <see cref="UnderStorageError.NotSupported"/> (the caller copies and deletes).
    /// </summary>
    ValueTask<EntryRecord> RenameAsync(string source, string destination, CancellationToken cancellationToken = default);

    /// <summary>Creates an empty directory (a folder; a "dir/" marker object on an object store). Throws AlreadyExists when something is there.</summary>
    ValueTask MakeDirectoryAsync(string path, CancellationToken cancellationToken = default);

    /// <summary>Removes an empty directory. Throws NotEmpty when it holds anything, NotFound when absent, NotADirectory for a file.</summary>
    ValueTask RemoveDirectoryAsync(string path, CancellationToken cancellationToken = default);
}

/// <summary>Operations built from the primitives of <see cref="IUnderStorage"/>.</summary>
public static class UnderStorageExtensions
{
    /// <summary>Moves a file: one atomic rename where the adapter has it, else a (server-side) copy and a delete. The entry at its new path.</summary>
    public static async ValueTask<EntryRecord> MoveFileAsync(this IUnderStorage storage, string source, string destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(storage);
        if (storage.Capabilities.HasFlag(UnderStorageCapabilities.AtomicRename))
        {
            return await storage.RenameAsync(source, destination, cancellationToken).ConfigureAwait(false);
        }

        var copied = await storage.CopyAsync(source, destination, cancellationToken).ConfigureAwait(false);
        await storage.DeleteAsync(source, cancellationToken).ConfigureAwait(false);
        return copied;
    }
}

/// <summary>What an under-storage's write side does natively.</summary>
[Flags]
public enum UnderStorageCapabilities
{
    /// <summary>Read only.</summary>
    None = 0,

    /// <summary>Put, delete and directories.</summary>
    Write = 1,

    /// <summary>Large files are uploaded in parts (several in flight, each retried alone).</summary>
    Multipart = 2,

    /// <summary>Copies happen inside the store, without the bytes crossing the silo.</summary>
    ServerSideCopy = 4,

    /// <summary>A file rename is one atomic operation.</summary>
    AtomicRename = 8,

    /// <summary>A directory can be renamed (with everything under it) in one operation.</summary>
    DirectoryRename = 16,

    /// <summary>Directories exist apart from the files in them (an object store keeps an empty one as a "dir/" marker).</summary>
    RealDirectories = 32,
}

/// <summary>Why an under-storage operation failed.</summary>
public enum UnderStorageError
{
    /// <summary>The path does not exist.</summary>
    NotFound,

    /// <summary>A directory was expected and a file found.</summary>
    NotADirectory,

    /// <summary>A file was expected and a directory found.</summary>
    IsADirectory,

    /// <summary>The credentials were refused or lack permission.</summary>
    AccessDenied,

    /// <summary>The bucket does not exist.</summary>
    NoSuchBucket,

    /// <summary>The endpoint could not be reached (refused, timed out, DNS).</summary>
    Unreachable,

    /// <summary>Still throttled after every retry.</summary>
    Throttled,

    /// <summary>The URI or an option is invalid.</summary>
    InvalidArgument,

    /// <summary>The file changed since it was listed (its version no longer matches).</summary>
    Changed,

    /// <summary>Any other failure.</summary>
    Other,

    /// <summary>Something already exists at the path.</summary>
    AlreadyExists,

    /// <summary>A directory to remove or replace is not empty.</summary>
    NotEmpty,

    /// <summary>The adapter cannot do this (see <see cref="IUnderStorage.Capabilities"/>).</summary>
    NotSupported,

    /// <summary>The store (or its disk) is full, or a quota is exhausted.</summary>
    NoSpace,
}

/// <summary>An under-storage failure, naming the URI (without credentials) and the cause.</summary>
public sealed class UnderStorageException : Exception
{
    /// <summary>Creates the exception.</summary>
    public UnderStorageException(UnderStorageError error, string uri, string cause, Exception? inner = null)
        : base($"{uri}: {cause}", inner)
    {
        Error = error;
        Uri = uri;
        Cause = cause;
    }

    /// <summary>What went wrong.</summary>
    public UnderStorageError Error { get; }

    /// <summary>The URI concerned.</summary>
    public string Uri { get; }

    /// <summary>The cause, without the URI.</summary>
    public string Cause { get; }
}
