namespace GrainFs.Storage.Metadata;

/// <summary>What a directory listing found at its path.</summary>
public enum DirectoryState : byte
{
    /// <summary>A directory; its entries are in the table.</summary>
    Listed = 0,

    /// <summary>Nothing exists at the path (a cached negative answer).</summary>
    NotFound = 1,

    /// <summary>The path is a file (a cached negative answer).</summary>
    NotADirectory = 2,
}

/// <summary>A directory (or shard) as it was last listed from under-storage.</summary>
/// <param name="State">What the listing found.</param>
/// <param name="Table">The entries (empty unless <see cref="DirectoryState.Listed"/>).</param>
/// <param name="SyncedUtc">When the listing was read from under-storage.</param>
/// <param name="Generation">Bumped by every listing, so shards can tell a newer listing from theirs.</param>
/// <param name="ShardCount">1 when unsharded; otherwise the number of shards the entries are split into.</param>
public sealed record DirectorySnapshot(DirectoryState State, DirectoryTable Table, DateTime SyncedUtc, long Generation, int ShardCount);

/// <summary>A mount as the store keeps it; options are JSON written by the mount table grain.</summary>
public sealed record StoredMount(long Id, string Path, string Uri, string OptionsJson, DateTime CreatedUtc);

/// <summary>The whole mount table: small, written atomically.</summary>
/// <param name="Version">The table's version (bumped by each change).</param>
/// <param name="NextId">The next mount id to hand out; never reused.</param>
/// <param name="Mounts">The mounts.</param>
public sealed record StoredMountTable(long Version, long NextId, IReadOnlyList<StoredMount> Mounts)
{
    /// <summary>The table of a new cluster.</summary>
    public static StoredMountTable Empty { get; } = new(0, 1, []);
}

/// <summary>
/// What GrainFS itself knows of one name in a directory, on top of the under-storage listing: a file or directory
/// written through GrainFS (with its owner, its holders and whether it is persisted), the attributes set on a listed
/// entry, or a tombstone hiding a listed entry that was removed. Few per directory (the writes), so kept apart from the
/// compact listing. The name "." marks a directory GrainFS made (it exists even where under-storage has no trace of it).
/// </summary>
/// <param name="Name">The name in the directory.</param>
/// <param name="Kind">File or directory.</param>
/// <param name="Size">Bytes.</param>
/// <param name="MtimeTicks">Modification time, UTC ticks.</param>
/// <param name="ETag">The version tag (a write tag "gfs:…" for written files).</param>
/// <param name="Mode">Permission bits, 0 when none were set.</param>
/// <param name="Uid">Owner, or -1.</param>
/// <param name="Gid">Group, or -1.</param>
/// <param name="Holders">Silos holding a written file's blocks (empty when none).</param>
/// <param name="Persistence">0 persisted, 1 pending, 2 failed, 3 cache-only (the values of the grain-facing Persistence).</param>
/// <param name="Error">Why the last upload failed, or null.</param>
/// <param name="Deleted">A tombstone: the listed entry of this name was removed.</param>
public sealed record OverlayEntry(
    string Name,
    EntryKind Kind,
    long Size,
    long MtimeTicks,
    string ETag,
    int Mode,
    int Uid,
    int Gid,
    string[] Holders,
    byte Persistence,
    string? Error,
    bool Deleted);

/// <summary>Bytes and files written through GrainFS that a mount holds, against its quota.</summary>
public readonly record struct MountUsage(long Bytes, long Files);

/// <summary>Thrown when a write lost an optimistic-concurrency race (another silo wrote first).</summary>
public sealed class MetadataConflictException(string message) : Exception(message);

/// <summary>
/// Where metadata outlives grain activations: the mount table and directory listings. Two engines, one
/// contract (the contract tests run against both): in-memory for the embedded single silo, PostgreSQL for clusters.
/// </summary>
public interface IMetadataStore
{
    /// <summary>"memory" or "postgres".</summary>
    string Kind { get; }

    /// <summary>Checks the store is usable (for PostgreSQL: reachable, schema at the expected version).</summary>
    ValueTask InitializeAsync(CancellationToken cancellationToken = default);

    /// <summary>Answers when the store is reachable now (readiness probes); throws naming the cause when it is not.</summary>
    ValueTask PingAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    /// <summary>The mount table (empty for a new cluster).</summary>
    ValueTask<StoredMountTable> LoadMountTableAsync(CancellationToken cancellationToken = default);

    /// <summary>Replaces the mount table if the stored version is still <paramref name="expectedVersion"/>; else throws <see cref="MetadataConflictException"/>.</summary>
    ValueTask SaveMountTableAsync(StoredMountTable table, long expectedVersion, CancellationToken cancellationToken = default);

    /// <summary>A stored directory listing, or null.</summary>
    ValueTask<DirectorySnapshot?> LoadDirectoryAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Stores a directory listing, replacing any older one.</summary>
    ValueTask SaveDirectoryAsync(string key, long mountId, DirectorySnapshot snapshot, CancellationToken cancellationToken = default);

    /// <summary>
    /// Stores several listings of a mount, replacing older ones, all or none: a sharded directory's shards and its head,
    /// so that a failure (or a crash) between them never leaves a head naming shards of another generation.
    /// </summary>
    ValueTask SaveDirectoriesAsync(long mountId, IReadOnlyList<KeyValuePair<string, DirectorySnapshot>> listings, CancellationToken cancellationToken = default);

    /// <summary>
    /// Adds or replaces one entry (by name) of a stored listing, leaving the rest as it is. False, and nothing written,
    /// when <paramref name="key"/> has no stored listing: a directory never listed is listed whole first.
    /// </summary>
    ValueTask<bool> UpsertEntryAsync(string key, EntryRecord entry, CancellationToken cancellationToken = default);

    /// <summary>Removes one entry of a stored listing; false when there is no such listing or no such entry.</summary>
    ValueTask<bool> DeleteEntryAsync(string key, string name, CancellationToken cancellationToken = default);

    /// <summary>The overlay entries of a directory (or shard) key, in any order; empty when none.</summary>
    ValueTask<IReadOnlyList<OverlayEntry>> LoadOverlayAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Adds or replaces (by name) one overlay entry of <paramref name="key"/>.</summary>
    ValueTask PutOverlayAsync(string key, long mountId, OverlayEntry entry, CancellationToken cancellationToken = default);

    /// <summary>Removes one overlay entry; false when there was none.</summary>
    ValueTask<bool> RemoveOverlayAsync(string key, string name, CancellationToken cancellationToken = default);

    /// <summary>A mount's usage (zero when never saved).</summary>
    ValueTask<MountUsage> LoadUsageAsync(long mountId, CancellationToken cancellationToken = default);

    /// <summary>Adds <paramref name="delta"/> (either sign) to a mount's usage and returns the new usage; the sum never goes below zero.</summary>
    ValueTask<MountUsage> AddUsageAsync(long mountId, MountUsage delta, CancellationToken cancellationToken = default);

    /// <summary>Forgets every directory listing of a mount (overlay entries and usage too).</summary>
    ValueTask DeleteMountDataAsync(long mountId, CancellationToken cancellationToken = default);
}
