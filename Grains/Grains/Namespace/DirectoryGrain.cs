using System.Diagnostics;
using System.Globalization;
using GrainFs.DataPlane;
using GrainFs.Storage.Metadata;
using GrainFs.Storage.UnderStorage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace GrainFs.Grains.Namespace;

/// <summary>
/// A directory of a mount, or one shard of a huge directory. The head (shard 0) owns listing: it reads
/// under-storage in pages (single-flight), keeps the entries in a compact <see cref="DirectoryTable"/>,
/// and writes them to the metadata store; a directory with more than <see cref="NamespaceOptions.ShardThreshold"/>
/// entries is split by name hash across shards 1..N, which load their part from the store. Data flows
/// head → store → shards, and callers route to shards themselves (the head answers a lookup in a sharded directory
/// with the shard count), so the head never calls a shard and no call cycle can form.
/// </summary>
internal sealed partial class DirectoryGrain(
    IMetadataStore store,
    UnderStorageRegistry registry,
    NamespaceStats stats,
    IOptions<NamespaceOptions> namespaceOptions,
    GrainFsClock time,
    ILogger<DirectoryGrain> logger) : Grain, IDirectoryGrain
{
    private static readonly KeyValuePair<string, object?> OpLookup = new("op", "lookup");
    private static readonly KeyValuePair<string, object?> OpList = new("op", "list");
    private readonly NamespaceOptions _options = namespaceOptions.Value;
    private DirectoryKey _key;
    private MountInfo? _mount;
    private DirectorySnapshot? _snapshot;
    private Task<SyncState>? _sync;

    // Entries the listing in progress has read so far (for the EBUSY answer's message).
    private int _listedSoFar;
    private DateTime _retryAfterUtc;
    private long _heldEntries;
    private long _heldBytes;
    private bool _counted;

    private bool IsHead => _key.Shard == 0;

    private string DisplayPath => _mount is null
        ? _key.ToString()
        : _key.Path.Length == 0 ? _mount.Path : _mount.Path + "/" + _key.Path;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        // A key whose path could leave the mount (a '..' component, NUL, …) fails the activation, so no call on it reaches
        // the metadata store or under-storage; the caller gets the ArgumentException naming the key.
        _key = DirectoryKey.Parse(this.GetPrimaryKeyString());
        stats.Activated();
        _counted = true;
        _mount = await GrainFactory.GetGrain<IMountTableGrain>(IMountTableGrain.Key).ResolveAsync(_key.MountId);
        if (_mount is not null)
        {
            Hold(await store.LoadDirectoryAsync(_key.ToString(), cancellationToken));
            LoadOverlay(await store.LoadOverlayAsync(_key.ToString(), cancellationToken));
        }
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        Hold(null);
        if (_counted)
        {
            stats.Deactivated();
        }

        return Task.CompletedTask;
    }

    private void Hold(DirectorySnapshot? snapshot)
    {
        _snapshot = snapshot;
        var entries = snapshot?.Table.Count ?? 0;
        var bytes = snapshot?.Table.HeapBytes ?? 0;
        stats.Hold(entries - _heldEntries, bytes - _heldBytes);
        _heldEntries = entries;
        _heldBytes = bytes;
    }

    public async ValueTask<LookupResult> LookupAsync(string name)
    {
        var shards = _snapshot?.ShardCount ?? 1;
        if (_mount is null)
        {
            return new LookupResult(FsStatus.Stale, null, shards, $"mount {_key.MountId} no longer exists");
        }

        var nameStatus = FsPath.CheckName(name, out var nameError);
        if (nameStatus != FsStatus.Ok)
        {
            return new LookupResult(nameStatus, null, shards, $"{DisplayPath}: {nameError}");
        }

        if (_mount.Options.SyncIntervalSeconds == 0)
        {
            return await LookupInUnderStorageAsync(name);
        }

        var state = await EnsureFreshAsync(answerBusy: true);
        if (state.Status != FsStatus.Ok)
        {
            Count(OpLookup, state.Status);
            return Unavailable(state);
        }

        var snapshot = _snapshot!;
        if (IsHead && snapshot.ShardCount > 1)
        {
            // The head never calls a shard: the caller learns the shard count and asks the shard itself.
            return new LookupResult(FsStatus.Stale, null, snapshot.ShardCount, $"{DisplayPath}: split into {snapshot.ShardCount} shards");
        }

        if (!IsHead && DirectoryKey.ShardOf(name, snapshot.ShardCount) != _key.Shard)
        {
            // The directory was re-split since the caller learnt its shard count: send it back to the head.
            return new LookupResult(FsStatus.Stale, null, snapshot.ShardCount, $"{DisplayPath}: shard layout changed");
        }

        var found = Find(name);
        Count(OpLookup, found is null ? FsStatus.NotFound : FsStatus.Ok);
        return found is null
            ? new LookupResult(FsStatus.NotFound, null, snapshot.ShardCount, null)
            : new LookupResult(FsStatus.Ok, found, snapshot.ShardCount, null);
    }

    private async ValueTask<LookupResult> LookupInUnderStorageAsync(string name)
    {
        try
        {
            var found = await Storage().StatAsync(FsPath.CombineRelative(_key.Path, name));
            Count(OpLookup, found is null ? FsStatus.NotFound : FsStatus.Ok);
            return found is null
                ? new LookupResult(FsStatus.NotFound, null, 1, null)
                : new LookupResult(FsStatus.Ok, ToEntry(found.Value with { Name = name }), 1, null);
        }
        catch (UnderStorageException e)
        {
            LogUnderStorageFailed(logger, DisplayPath, e.Message);
            Count(OpLookup, Errors.ToStatus(e.Error));
            return new LookupResult(Errors.ToStatus(e.Error), null, 1, $"{FsPath.Combine(DisplayPath, name)}: {e.Message}");
        }
    }

    public async ValueTask<ListPage> ListAsync(string? after, int maxEntries)
    {
        if (_mount is null)
        {
            return new ListPage(FsStatus.Stale, [], null, 1, $"mount {_key.MountId} no longer exists");
        }

        // With sync-interval 0 a listing re-reads under-storage once, at its first page.
        var state = IsHead && after is null && _mount.Options.SyncIntervalSeconds == 0
            ? await SyncOnceAsync(answerBusy: true)
            : await EnsureFreshAsync(answerBusy: true);
        if (state.Status != FsStatus.Ok)
        {
            Count(OpList, state.Status);
            return new ListPage(state.Status, [], null, state.ShardCount, state.Message);
        }

        var snapshot = _snapshot!;
        if (IsHead && snapshot.ShardCount > 1)
        {
            Count(OpList, FsStatus.Ok);
            return new ListPage(FsStatus.Ok, [], null, snapshot.ShardCount, null);
        }

        var count = Math.Clamp(maxEntries, 1, _options.MaxPageEntries);
        var (entries, more) = _overlay.Count == 0 ? PageOfTable(snapshot.Table, after, count) : MergedPage(snapshot.Table, after, count);
        Count(OpList, FsStatus.Ok);
        var next = more && entries.Length > 0 ? entries[^1].Name : null;
        return new ListPage(FsStatus.Ok, entries, next, snapshot.ShardCount, null);
    }

    public async ValueTask<SyncState> EnsureSyncedAsync(int maxAgeSeconds)
    {
        if (!IsHead)
        {
            return new SyncState(FsStatus.InvalidArgument, 0, 1, "only a directory head syncs");
        }

        if (_mount is null)
        {
            return new SyncState(FsStatus.Stale, 0, 1, $"mount {_key.MountId} no longer exists");
        }

        return await EnsureFreshAsync(maxAgeSeconds);
    }

    // Lookups and listings (the SDK asks again on EBUSY) pass answerBusy; everything else waits for the listing.
    private ValueTask<SyncState> EnsureFreshAsync(bool answerBusy = false) => EnsureFreshAsync(_mount!.Options.SyncIntervalSeconds, answerBusy);

    /// <summary>Makes the snapshot no older than <paramref name="maxAgeSeconds"/> (-1: any age; 0 is treated as any age here: per-access syncs happen at list start).</summary>
    private async ValueTask<SyncState> EnsureFreshAsync(int maxAgeSeconds, bool answerBusy = false)
    {
        var now = time.GetUtcNow().UtcDateTime;
        if (_snapshot is not null && !IsStale(_snapshot, maxAgeSeconds, now))
        {
            return Current();
        }

        if (!IsHead)
        {
            return await RefreshShardAsync(maxAgeSeconds);
        }

        if (_snapshot is not null && now < _retryAfterUtc)
        {
            // The last re-list failed; keep serving what we have until the retry delay passes.
            return Current();
        }

        return await SyncOnceAsync(answerBusy);
    }

    private static bool IsStale(DirectorySnapshot snapshot, int maxAgeSeconds, DateTime now) =>
        maxAgeSeconds > 0 && now - snapshot.SyncedUtc >= TimeSpan.FromSeconds(maxAgeSeconds);

    private SyncState Current()
    {
        var snapshot = _snapshot!;
        if (snapshot.State == DirectoryState.NotFound && IsCreated)
        {
            return new SyncState(FsStatus.Ok, snapshot.Generation, snapshot.ShardCount, null);
        }

        return snapshot.State switch
        {
            DirectoryState.NotFound => new SyncState(FsStatus.NotFound, snapshot.Generation, 1, $"{DisplayPath}: no such directory"),
            DirectoryState.NotADirectory => new SyncState(FsStatus.NotADirectory, snapshot.Generation, 1, $"{DisplayPath}: not a directory"),
            _ => new SyncState(FsStatus.Ok, snapshot.Generation, snapshot.ShardCount, null),
        };
    }

    private async ValueTask<SyncState> RefreshShardAsync(int maxAgeSeconds)
    {
        var head = GrainFactory.GetGrain<IDirectoryGrain>(_key.Head.ToString());
        var state = await head.EnsureSyncedAsync(maxAgeSeconds);
        if (state.Status != FsStatus.Ok)
        {
            return _snapshot is null ? state : Current();
        }

        if (_snapshot is null || _snapshot.Generation != state.Generation)
        {
            var loaded = await store.LoadDirectoryAsync(_key.ToString());
            if (loaded is null || loaded.Generation != state.Generation)
            {
                // A shard past the current split (the directory shrank), or a store that is not shared across silos.
                Hold(new DirectorySnapshot(DirectoryState.Listed, DirectoryTable.Empty, time.GetUtcNow().UtcDateTime, state.Generation, state.ShardCount));
                if (_key.Shard <= state.ShardCount)
                {
                    LogShardMissing(logger, DisplayPath, _key.Shard, state.Generation, store.Kind);
                    return new SyncState(FsStatus.IoError, state.Generation, state.ShardCount,
                        $"{DisplayPath}: shard {_key.Shard} of generation {state.Generation} is not in the {store.Kind} metadata store");
                }
            }
            else
            {
                Hold(loaded);
            }
        }

        return Current();
    }

    private async Task<SyncState> SyncOnceAsync(bool answerBusy = false)
    {
        // Single flight: concurrent requests (the grain interleaves only at awaits of this one task) share one listing.
        if (_sync is null || _sync.IsCompleted)
        {
            _listedSoFar = 0;
            _sync = SyncAsync();
        }

        // A listing that outlasts the wait goes on in this activation; the caller hears EBUSY and asks again, so no
        // grain call waits longer than its timeout however large the directory.
        var sync = _sync;
        if (answerBusy && !sync.IsCompleted && await Task.WhenAny(sync, Task.Delay(_options.SyncAnswerWait, time)) != sync)
        {
            return new SyncState(FsStatus.Busy, _snapshot?.Generation ?? 0, _snapshot?.ShardCount ?? 1,
                string.Create(CultureInfo.InvariantCulture, $"{DisplayPath}: still listing under-storage ({Volatile.Read(ref _listedSoFar):N0} entries so far)"));
        }

        return await sync;
    }

    private async Task<SyncState> SyncAsync()
    {
        var started = Stopwatch.GetTimestamp();
        var generation = (_snapshot?.Generation ?? 0) + 1;
        var entries = new List<EntryRecord>();
        DirectoryState state;
        try
        {
            await foreach (var page in Storage().ListAsync(_key.Path))
            {
                entries.AddRange(page);
                Volatile.Write(ref _listedSoFar, entries.Count);
            }

            state = DirectoryState.Listed;
        }
        catch (UnderStorageException e) when (e.Error is UnderStorageError.NotFound or UnderStorageError.NotADirectory)
        {
            state = e.Error == UnderStorageError.NotFound ? DirectoryState.NotFound : DirectoryState.NotADirectory;
            entries.Clear();
        }
        catch (UnderStorageException e)
        {
            GrainFsMetrics.DirectorySyncs.Add(1, new KeyValuePair<string, object?>("outcome", "error"));
            _retryAfterUtc = time.GetUtcNow().UtcDateTime + _options.SyncRetryDelay;
            if (_snapshot is not null)
            {
                LogSyncFailedServingCached(logger, DisplayPath, _snapshot.Table.Count, e.Message);
                return Current();
            }

            LogSyncFailed(logger, DisplayPath, e.Message);
            return new SyncState(Errors.ToStatus(e.Error), 0, 1, $"{DisplayPath}: cannot list {e.Message}");
        }

        try
        {
            return await SaveListingAsync(state, entries, generation, started);
        }
        catch (Exception e) when (e is System.Data.Common.DbException or TimeoutException or IOException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            // The metadata store failed (PostgreSQL down or failing): the listing is not kept, and readers get the
            // entries cached before, as when under-storage fails; the next access after the retry delay tries again.
            GrainFsMetrics.DirectorySyncs.Add(1, new KeyValuePair<string, object?>("outcome", "error"));
            _retryAfterUtc = time.GetUtcNow().UtcDateTime + _options.SyncRetryDelay;
            if (_snapshot is not null)
            {
                LogSaveFailedServingCached(logger, DisplayPath, _snapshot.Table.Count, e.Message);
                return Current();
            }

            LogSaveFailed(logger, DisplayPath, e.Message);
            return new SyncState(FsStatus.IoError, 0, 1, $"{DisplayPath}: the metadata store did not take the listing: {e.Message}");
        }
    }

    private async Task<SyncState> SaveListingAsync(DirectoryState state, List<EntryRecord> entries, long generation, long started)
    {
        var now = time.GetUtcNow().UtcDateTime;
        var shardCount = entries.Count > _options.ShardThreshold ? ShardCountFor(entries.Count) : 1;
        List<EntryRecord>[]? parts = null;
        if (shardCount > 1)
        {
            parts = new List<EntryRecord>[shardCount];
            for (var i = 0; i < shardCount; i++)
            {
                parts[i] = new List<EntryRecord>((entries.Count / shardCount) + 16);
            }

            foreach (var entry in entries)
            {
                parts[DirectoryKey.ShardOf(entry.Name, shardCount) - 1].Add(entry);
            }

            entries = [];
        }

        // The shards and the head in one save, all or none: a head never names shards of another generation.
        var listings = new List<KeyValuePair<string, DirectorySnapshot>>(shardCount + 1);
        for (var i = 0; parts is not null && i < shardCount; i++)
        {
            listings.Add(new((_key with { Shard = i + 1 }).ToString(), new DirectorySnapshot(DirectoryState.Listed, DirectoryTable.Build(parts[i]), now, generation, shardCount)));
            parts[i] = [];
        }

        var table = DirectoryTable.Build(entries, out var shadowed);
        if (shadowed > 0)
        {
            LogShadowed(logger, DisplayPath, shadowed);
        }

        var snapshot = new DirectorySnapshot(state, table, now, generation, shardCount);
        listings.Add(new(_key.ToString(), snapshot));
        await store.SaveDirectoriesAsync(_key.MountId, listings);
        Hold(snapshot);
        await ReconcileOverlayAsync(table);
        _retryAfterUtc = default;
        GrainFsMetrics.DirectorySyncs.Add(1, new KeyValuePair<string, object?>("outcome", "ok"));
        GrainFsMetrics.EntriesListed.Add(table.Count);
        LogSynced(logger, DisplayPath, state, table.Count, shardCount, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return Current();
    }

    private int ShardCountFor(int entries)
    {
        var needed = (entries + _options.TargetShardEntries - 1) / _options.TargetShardEntries;
        return (int)Math.Max(2, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)needed));
    }

    /// <summary>The answer when this directory cannot take the request: it is missing or not a directory (as its last listing
    /// saw it, which a change of its parent does not reach, so the caller asks the parent), or its listing failed.</summary>
    private LookupResult Unavailable(SyncState state) =>
        new(state.Status, null, state.ShardCount, state.Message, state.Status is FsStatus.NotFound or FsStatus.NotADirectory ? _key.Path : null);

    private IUnderStorage Storage() => registry.Get(_mount!);

    private static FsEntry ToEntry(in EntryRecord e) =>
        new(e.Name, (FsKind)e.Kind, e.Size, new DateTime(e.MtimeTicks, DateTimeKind.Utc), e.ETag, e.Mode);

    private static void Count(KeyValuePair<string, object?> op, FsStatus status) =>
        GrainFsMetrics.MetadataOps.Add(1, op, new KeyValuePair<string, object?>("status", status.ErrnoName()));

    [LoggerMessage(Level = LogLevel.Debug, Message = "Listed {Path}: {State}, {Count} entries in {Shards} shard(s), {Elapsed:F1} ms")]
    private static partial void LogSynced(ILogger logger, string path, DirectoryState state, int count, int shards, double elapsed);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cannot re-list {Path}, serving the {Count} cached entries: {Reason}")]
    private static partial void LogSyncFailedServingCached(ILogger logger, string path, int count, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cannot keep the new listing of {Path} in the metadata store, serving the {Count} cached entries: {Reason}")]
    private static partial void LogSaveFailedServingCached(ILogger logger, string path, int count, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cannot keep the listing of {Path} in the metadata store: {Reason}")]
    private static partial void LogSaveFailed(ILogger logger, string path, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cannot list {Path}: {Reason}")]
    private static partial void LogSyncFailed(ILogger logger, string path, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Under-storage failed for {Path}: {Reason}")]
    private static partial void LogUnderStorageFailed(ILogger logger, string path, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Path}: {Count} names exist both as a file and a directory; the directory is shown")]
    private static partial void LogShadowed(ILogger logger, string path, int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "{Path}: shard {Shard} of generation {Generation} is missing from the {Store} metadata store (a multi-silo cluster needs a shared store)")]
    private static partial void LogShardMissing(ILogger logger, string path, int shard, long generation, string store);
}
