using GrainFs.Storage.Metadata;

namespace GrainFs.Storage.UnderStorage;

/// <summary>
/// The narrow interface every under-storage (a local/POSIX folder, an S3-compatible bucket) implements.
/// Paths are relative to the mount's root, slash-separated, already validated ("" is the root).
/// Failures throw <see cref="UnderStorageException"/>, which names the URI and the cause and never a credential.
/// </summary>
public interface IUnderStorage : IAsyncDisposable
{
    /// <summary>The URI, as safe to print (no credentials).</summary>
    string Uri { get; }

    /// <summary>The URI scheme: "file" or "s3".</summary>
    string Scheme { get; }

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
