namespace GrainFs;

/// <summary>The kind of a namespace entry.</summary>
public enum FsKind : byte
{
    /// <summary>A regular file.</summary>
    File = 1,

    /// <summary>A directory (a local folder, or a common prefix in an object store).</summary>
    Directory = 2,
}

/// <summary>
/// One inode as the namespace reports it: a child of a directory. Files have no grain of their own;
/// this record is all there is of them on the metadata path.
/// </summary>
/// <param name="Name">The entry's name inside its directory (no slashes).</param>
/// <param name="Kind">File or directory.</param>
/// <param name="Size">Size in bytes (0 for directories).</param>
/// <param name="MtimeUtc">Last modification time, UTC.</param>
/// <param name="ETag">The version of the object: the S3 ETag without quotes, or a tag derived from a local file's mtime and size. Empty for directories.</param>
/// <param name="Mode">Permission bits (07777) reported by the under-storage, or 0 when it has none (the mount's mode applies).</param>
[GenerateSerializer, Immutable, Alias("grainfs.FsEntry")]
public sealed record FsEntry(
    [property: Id(0)] string Name,
    [property: Id(1)] FsKind Kind,
    [property: Id(2)] long Size,
    [property: Id(3)] DateTime MtimeUtc,
    [property: Id(4)] string ETag,
    [property: Id(5)] int Mode)
{
    /// <summary>True for directories.</summary>
    public bool IsDirectory => Kind == FsKind.Directory;
}
