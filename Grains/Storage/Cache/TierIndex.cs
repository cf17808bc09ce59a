using GrainFs.DataPlane.Blocks;

namespace GrainFs.Storage.Cache;

/// <summary>One tier of a store, with its exact accounting (kept by the <see cref="TierIndex"/>).</summary>
public sealed class Tier
{
    internal Tier(int level, TierSpec spec, IEvictionPolicy policy, TierPermissions permissions)
    {
        Permissions = permissions;
        Level = level;
        Kind = spec.Kind;
        Root = Path.GetFullPath(spec.Path);
        Capacity = spec.Capacity;
        Policy = policy;
    }

    /// <summary>0 for the fastest tier.</summary>
    public int Level { get; }

    /// <summary>MEM, SSD or HDD.</summary>
    public TierKind Kind { get; }

    /// <summary>The kind's name, as reports and metrics show it.</summary>
    public string Name => Kind.Label();

    /// <summary>The tier folder.</summary>
    public string Root { get; }

    /// <summary>Who may read its files directly: the modes (and group) of its folders and block files.</summary>
    public TierPermissions Permissions { get; }

    /// <summary>Bytes the tier may hold.</summary>
    public long Capacity { get; }

    /// <summary>Bytes held or reserved: never more than <see cref="Capacity"/>.</summary>
    public long Used { get; internal set; }

    /// <summary>Blocks held.</summary>
    public int Blocks { get; internal set; }

    /// <summary>Reads served from this tier.</summary>
    public long Hits { get; internal set; }

    /// <summary>Until when (UTC ticks) the tier takes no fills after its disk failed one (full, I/O error); 0 in service.</summary>
    public long OutOfServiceUntil { get; internal set; }

    /// <summary>Why the tier was last taken out of service.</summary>
    public string? OutOfServiceReason { get; internal set; }

    /// <summary>Times the tier was taken out of service.</summary>
    public long Faults { get; internal set; }

    internal IEvictionPolicy Policy { get; }

    /// <summary>The path of a block's file in this tier.</summary>
    public string BlockPath(BlockKey key) => Path.Combine(Root, BlockFile.RelativePath(key));

    /// <summary>The folder of files being written (removed at start: whatever is there was interrupted).</summary>
    public string TempRoot => Path.Combine(Root, "tmp");

    internal string NewTempPath(BlockKey key) => Path.Combine(TempRoot, $"{key}.{Guid.NewGuid():N}");
}

/// <summary>A block held by the store.</summary>
public sealed class CachedBlock
{
    internal CachedBlock(BlockKey key, Tier tier, BlockHeader header)
    {
        Key = key;
        Tier = tier;
        Header = header;
    }

    /// <summary>The block.</summary>
    public BlockKey Key { get; }

    /// <summary>Where it is.</summary>
    public Tier Tier { get; internal set; }

    /// <summary>Its header (length, checksums, flags).</summary>
    public BlockHeader Header { get; internal set; }

    /// <summary>Its file.</summary>
    public string Path => Tier.BlockPath(Key);

    /// <summary>A mover or a header rewrite owns the file: a free waits for it to finish (see <see cref="DeferredFree"/>).</summary>
    internal bool Busy { get; set; }

    /// <summary>A free that came while the block was busy: the owner deletes the files and ends this removal.</summary>
    internal TierIndex.Removal? DeferredFree { get; set; }

    /// <summary>Filled ahead of a reader and not asked for since (a hit when it is, wasted when evicted first).</summary>
    internal bool Prefetched { get; set; }
}

/// <summary>How a move of a block to another tier ended.</summary>
public enum MoveOutcome
{
    /// <summary>The block is in its new tier.</summary>
    Moved,

    /// <summary>The copy failed: the block stays where it was, still claimed by the mover.</summary>
    Failed,

    /// <summary>The block was freed while it moved: every copy is gone.</summary>
    Freed,
}

/// <summary>What a store holds, for reports.</summary>
public sealed record TierReport(string Name, string Path, long Capacity, long Used, int Blocks, long Hits)
{
    /// <summary>Why the tier takes no fills now (its disk failed one), or null when it is in service.</summary>
    public string? OutOfService { get; init; }

