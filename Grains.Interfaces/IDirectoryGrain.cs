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
    [Alias("Lookup"), Access(Access.Read)]
    ValueTask<LookupResult> LookupAsync(string name);

    /// <summary>A page of children in name order (UTF-8 byte order), starting after <paramref name="after"/> (null for the first page).</summary>
    [Alias("List"), Access(Access.Read)]
    ValueTask<ListPage> ListAsync(string? after, int maxEntries);

    /// <summary>Silo-internal, on the head of a sharded directory: re-lists under-storage if the
    /// listing is older than <paramref name="maxAgeSeconds"/> (-1: only if never listed) and returns the current generation.
    /// Shards call the head; the head never calls a shard.</summary>
    [Alias("EnsureSynced")]
    ValueTask<SyncState> EnsureSyncedAsync(int maxAgeSeconds);

    // Writes. Each names one child and, like a lookup, is answered Stale with the shard count on the head of a sharded
    // directory (send it to the shard). Refused with EROFS on a read-only mount. Results carry the child's entry.

    /// <summary>A writer is about to create <paramref name="name"/>: checks it can (EISDIR, EEXIST when <paramref name="exclusive"/>
    /// and it exists or another exclusive creator holds it) and, when exclusive, holds the name for <paramref name="writer"/> until its commit.
    /// The entry is the existing one, if any.</summary>
    [Alias("Reserve"), Access(Access.Write)]
    ValueTask<LookupResult> ReserveAsync(string name, string writer, bool exclusive);

    /// <summary>Makes a written file visible: from now on every lookup returns <paramref name="entry"/> (the last commit wins; an exclusive
    /// commit wins only if its writer holds the name). The version it replaces is freed.</summary>
    [Alias("Commit"), Access(Access.Write)]
    ValueTask<LookupResult> CommitAsync(string name, FsEntry entry, string writer, bool exclusive);

    /// <summary>Drops a reservation of <paramref name="writer"/> (the write was aborted).</summary>
    [Alias("Unreserve"), Access(Access.Write)]
    ValueTask UnreserveAsync(string name, string writer);

    /// <summary>Makes the child directory <paramref name="name"/> (and its "dir/" marker on an object store).</summary>
    [Alias("MakeDirectory"), Access(Access.Write)]
    ValueTask<LookupResult> MakeDirectoryAsync(string name, int mode, int uid, int gid);

    /// <summary>Removes a file (<paramref name="directory"/> false, unlink) or an empty directory (rmdir) from GrainFS and under-storage.</summary>
    [Alias("Remove"), Access(Access.Write)]
    ValueTask<LookupResult> RemoveAsync(string name, bool directory);

    /// <summary>Sets mode, owner, group or mtime (kept in GrainFS metadata), or truncates to 0 (a new, empty version).</summary>
    [Alias("SetAttributes"), Access(Access.Write)]
    ValueTask<LookupResult> SetAttributesAsync(string name, AttributeChange change);

    /// <summary>Renames the child <paramref name="name"/> to <paramref name="newName"/> in the directory <paramref name="target"/> (a
    /// <see cref="DirectoryKey"/> of the same mount, already routed to the shard of <paramref name="newName"/>).</summary>
    [Alias("Rename"), Access(Access.Write)]
    ValueTask<LookupResult> RenameAsync(string name, string target, string newName, bool noReplace);

    /// <summary>Silo-internal, rename's target side: checks <paramref name="name"/> may take an entry of <paramref name="kind"/> (EEXIST with
    /// <paramref name="noReplace"/>, EISDIR, ENOTDIR, ENOTEMPTY).</summary>
    [Alias("CheckAdopt"), Orleans.Concurrency.AlwaysInterleave]
    ValueTask<LookupResult> CheckAdoptAsync(string name, FsKind kind, bool noReplace);

    /// <summary>Silo-internal, rename's target side: takes <paramref name="entry"/> as the child <paramref name="name"/>, replacing what is there.</summary>
    [Alias("Adopt"), Orleans.Concurrency.AlwaysInterleave]
    ValueTask<LookupResult> AdoptAsync(string name, FsEntry entry);

    /// <summary>Silo-internal, from the persist queue: the written file <paramref name="name"/> of write tag <paramref name="writeTag"/> and
    /// <paramref name="size"/> bytes is in under-storage with <paramref name="underStorageETag"/>, or (with <paramref name="error"/>) its upload
    /// failed and is retried. NotFound when the entry is no longer that version and size.</summary>
    [Alias("Persisted")]
    ValueTask<LookupResult> PersistedAsync(string name, string writeTag, long size, string? underStorageETag, string? error);

    /// <summary>Silo-internal: this directory was made by GrainFS (it exists even where under-storage keeps no trace of it).</summary>
    [Alias("MarkCreated")]
    ValueTask MarkCreatedAsync();

    /// <summary>Silo-internal, for rmdir and rename: whether the directory has no children (and how it stands).</summary>
    [Alias("IsEmpty")]
    ValueTask<LookupResult> IsEmptyAsync();

    /// <summary>Silo-internal, from the parent after rmdir, or after a rename moved a directory away from or onto this path: what
    /// this directory (or shard) holds describes one that is no longer here. It drops its overlay and reservations, lists
    /// under-storage afresh, and returns what it dropped, so that a rename can hand it to the directory's new path.</summary>
    [Alias("Forget"), Access(Access.Admin)]
    ValueTask<ForgottenDirectory> ForgetAsync();

    /// <summary>Silo-internal, rename's target side: takes the overlay entries a directory had at its old path (and its
    /// made-by-GrainFS mark with <paramref name="created"/>). On the head of a sharded directory: Stale with the shard count, nothing taken.</summary>
    [Alias("TakeOverlay"), Access(Access.Admin)]
    ValueTask<LookupResult> TakeOverlayAsync(FsEntry[] entries, bool created);
}

/// <summary>What a directory (or shard) dropped when it was told to forget itself.</summary>
/// <param name="ShardCount">Its shard count (the head's; 1 for a shard): shards 1..N forget too.</param>
/// <param name="Directories">The names of its child directories, whose own grains hold state of the same path.</param>
/// <param name="Written">Its overlay entries that were not tombstones: written files, made directories, attributes.</param>
/// <param name="Created">It was made by GrainFS (it exists where under-storage has no trace of it).</param>
[GenerateSerializer, Immutable, Alias("grainfs.ForgottenDirectory")]
public sealed record ForgottenDirectory(
    [property: Id(0)] int ShardCount,
    [property: Id(1)] string[] Directories,
    [property: Id(2)] FsEntry[] Written,
    [property: Id(3)] bool Created);

/// <summary>The result of a lookup.</summary>
/// <param name="Status">Ok, NotFound, NotADirectory (the parent is a file), IoError, Stale (remount happened).</param>
/// <param name="Entry">The child when found.</param>
/// <param name="ShardCount">How many shards the directory has (1 when unsharded), so the caller can go to the right shard next time.</param>
/// <param name="Message">Why it failed, naming the path.</param>
/// <param name="MissingDirectory">When the status (ENOENT, ENOTDIR) is about the directory itself rather than the child, that
/// directory's path in its mount: the directory answered from its last listing, and its parent's entry for it decides.</param>
[GenerateSerializer, Immutable, Alias("grainfs.LookupResult")]
public sealed record LookupResult(
    [property: Id(0)] FsStatus Status,
    [property: Id(1)] FsEntry? Entry,
    [property: Id(2)] int ShardCount,
    [property: Id(3)] string? Message,
    [property: Id(4)] string? MissingDirectory = null);

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
