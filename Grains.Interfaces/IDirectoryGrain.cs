namespace GrainFs;

/// <summary>
/// A directory of a mount (or one shard of a huge one). It holds its children's inodes in compact form,
/// lists them lazily from under-storage in pages, keeps them per the mount's sync interval, and stores
/// them in the metadata store so a reactivation does not re-list. Keyed by <see cref="DirectoryKey"/>.
/// </summary>
[Alias("grainfs.IDirectoryGrain")]
public interface IDirectoryGrain : IGrainWithStringKey
{
    /// <summary>
    /// Looks up one child by name. One call resolves a path whose parent is this directory. On the head of a sharded
    /// directory the answer is <see cref="FsStatus.Stale"/> with the shard count: ask shard
    /// <see cref="DirectoryKey.ShardOf"/>(name, count) instead.
    /// </summary>
    [Alias("Lookup")]
    ValueTask<LookupResult> LookupAsync(string name);

    /// <summary>A page of children in name order (UTF-8 byte order), starting after <paramref name="after"/> (null for the first page).</summary>
    [Alias("List")]
    ValueTask<ListPage> ListAsync(string? after, int maxEntries);

    /// <summary>Silo-internal, on the head of a sharded directory: re-lists under-storage if the
    /// listing is older than <paramref name="maxAgeSeconds"/> (-1: only if never listed) and returns the current generation.
    /// Shards call the head; the head never calls a shard.</summary>
    [Alias("EnsureSynced")]
    ValueTask<SyncState> EnsureSyncedAsync(int maxAgeSeconds);
}

/// <summary>The result of a lookup.</summary>
/// <param name="Status">Ok, NotFound, NotADirectory (the parent is a file), IoError, Stale (remount happened).</param>
/// <param name="Entry">The child when found.</param>
/// <param name="ShardCount">How many shards the directory has (1 when unsharded), so the caller can go to the right shard next time.</param>
/// <param name="Message">Why it failed, naming the path.</param>
[GenerateSerializer, Immutable, Alias("grainfs.LookupResult")]
public sealed record LookupResult(
    [property: Id(0)] FsStatus Status,
    [property: Id(1)] FsEntry? Entry,
    [property: Id(2)] int ShardCount,
    [property: Id(3)] string? Message);

/// <summary>A page of a directory listing.</summary>
/// <param name="Status">Ok, NotFound, NotADirectory, IoError, Stale.</param>
/// <param name="Entries">Children in name order.</param>
/// <param name="NextAfter">The cursor for the next page, or null when this was the last page (of this shard).</param>
/// <param name="ShardCount">When greater than 1 and this is the head (shard 0), the entries live in shards 1..ShardCount: list each.</param>
/// <param name="Message">Why it failed.</param>
[GenerateSerializer, Immutable, Alias("grainfs.ListPage")]
public sealed record ListPage(
    [property: Id(0)] FsStatus Status,
    [property: Id(1)] FsEntry[] Entries,
    [property: Id(2)] string? NextAfter,
    [property: Id(3)] int ShardCount,
    [property: Id(4)] string? Message);

/// <summary>The sync state of a directory head.</summary>
[GenerateSerializer, Immutable, Alias("grainfs.SyncState")]
public sealed record SyncState(
    [property: Id(0)] FsStatus Status,
    [property: Id(1)] long Generation,
    [property: Id(2)] int ShardCount,
    [property: Id(3)] string? Message);