    /// <summary>Times the tier was taken out of service.</summary>
    public long Faults { get; init; }
}

/// <summary>No tier can take a fill: each one's disk failed a fill a moment ago.</summary>
public sealed class TierFaultException(string message) : IOException(message);

/// <summary>A store's report.</summary>
public sealed record TierStoreReport(IReadOnlyList<TierReport> Tiers, string Policy, long Requests, long Misses, long Fills, long FillBytes, long Evictions, long Demotions, long Promotions, long Corrupt, IReadOnlyDictionary<string, long> BytesServedBySource)
{
    /// <summary>Blocks whose files were removed or cut short behind the store's back (dropped, refilled on the next read).</summary>
    public long Lost { get; init; }

    /// <summary>Fills ahead of readers (announced read orders): how many, how they ended, how many run now.</summary>
    public PrefetchCounts Prefetch { get; init; } = new(0, 0, 0, 0, 0);
}

/// <summary>
/// A worker's prefetches: fills started by announced read orders (counted in the fills too) and their bytes; hits, the
/// prefetched blocks a reader asked for afterwards; wasted, those evicted before anyone did; running, the prefetch fills
/// in progress (the worker's prefetch queue).
/// </summary>
public sealed record PrefetchCounts(long Fills, long Bytes, long Hits, long Wasted, int Running);

/// <summary>
/// The index of a worker's tier store: which blocks are held where, which are being filled, and the exact byte
/// accounting of every tier (a fill reserves its bytes before it writes, so no tier ever holds more than its
/// capacity). One lock guards it, and no file-system call is made under it: a file is renamed or deleted outside,
/// and a deletion in flight is registered as a <see cref="Removal"/> that a fill of the same key waits for before it
/// renames its file into place, so a late delete never hits a new copy.
/// </summary>
public sealed class TierIndex
{
    private readonly Lock _lock = new();
    private readonly Dictionary<BlockKey, CachedBlock> _blocks = [];
    private readonly Dictionary<BlockKey, BlockFill> _fills = [];
    private readonly Dictionary<BlockKey, (int Count, TaskCompletionSource Done)> _removals = [];
    private readonly HashSet<BlockKey> _promotions = [];
    private readonly Dictionary<string, long> _servedBySource = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _maintenanceWanted = new(0);
    private TaskCompletionSource _spaceFreed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _pressure;
    private long _requests;
    private long _misses;
    private long _fillCount;
    private long _fillBytes;
    private long _evictions;
    private long _demotions;
    private long _promotionCount;
    private long _corrupt;
    private long _lost;
    private long _prefetchFills;
    private long _prefetchBytes;
    private long _prefetchHits;
    private long _prefetchWasted;

    private readonly TimeProvider _time;
    private readonly Dictionary<string, long> _orderExpiry = new(StringComparer.Ordinal);

