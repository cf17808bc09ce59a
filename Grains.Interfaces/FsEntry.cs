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
/// <param name="Uid">The owner GrainFS keeps for the entry (set by a writer or setattr), or -1 (the mount's or the front end's).</param>
/// <param name="Gid">The group GrainFS keeps for the entry, or -1.</param>
/// <param name="Holders">For a file written through GrainFS: the silos whose workers hold its blocks (read there first); else null.</param>
/// <param name="Persistence">Where the file stands with under-storage.</param>
/// <param name="PersistError">Why the last upload failed, when <see cref="Persistence"/> is Failed.</param>
[GenerateSerializer, Immutable, Alias("grainfs.FsEntry")]
public sealed record FsEntry(
    [property: Id(0)] string Name,
    [property: Id(1)] FsKind Kind,
    [property: Id(2)] long Size,
    [property: Id(3)] DateTime MtimeUtc,
    [property: Id(4)] string ETag,
    [property: Id(5)] int Mode,
    [property: Id(6)] int Uid = -1,
    [property: Id(7)] int Gid = -1,
    [property: Id(8)] string[]? Holders = null,
    [property: Id(9)] Persistence Persistence = Persistence.Persisted,
    [property: Id(10)] string? PersistError = null)
{
    /// <summary>True for directories.</summary>
    public bool IsDirectory => Kind == FsKind.Directory;
}
