namespace GrainFs;

/// <summary>Per-mount options, validated by the mount table grain.</summary>
/// <param name="ReadOnly">Writes through this mount are refused with EROFS.</param>
/// <param name="SyncIntervalSeconds">How often a cached directory listing is re-read from under-storage:
/// -1 never (the default: listed once, kept), 0 on every access, N at most every N seconds.</param>
/// <param name="Owner">The uid reported for every entry, or null for the default (the under-storage's, else 0).</param>
/// <param name="Group">The gid reported for every entry, or null for the default.</param>
/// <param name="Mode">Permission bits (07777) applied to every entry, or null to use the under-storage's (0755 / 0644 when it has none).</param>
/// <param name="Properties">Under-storage settings (endpoint, region, path-style, credentials). Secret values are replaced by
/// <see cref="MountOptions.Redacted"/> before they leave the cluster.</param>
/// <param name="BlockSize">Bytes per cached block of this mount's files (a smaller file is one block of its own size).</param>
/// <param name="WriteType">How writes through this mount reach under-storage unless a call says otherwise.</param>
/// <param name="QuotaBytes">The most bytes of files written through GrainFS the mount may hold (0: no limit); over it, EDQUOT.</param>
/// <param name="QuotaFiles">The most files written through GrainFS the mount may hold (0: no limit).</param>
/// <param name="WriteReplicas">Synced copies of an ASYNC_THROUGH file's blocks, on write workers of different hosts, before a close returns (1 or 2).</param>
/// <param name="Readers">Identities that may read the mount (option readers=a:b, * for every authenticated identity); null or empty: admins only.</param>
/// <param name="Writers">Identities that may write (and read) the mount (option writers=); null or empty: admins only.</param>
[GenerateSerializer, Immutable, Alias("grainfs.MountOptions")]
public sealed record MountOptions(
    [property: Id(0)] bool ReadOnly,
    [property: Id(1)] int SyncIntervalSeconds,
    [property: Id(2)] int? Owner,
    [property: Id(3)] int? Group,
    [property: Id(4)] int? Mode,
    [property: Id(5)] IReadOnlyDictionary<string, string> Properties,
    [property: Id(6)] int BlockSize = MountOptions.DEFAULT_BLOCK_SIZE,
    [property: Id(7)] WriteType WriteType = WriteType.AsyncThrough,
    [property: Id(8)] long QuotaBytes = 0,
    [property: Id(9)] long QuotaFiles = 0,
    [property: Id(10)] int WriteReplicas = 1,
    [property: Id(11)] IReadOnlyList<string>? Readers = null,
    [property: Id(12)] IReadOnlyList<string>? Writers = null)
{
    /// <summary>The default block size: 4 MiB.</summary>
    public const int DEFAULT_BLOCK_SIZE = 4 * 1024 * 1024;

    /// <summary>The smallest block size a mount may use.</summary>
    public const int MIN_BLOCK_SIZE = 64 * 1024;

    /// <summary>The largest block size a mount may use.</summary>
    public const int MAX_BLOCK_SIZE = 64 * 1024 * 1024;

    /// <summary>The default sync interval: never re-list a directory once it has been listed.</summary>
    public const int DEFAULT_SYNC_INTERVAL_SECONDS = -1;

    /// <summary>The text shown instead of a secret value.</summary>
    public const string Redaction = "***";

    /// <summary>Option keys whose values are credentials.</summary>
    public static readonly IReadOnlySet<string> SecretKeys = new HashSet<string>(StringComparer.Ordinal)
    {
        "secret-key", "session-token", "access-key", NAME_KEY,
    };

    /// <summary>
    /// The property holding a mount's block-name key: 16 random bytes made when it is mounted, mixed into every block key
    /// of the mount, so that only identities the cluster tells it to (readers of the mount) can name its blocks at a data
    /// port. Kept with the mount's secrets; given in the mount table only to those who may read the mount.
    /// </summary>
    public const string NAME_KEY = "name-key";

    /// <summary>Defaults: read-write, never re-sync, ownership and mode from the under-storage.</summary>
    public static MountOptions Default { get; } = new(false, DEFAULT_SYNC_INTERVAL_SECONDS, null, null, null, new Dictionary<string, string>());

    /// <summary>A copy safe to show: secret values replaced.</summary>
    public MountOptions Redacted()
    {
        var copy = new Dictionary<string, string>(Properties.Count, StringComparer.Ordinal);
        foreach (var (key, value) in Properties)
        {
            copy[key] = SecretKeys.Contains(key) ? Redaction : value;
        }

        return this with { Properties = copy };
    }
}

/// <summary>One mount: an under-storage URI attached at a GrainFS path.</summary>
/// <param name="Id">Unique for the life of the cluster; a remount at the same path gets a new id, so caches keyed by it never mix.</param>
/// <param name="Path">The mount point, a normalised absolute path directly or indirectly under the virtual root.</param>
/// <param name="Uri">The under-storage URI (file:///…, s3://bucket/prefix), without credentials.</param>
/// <param name="Options">The mount's options.</param>
/// <param name="CreatedUtc">When the mount was made.</param>
[GenerateSerializer, Immutable, Alias("grainfs.MountInfo")]
public sealed record MountInfo(
    [property: Id(0)] long Id,
    [property: Id(1)] string Path,
    [property: Id(2)] string Uri,
    [property: Id(3)] MountOptions Options,
    [property: Id(4)] DateTime CreatedUtc)
{
    /// <summary>A copy safe to show outside the silos.</summary>
    public MountInfo Redacted() => this with { Options = Options.Redacted() };

    /// <summary>The mount as shown to a reader of it: secrets redacted, the block-name key kept.</summary>
    public MountInfo ForReader()
    {
        var redacted = Redacted();
        if (Options.Properties.TryGetValue(MountOptions.NAME_KEY, out var key))
        {
            var properties = new Dictionary<string, string>(redacted.Options.Properties, StringComparer.Ordinal) { [MountOptions.NAME_KEY] = key };
            return redacted with { Options = redacted.Options with { Properties = properties } };
        }

        return redacted;
    }

    /// <summary>What block keys of this mount hash besides each file's facts: the URI and the block-name key.</summary>
    public string BlockNamespace =>
        Options.Properties.TryGetValue(MountOptions.NAME_KEY, out var key) && key != MountOptions.Redaction ? Uri + "\n" + key : Uri;
}

/// <summary>The mount table as clients cache it.</summary>
/// <param name="Version">Bumped by every mount and unmount.</param>
/// <param name="Mounts">The mounts, sorted by path.</param>
[GenerateSerializer, Immutable, Alias("grainfs.MountTableSnapshot")]
public sealed record MountTableSnapshot(
    [property: Id(0)] long Version,
    [property: Id(1)] MountInfo[] Mounts);

/// <summary>A request to mount <paramref name="Uri"/> at <paramref name="Path"/>.</summary>
/// <param name="Path">The mount point.</param>
/// <param name="Uri">The under-storage URI.</param>
/// <param name="Options">Raw key=value options, validated by the mount table grain.</param>
[GenerateSerializer, Immutable, Alias("grainfs.MountRequest")]
public sealed record MountRequest(
    [property: Id(0)] string Path,
    [property: Id(1)] string Uri,
    [property: Id(2)] IReadOnlyDictionary<string, string> Options);

/// <summary>The outcome of a mount or unmount.</summary>
[GenerateSerializer, Immutable, Alias("grainfs.MountResult")]
public sealed record MountResult(
    [property: Id(0)] FsStatus Status,
    [property: Id(1)] string? Message,
    [property: Id(2)] MountInfo? Mount,
    [property: Id(3)] long Version);