    /// <summary>Creates the index over tiers, fastest first.</summary>
    public TierIndex(IReadOnlyList<Tier> tiers, string policy, TimeProvider? time = null)
    {
        Tiers = tiers;
        Policy = policy;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>The jobs whose read orders are in force (lapsed ones dropped first).</summary>
    public IReadOnlyList<string> OrderJobs
    {
        get
        {
            lock (_lock)
            {
                ExpireOrders();
                return [.. _orderExpiry.Keys];
            }
        }
    }

    /// <summary>Most read orders in force at once; a new job's order beyond it ends the one closest to its expiry.</summary>
    public const int MaxOrders = 16;

    /// <summary>
    /// Puts <paramref name="job"/>'s read order in force on every tier (replacing that job's last one; other jobs' orders
    /// stay) until <paramref name="expiry"/> passes.
    /// </summary>
    public void AnnounceOrder(string job, IReadOnlyList<BlockKey> order, TimeSpan expiry, bool told = false)
    {
        // Built once, off the lock every read takes, and shared by the tiers' policies.
        var positions = EpochOrderPolicy.Positions(order);
        lock (_lock)
        {
            ExpireOrders();
            if (!_orderExpiry.ContainsKey(job) && _orderExpiry.Count >= MaxOrders)
            {
                EndOrder(_orderExpiry.MinBy(o => o.Value).Key);
            }

            foreach (var tier in Tiers)
            {
                (tier.Policy as EpochOrderPolicy)?.Announce(job, positions, told);
            }

            _orderExpiry[job] = _time.GetUtcNow().UtcTicks + expiry.Ticks;
        }
    }

    /// <summary>The reader of <paramref name="job"/>'s order has read up to <paramref name="position"/> (see <see cref="EpochOrderPolicy.Advance"/>).</summary>
    public void AdvanceOrder(string job, int position)
    {
        lock (_lock)
        {
            foreach (var tier in Tiers)
            {
                (tier.Policy as EpochOrderPolicy)?.Advance(job, position);
            }
        }
    }

    /// <summary>Ends the order of <paramref name="job"/> if it is in force.</summary>
    public void ForgetOrder(string job)
    {
        lock (_lock)
        {
            EndOrder(job);
        }
    }

    // Under the lock.
    private void ExpireOrders()
    {
        if (_orderExpiry.Count == 0)
        {
            return;
        }

        var now = _time.GetUtcNow().UtcTicks;
        foreach (var (job, expires) in _orderExpiry)
        {
            if (now >= expires)
            {
                EndOrder(job);
            }
        }
    }

    private void EndOrder(string job)
    {
        if (!_orderExpiry.Remove(job))
        {
            return;
        }

        foreach (var tier in Tiers)
        {
            (tier.Policy as EpochOrderPolicy)?.Forget(job);
        }
    }

    /// <summary>The tiers, fastest first.</summary>
    public IReadOnlyList<Tier> Tiers { get; }

    /// <summary>The eviction policy's name.</summary>
    public string Policy { get; }

    /// <summary>Released when maintenance should run now (a tier passed its high watermark, a fill waits for room, a promotion is due).</summary>
    public SemaphoreSlim MaintenanceWanted => _maintenanceWanted;

    /// <summary>Blocks held.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _blocks.Count;
            }
        }
    }

    /// <summary>A deletion of a block's file in flight; fills of the key wait for it (<see cref="WaitForRemovalsAsync"/>).</summary>
    public sealed class Removal(BlockKey key)
    {
        /// <summary>The block whose file is being deleted.</summary>
        public BlockKey Key { get; } = key;
    }

    // ------------------------------------------------------------------ lookups

    /// <summary>
    /// The block when held, counting the request as a hit (and scheduling a promotion when it sits below the top
    /// tier); counts a miss otherwise. The file may still vanish before it is opened: treat that as a miss.
    /// </summary>
    public bool TryGet(BlockKey key, out CachedBlock block)
    {
        var promote = false;
        lock (_lock)
        {
            _requests++;
            if (!_blocks.TryGetValue(key, out block!))
            {
                _misses++;
                foreach (var tier in Tiers)
                {
                    tier.Policy.OnRequest(key);
                }

                return false;
            }

            block.Tier.Policy.OnRequest(key);
            block.Tier.Policy.OnAccess(key);
            block.Tier.Hits++;
            if (block.Prefetched)
            {
                block.Prefetched = false;
                _prefetchHits++;
            }

            promote = block.Tier.Level > 0 && !block.Busy && _promotions.Add(key);
        }

        if (promote)
        {
            _maintenanceWanted.Release();
        }

        return true;
    }

    /// <summary>The block when held, without counting anything.</summary>
    public bool TryPeek(BlockKey key, out CachedBlock block)
    {
        lock (_lock)
        {
            return _blocks.TryGetValue(key, out block!);
        }
    }

    /// <summary>Counts reads served elsewhere (short-circuit clients report theirs in batches).</summary>
    public void RecordAccess(IEnumerable<BlockKey> keys)
    {
        foreach (var key in keys)
        {
            TryGet(key, out _);
        }
    }

    /// <summary>Counts bytes served from a source (a tier name, or "under-storage" for reads of a filling block).</summary>
    public void RecordServed(string source, long bytes)
    {
        lock (_lock)
        {
            _servedBySource[source] = _servedBySource.GetValueOrDefault(source) + bytes;
        }
    }

    /// <summary>The fill in progress for a block, if any.</summary>
    public BlockFill? FindFill(BlockKey key)
    {
        lock (_lock)
        {
            return _fills.GetValueOrDefault(key);
        }
    }

    /// <summary>
    /// Marks the fill of <paramref name="key"/>, just started by an announced read order, as a prefetch (or the block,
    /// when that fill already completed): counted as a prefetch fill, then as a hit or as wasted.
    /// </summary>
    public void NotePrefetch(BlockKey key)
    {
        lock (_lock)
        {
            if (_fills.TryGetValue(key, out var fill))
            {
                if (!fill.Prefetch)
                {
                    fill.Prefetch = true;
                    _prefetchFills++;
                    _prefetchBytes += fill.Length;
                }
            }
            else if (_blocks.TryGetValue(key, out var block) && !block.Prefetched)
            {
                block.Prefetched = true;
                _prefetchFills++;
                _prefetchBytes += block.Header.DataLength;
            }
        }
    }

    /// <summary>Every held block (for tests and administration).</summary>
    public IReadOnlyList<CachedBlock> Snapshot()
    {
        lock (_lock)
        {
            return [.. _blocks.Values];
        }
    }

    // ------------------------------------------------------------------ fills

    /// <summary>
    /// Registers a fill of a block, or finds the one running. <paramref name="started"/> is true when the caller must run
    /// the new fill; null (and false) when the block is already held.
    /// </summary>
    public BlockFill? BeginFill(BlockKey key, int length, out bool started)
    {
        started = false;
        lock (_lock)
        {
            if (_blocks.ContainsKey(key))
            {
                return null;
            }

            if (_fills.TryGetValue(key, out var running))
            {
                return running;
            }

            var fill = new BlockFill(key, length);
            _fills[key] = fill;
            _fillCount++;
            started = true;
            return fill;
        }
    }

    /// <summary>
    /// Reserves <paramref name="bytes"/> in the fastest tier with room; null when none has room now (the caller waits on
    /// <paramref name="freed"/>, and maintenance is asked to make room). Throws when no tier could ever hold the bytes.
    /// </summary>
    public Tier? TryReserve(long bytes, double highWatermark, out Task freed, Tier? only = null)
    {
        var wantMaintenance = false;
        try
        {
            lock (_lock)
            {
                freed = _spaceFreed.Task;
                var now = _time.GetUtcNow().UtcTicks;
                foreach (var tier in Tiers)
                {
                    if (only is not null && tier != only)
                    {
                        continue;
                    }

                    if (tier.OutOfServiceUntil > now && only is null)
                    {
                        continue; // its disk failed a fill a moment ago: the others take the fills until it is tried again
                    }

                    if (tier.Capacity >= bytes && tier.Used + bytes <= tier.Capacity)
                    {
                        tier.Used += bytes;
                        wantMaintenance = tier.Used > tier.Capacity * highWatermark;
                        return tier;
                    }
                }

                if (only is not null ? only.Capacity < bytes : Tiers.All(t => t.Capacity < bytes))
                {
                    throw new IOException($"a block of {GrainFs.DataPlane.ByteSize.Format(bytes)} is larger than every tier");
                }

                if (only is null && Tiers.All(t => t.OutOfServiceUntil > now))
                {
                    throw new TierFaultException("every tier is out of service: " + string.Join("; ", Tiers.Select(t => $"{t.Name} ({t.Root}): {t.OutOfServiceReason}")));
                }

                _pressure = Math.Max(_pressure, bytes);
                wantMaintenance = true;
                return null;
            }
        }
        finally
        {
            if (wantMaintenance)
            {
                _maintenanceWanted.Release();
            }
        }
    }

    /// <summary>
    /// Takes a tier out of service for <paramref name="period"/> after its disk failed a fill (full although the
    /// accounting had room, or an I/O error): fills go to the other tiers meanwhile, then it is tried again.
    /// </summary>
    public void TakeOutOfService(Tier tier, string reason, TimeSpan period)
    {
        lock (_lock)
        {
            tier.OutOfServiceUntil = _time.GetUtcNow().UtcTicks + period.Ticks;
            tier.OutOfServiceReason = reason;
            tier.Faults++;
        }
    }

    /// <summary>Gives back a reservation that was not used.</summary>
    public void Release(Tier tier, long bytes)
    {
        lock (_lock)
        {
            tier.Used -= bytes;
        }

        SignalSpaceFreed();
    }

    /// <summary>Waits until no deletion of <paramref name="key"/>'s file is in flight (before a file of the key is renamed into place).</summary>
    public async ValueTask WaitForRemovalsAsync(BlockKey key, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task pending;
            lock (_lock)
            {
                if (!_removals.TryGetValue(key, out var removal))
                {
                    return;
                }

                pending = removal.Done.Task;
            }

            await pending.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>A filled block is in place (its file renamed to its final path): it is held from now on, in the space reserved for it.</summary>
    public void CompleteFill(BlockFill fill, Tier tier, BlockHeader header, long reserved)
    {
        lock (_lock)
        {
            tier.Used -= reserved;
            Add(new CachedBlock(fill.Key, tier, header) { Prefetched = fill.Prefetch });
            _fills.Remove(fill.Key);
            _fillBytes += fill.Length;
        }
    }

    /// <summary>A fill failed: its reservation and registration go.</summary>
    public void AbortFill(BlockFill fill, Tier? tier, long reserved)
    {
        lock (_lock)
        {
            if (tier is not null)
            {
                tier.Used -= reserved;
            }

            _fills.Remove(fill.Key);
        }

        SignalSpaceFreed();
    }

    /// <summary>Indexes a block found on disk at start; false when the key is already held or the tier has no room (then the file is not wanted).</summary>
    public bool TryRecover(Tier tier, BlockHeader header)
    {
        lock (_lock)
        {
            if (_blocks.ContainsKey(header.Key) || tier.Used + header.FileLength > tier.Capacity)
            {
                return false;
            }

            Add(new CachedBlock(header.Key, tier, header));
            return true;
        }
    }

    // ------------------------------------------------------------------ free

    /// <summary>
    /// Takes blocks out of the index for freeing. Returns the files to delete, each with the removal to end once it is
    /// gone; a busy block's free is left to its owner. Unpersisted blocks stay unless <paramref name="evenUnpersisted"/>.
    /// </summary>
    public List<(string Path, Removal Removal)> DetachForFree(IEnumerable<BlockKey> keys, bool evenUnpersisted, out int freed, out long bytes)
    {
        var deletions = new List<(string, Removal)>();
        freed = 0;
        bytes = 0;
        lock (_lock)
        {
            foreach (var key in keys)
            {
                if (!_blocks.TryGetValue(key, out var block) || (block.Header.Unpersisted && !evenUnpersisted))
                {
                    continue;
                }

                RemoveLocked(block);
                var removal = BeginRemovalLocked(key);
                if (block.Busy)
                {
                    block.DeferredFree = removal;
                }
                else
                {
                    deletions.Add((block.Path, removal));
                }

                freed++;
                bytes += block.Header.FileLength;
            }
        }

        return deletions;
    }

    /// <summary>A removal's file is gone: fills of the key may rename theirs into place.</summary>
    public void EndRemoval(Removal removal)
    {
        TaskCompletionSource? done = null;
        lock (_lock)
        {
            if (_removals.TryGetValue(removal.Key, out var entry))
            {
                if (entry.Count <= 1)
                {
                    _removals.Remove(removal.Key);
                    done = entry.Done;
                }
                else
                {
                    _removals[removal.Key] = (entry.Count - 1, entry.Done);
                }
            }
        }

        done?.TrySetResult();
        SignalSpaceFreed();
    }

    /// <summary>Counts a block discarded after a failed checksum.</summary>
    public void CountCorrupt() => Interlocked.Increment(ref _corrupt);

    /// <summary>Counts a block whose file was removed or cut short behind the store's back.</summary>
    public void CountLost() => Interlocked.Increment(ref _lost);

    // ------------------------------------------------------------------ busy blocks: movers and header rewrites

    /// <summary>Takes ownership of a held block's file (false when it is not held or already owned).</summary>
    public bool TryClaim(BlockKey key, out CachedBlock block)
    {
        lock (_lock)
        {
            if (!_blocks.TryGetValue(key, out block!) || block.Busy)
            {
                return false;
            }

            block.Busy = true;
            return true;
        }
    }

    /// <summary>
    /// Gives up ownership of a block after a header rewrite (the new header, or null when the rewrite failed). Returns
    /// the files to delete when a free came meanwhile.
    /// </summary>
    public List<(string Path, Removal Removal)> Unclaim(CachedBlock block, BlockHeader? header)
    {
        lock (_lock)
        {
            block.Busy = false;
            if (header is not null)
            {
                block.Header = header;
            }

            return block.DeferredFree is { } free ? [(block.Path, free)] : [];
        }
    }

    /// <summary>
    /// The next block to evict from <paramref name="tier"/> (claimed), or null when the tier is within its watermarks or
    /// nothing can be evicted. Pinned and unpersisted blocks are never chosen.
    /// </summary>
    public CachedBlock? NextVictim(Tier tier, double highWatermark, double lowWatermark)
    {
        lock (_lock)
        {
            var target = (long)(tier.Capacity * lowWatermark);
            var overHigh = tier.Used > tier.Capacity * highWatermark;
            var pressed = _pressure > 0 && tier.Used + _pressure > tier.Capacity && tier.Capacity >= _pressure;
            if (!overHigh && !pressed)
            {
                return null;
            }

            if (pressed && !overHigh)
            {
                target = Math.Min(target, tier.Capacity - _pressure);
            }

            if (tier.Used <= target && !pressed)
            {
                return null;
            }

            ExpireOrders();
            if (!tier.Policy.TryNextVictim(k => _blocks.TryGetValue(k, out var b) && !b.Busy && !b.Header.Kept && b.Tier == tier, out var key))
            {
                return null;
            }

            var victim = _blocks[key];
            victim.Busy = true;
            if (tier.Used - victim.Header.FileLength <= target)
            {
                _pressure = 0;
            }

            return victim;
        }
    }

    /// <summary>Reserves room for a claimed block in the first of <paramref name="candidates"/> below <paramref name="fill"/> of its capacity.</summary>
    public Tier? ReserveForMove(CachedBlock block, IEnumerable<Tier> candidates, double fill)
    {
        lock (_lock)
        {
            foreach (var candidate in candidates)
            {
                if (candidate.Used + block.Header.FileLength <= candidate.Capacity * fill)
                {
                    candidate.Used += block.Header.FileLength;
                    return candidate;
                }
            }

            return null;
        }
    }

    /// <summary>
    /// A claimed block's copy is in place at <paramref name="copyPath"/> in <paramref name="to"/> (or the copy failed:
    /// <paramref name="copied"/> false), and the reservation in <paramref name="to"/> is given back. Moved: the entry is
    /// in <paramref name="to"/> and the old file is to be deleted. Freed (a free came meanwhile): every copy is to be
    /// deleted. Failed: the block stays where it was and stays claimed, for the caller to drop or unclaim.
    /// </summary>
    public (MoveOutcome Outcome, List<(string Path, Removal Removal)> Deletions) CompleteMove(CachedBlock block, Tier to, bool copied, string copyPath, bool promotion)
    {
        lock (_lock)
        {
            to.Used -= block.Header.FileLength;
            var from = block.Tier;
            if (block.DeferredFree is { } free)
            {
                // The entry is gone already; every copy goes, and then the free ends.
                block.Busy = false;
                List<(string, Removal)> all = copied ? [(copyPath, BeginRemovalLocked(block.Key)), (from.BlockPath(block.Key), free)] : [(from.BlockPath(block.Key), free)];
                return (MoveOutcome.Freed, all);
            }

            if (!copied)
            {
                return (MoveOutcome.Failed, []);
            }

            block.Busy = false;
            RemoveLocked(block);
            block.Tier = to;
            Add(block);
            if (promotion)
            {
                _promotionCount++;
            }
            else
            {
                _demotions++;
            }

            return (MoveOutcome.Moved, [(from.BlockPath(block.Key), BeginRemovalLocked(block.Key))]);
        }
    }

    /// <summary>Drops a claimed victim from the last tier it can be in; returns its file to delete (or the deferred free's).</summary>
    public List<(string Path, Removal Removal)> Drop(CachedBlock victim)
    {
        lock (_lock)
        {
            victim.Busy = false;
            if (victim.DeferredFree is { } free)
            {
                return [(victim.Path, free)];
            }

            if (!ReferenceEquals(_blocks.GetValueOrDefault(victim.Key), victim))
            {
                return [];
            }

            RemoveLocked(victim);
            _evictions++;
            if (victim.Prefetched)
            {
                _prefetchWasted++;
            }

            return [(victim.Path, BeginRemovalLocked(victim.Key))];
        }
    }

    /// <summary>Keys whose TTL ended (never pinned blocks, which outlive their TTL until unpinned, nor unpersisted ones).</summary>
    public List<BlockKey> Expired(long nowTicks)
    {
        lock (_lock)
        {
            var expired = new List<BlockKey>();
            foreach (var block in _blocks.Values)
            {
                if (block.Header.ExpiresTicks != 0 && block.Header.ExpiresTicks <= nowTicks && !block.Busy && !block.Header.Kept)
                {
                    expired.Add(block.Key);
                }
            }

            return expired;
        }
    }

    /// <summary>The blocks hit in a lower tier since the last call, claimed for promotion.</summary>
    public List<CachedBlock> TakePromotions()
    {
        lock (_lock)
        {
            var claimed = new List<CachedBlock>();
            foreach (var key in _promotions)
            {
                if (_blocks.TryGetValue(key, out var block) && !block.Busy && block.Tier.Level > 0)
                {
                    block.Busy = true;
                    claimed.Add(block);
                }
            }

            _promotions.Clear();
            return claimed;
        }
    }

    /// <summary>Gives up ownership of a claimed block that was not moved; returns the files of a free that came meanwhile.</summary>
    public List<(string Path, Removal Removal)> Unclaim(CachedBlock block) => Unclaim(block, header: null);

    /// <summary>Wakes fills waiting for room.</summary>
    public void SignalSpaceFreed()
    {
        TaskCompletionSource old;
        lock (_lock)
        {
            old = _spaceFreed;
            _spaceFreed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        old.TrySetResult();
    }

    // ------------------------------------------------------------------ reports

    /// <summary>What the store holds and has done.</summary>
    public TierStoreReport GetReport()
    {
        lock (_lock)
        {
            return new TierStoreReport(
                [.. Tiers.Select(t => new TierReport(t.Name, t.Root, t.Capacity, t.Used, t.Blocks, t.Hits)
                {
                    OutOfService = t.OutOfServiceUntil > _time.GetUtcNow().UtcTicks ? t.OutOfServiceReason : null,
                    Faults = t.Faults,
                })],
                Policy,
                _requests,
                _misses,
                _fillCount,
                _fillBytes,
                _evictions,
                _demotions,
                _promotionCount,
                Interlocked.Read(ref _corrupt),
                new Dictionary<string, long>(_servedBySource))
            {
                Lost = Interlocked.Read(ref _lost),
                Prefetch = new PrefetchCounts(_prefetchFills, _prefetchBytes, _prefetchHits, _prefetchWasted, _fills.Values.Count(f => f.Prefetch)),
            };
        }
    }

    private void Add(CachedBlock block)
    {
        _blocks[block.Key] = block;
        block.Tier.Used += block.Header.FileLength;
        block.Tier.Blocks++;
        block.Tier.Policy.OnAdded(block.Key, block.Header.FileLength);
    }

    private void RemoveLocked(CachedBlock block)
    {
        _blocks.Remove(block.Key);
        block.Tier.Used -= block.Header.FileLength;
        block.Tier.Blocks--;
        block.Tier.Policy.OnRemoved(block.Key);
    }

    private Removal BeginRemovalLocked(BlockKey key)
    {
        _removals[key] = _removals.TryGetValue(key, out var entry)
            ? (entry.Count + 1, entry.Done)
            : (1, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        return new Removal(key);
    }
}
