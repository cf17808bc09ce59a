namespace GrainFs.Vfs;

/// <summary>The attributes of an inode, as a front end reports them (struct stat).</summary>
/// <param name="Ino">The inode number.</param>
/// <param name="IsDirectory">A directory (else a regular file).</param>
/// <param name="Size">Bytes.</param>
/// <param name="MtimeUtc">Last modification.</param>
/// <param name="Mode">The file type bits and the permission bits (st_mode).</param>
/// <param name="Uid">Owner.</param>
/// <param name="Gid">Group.</param>
public readonly record struct Attr(ulong Ino, bool IsDirectory, long Size, DateTime MtimeUtc, uint Mode, uint Uid, uint Gid)
{
    /// <summary>S_IFDIR.</summary>
    public const uint TypeDirectory = 0x4000;

    /// <summary>S_IFREG.</summary>
    public const uint TypeFile = 0x8000;

    /// <summary>Links: 2 for a directory, 1 for a file.</summary>
    public ulong Nlink => IsDirectory ? 2UL : 1UL;
}

/// <summary>One entry of a directory listing as a front end packs it.</summary>
/// <param name="Name">The name ("." and ".." included).</param>
/// <param name="Attr">Its attributes (for "." and "..": the inode number and the directory type only).</param>
/// <param name="NextOffset">The offset to continue the listing after this entry.</param>
/// <param name="IsDot">"." or "..": never counted as a lookup.</param>
public readonly record struct DirEntry(string Name, Attr Attr, long NextOffset, bool IsDot);

/// <summary>Where a listing goes: a front end's reply buffer. False when the entry does not fit (the listing stops there).</summary>
public interface IDirectorySink
{
    /// <summary>Adds an entry; false when the buffer is full (the entry is not taken).</summary>
    bool TryAdd(in DirEntry entry);
}

/// <summary>Capacity and use of the cluster's cache, as statfs reports them.</summary>
/// <param name="BlockSize">Bytes per block.</param>
/// <param name="Blocks">Blocks in all tiers.</param>
/// <param name="FreeBlocks">Blocks free.</param>
/// <param name="Files">Inodes (not limited: reported as 2^40).</param>
/// <param name="ReadOnly">Mounted read-only.</param>
/// <param name="NameMax">Longest name in bytes.</param>
public readonly record struct StatFs(ulong BlockSize, ulong Blocks, ulong FreeBlocks, ulong Files, bool ReadOnly, ulong NameMax);
