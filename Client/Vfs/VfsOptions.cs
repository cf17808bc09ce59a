namespace GrainFs.Vfs;

/// <summary>How the VFS presents GrainFS: which subtree, whose files, which permission bits, and what it allows.</summary>
public sealed class VfsOptions
{
    /// <summary>Default for <see cref="StatFsCacheTime"/>.</summary>
    public static readonly TimeSpan DEFAULT_STATFS_CACHE_TIME = TimeSpan.FromSeconds(5);

    /// <summary>The GrainFS path shown as the root (inode 1).</summary>
    public string Root { get; set; } = FsPath.Root;

    /// <summary>The uid every entry reports.</summary>
    public uint Uid { get; set; }

    /// <summary>The gid every entry reports.</summary>
    public uint Gid { get; set; }

    /// <summary>Permission bits applied to every entry (directories also get x where r is set), or null for the source's.</summary>
    public int? Mode { get; set; }

    /// <summary>Refuse every change (EROFS), whatever the mounts underneath allow.</summary>
    public bool ReadOnly { get; set; }

    /// <summary>How long a statfs answer (capacity and use of every worker's tiers) is reused.</summary>
    public TimeSpan StatFsCacheTime { get; set; } = DEFAULT_STATFS_CACHE_TIME;

    /// <summary>Checks the values; one message per problem, naming the option.</summary>
    public IEnumerable<string> Validate()
    {
        if (FsPath.TryNormalize(Root, out _, out var error) != FsStatus.Ok)
        {
            yield return $"root '{Root}': {error}";
        }

        if (Mode is < 0 or > 0xFFF)
        {
            yield return $"mode {Mode}: permission bits are 0 to 07777";
        }

        if (StatFsCacheTime < TimeSpan.Zero)
        {
            yield return "statfs cache time must not be negative";
        }
    }
}
