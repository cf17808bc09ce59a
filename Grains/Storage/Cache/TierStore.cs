using GrainFs.DataPlane.Blocks;
using Microsoft.Extensions.Logging;

namespace GrainFs.Storage.Cache;

/// <summary>
/// A worker's tier store: block files in MEM/SSD/HDD folders, made of parts with one job each — the
/// <see cref="TierIndex"/> (what is held where, exact accounting, the one lock), the <see cref="FillCoordinator"/>
/// (single-flight fills, tracked and awaited on dispose), the <see cref="TierMaintenance"/> hosted service
/// (eviction between the watermarks, demotion, promotion, TTL), <see cref="TierRecovery"/> at start, and
/// <see cref="BlockFileWriter"/> for the files themselves. This facade adds free, pin and TTL over them. Orleans-free:
/// the worker grain, the data port and the tests drive it.
/// </summary>
public sealed partial class TierStore : IAsyncDisposable
{
    private readonly ILogger _logger;
    private readonly FillCoordinator _fills;
    private int _disposed;
    private readonly TimeSpan _faultPause;

    /// <summary>Creates a store; call <see cref="InitializeAsync"/> before use, and run <see cref="Maintenance"/> (a hosted service in a silo).</summary>
    public TierStore(CacheOptions options, ILogger logger, TimeProvider? time = null)
    {
        var problems = options.Validate().ToList();
        if (problems.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", problems), nameof(options));
        }

        _logger = logger;
        _faultPause = options.TierFaultPause;
        var clock = time ?? TimeProvider.System;
        var sketch = new FrequencySketch((int)Math.Min(int.MaxValue / 4, options.Tiers.Sum(t => t.Capacity) / (64 * 1024)));
        var permissions = TierPermissions.From(options);
        // Every tier's policy follows an announced read order while one is in force, and its own rule otherwise.
        Index = new TierIndex([.. options.Tiers.Select((spec, level) => new Tier(level, spec, new EpochOrderPolicy(EvictionPolicies.Create(options.Policy, spec.Capacity, sketch)), permissions))], options.Policy, clock);
        _fills = new FillCoordinator(Index, options, clock, logger);
        var writeKind = options.WriteTierKind;
        WriteTier = Index.Tiers.FirstOrDefault(t => t.Kind == writeKind) ?? Index.Tiers[0];
        Maintenance = new TierMaintenance(Index, options, clock, logger);
    }

    /// <summary>The index: lookups, accounting, reports.</summary>
    public TierIndex Index { get; }

    private readonly Lock _orderGate = new();
    private readonly Dictionary<string, List<BlockKey>> _orderParts = new(StringComparer.Ordinal);

    /// <summary>
    /// Takes a part of an announced read order (parts of one job arrive in order, from place <paramref name="start"/>);
    /// the last puts the whole order in force for <paramref name="expiry"/>. Parts of an order never finished are
    /// dropped when another job's parts arrive.
    /// </summary>
    public void AddOrderPart(string job, int start, BlockKey[] keys, bool last, TimeSpan expiry, bool told = false)
    {
        List<BlockKey> order;
        lock (_orderGate)
        {
            if (start == 0 || !_orderParts.TryGetValue(job, out order!))
            {
                if (_orderParts.Count >= TierIndex.MaxOrders)
                {
                    _orderParts.Clear(); // announcements whose last part never came
                }

                order = [];
                _orderParts[job] = order;
            }

            order.AddRange(keys);
            if (!last)
            {
                return;
            }

            _orderParts.Remove(job);
        }

        Index.AnnounceOrder(job, order, expiry, told);
    }

    /// <summary>Ends the order of <paramref name="job"/> if it is in force.</summary>
    public void ForgetOrder(string job) => Index.ForgetOrder(job);

    /// <summary>The background maintenance; a silo runs it as a hosted service.</summary>
    public TierMaintenance Maintenance { get; }

    /// <summary>The tier written blocks go to.</summary>
    public Tier WriteTier { get; }

    /// <summary>The tiers, fastest first.</summary>
    public IReadOnlyList<Tier> Tiers => Index.Tiers;

    /// <summary>Blocks held.</summary>
    public int Count => Index.Count;

    /// <summary>
    /// Creates the tier folders (or brings existing ones of the silo's user to their modes; another user's are refused),
    /// drops temporary files of an earlier run and indexes the blocks already on disk.
    /// </summary>
    public Task InitializeAsync(CancellationToken cancellationToken = default) => TierRecovery.RecoverAsync(Index, _logger, cancellationToken);

    /// <inheritdoc cref="TierIndex.TryGet"/>
    public bool TryGet(BlockKey key, out CachedBlock block) => Index.TryGet(key, out block);

    /// <inheritdoc cref="TierIndex.TryPeek"/>
    public bool TryPeek(BlockKey key, out CachedBlock block) => Index.TryPeek(key, out block);

    /// <inheritdoc cref="TierIndex.RecordAccess"/>
    public void RecordAccess(IEnumerable<BlockKey> keys) => Index.RecordAccess(keys);

    /// <inheritdoc cref="TierIndex.RecordServed"/>
    public void RecordServed(string source, long bytes) => Index.RecordServed(source, bytes);

    /// <inheritdoc cref="TierIndex.FindFill"/>
    public BlockFill? FindFill(BlockKey key) => Index.FindFill(key);

    // Pin and TTL of blocks dropped as corrupt or lost, given to their next fill: a refill keeps what was set on the block.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<BlockKey, (ushort Flags, long ExpiresTicks)> _kept = new();

    /// <inheritdoc cref="FillCoordinator.Start(BlockKey, int, Func{CancellationToken, ValueTask{Stream}}, ushort, long)"/>
    /// <remarks>A block dropped as corrupt or lost gets its pin and TTL back (unless this fill sets a TTL of its own).</remarks>
    public BlockFill? StartFill(BlockKey key, int length, Func<CancellationToken, ValueTask<Stream>> open, ushort flags = 0, long expiresTicks = 0)
    {
        if (!_kept.IsEmpty && _kept.TryRemove(key, out var kept))
        {
            flags |= kept.Flags;
            expiresTicks = expiresTicks != 0 ? expiresTicks : kept.ExpiresTicks;
        }

        return _fills.Start(key, length, open, flags, expiresTicks);
    }

    // Drops a block found corrupt or lost, its file too, keeping its pin and TTL for its next fill; true when freed here.
    private async Task<bool> DropKeepingSettingsAsync(BlockKey key)
    {
        if (Index.TryPeek(key, out var block) && (block.Header.Pinned || block.Header.ExpiresTicks != 0))
        {
            if (_kept.Count >= 100_000)
            {
                _kept.Clear(); // bounded: a flood of bad blocks costs their settings, not the silo's memory
            }

            _kept[key] = ((ushort)(block.Header.Flags & BlockFile.FlagPinned), block.Header.ExpiresTicks);
        }

        var (freed, _) = await TierFiles.FreeAsync(Index, [key], evenUnpersisted: true).ConfigureAwait(false);
        return freed > 0;
    }

    /// <summary>
    /// Starts storing a written block from <paramref name="open"/> on the write tier, synced to disk, never evicted until
    /// persisted; an earlier copy of the key (a block sent again) is replaced.
    /// </summary>
    public async Task<BlockFill?> StartWriteAsync(BlockKey key, int length, Func<CancellationToken, ValueTask<Stream>> open)
    {
        await TierFiles.FreeAsync(Index, [key], evenUnpersisted: true).ConfigureAwait(false);
        return _fills.Start(key, length, open, BlockFile.FlagUnpersisted, 0, new FillPlacement(WriteTier, Durable: true));
    }

    /// <summary>Removes blocks, unpersisted ones too (a written file deleted, replaced or aborted).</summary>
    public Task<(int Freed, long Bytes)> FreeWrittenAsync(IEnumerable<BlockKey> keys) => TierFiles.FreeAsync(Index, keys, evenUnpersisted: true);

    /// <summary>Removes blocks from every tier (their files deleted off the caller's thread); unpersisted blocks stay. Returns how many were held and their bytes.</summary>
    public Task<(int Freed, long Bytes)> FreeAsync(IEnumerable<BlockKey> keys) => TierFiles.FreeAsync(Index, keys, evenUnpersisted: false);

    /// <summary>
    /// Whether a held block's file is missing or shorter than its header says (removed or truncated behind the worker's
    /// back, by a cleaner of /dev/shm or a person); if so the block is dropped from the index (its file too) and counted
    /// as lost, so that the next read fills it again. False, at the cost of one stat, when the file is whole.
    /// </summary>
    public async Task<bool> DropIfLostAsync(CachedBlock block)
    {
        long length;
        try
        {
            length = new FileInfo(block.Path).Length;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            length = -1;
        }

        if (length >= block.Header.FileLength || !Index.TryPeek(block.Key, out var current) || !ReferenceEquals(current, block))
        {
            return false; // whole, or no longer this block (evicted, freed, refilled meanwhile)
        }

        if (await DropKeepingSettingsAsync(block.Key).ConfigureAwait(false))
        {
            Index.CountLost();
            LogLost(_logger, block.Key.ToString(), block.Path, length < 0 ? "missing" : $"{length} of {block.Header.FileLength} bytes");
        }

        return true;
    }

    /// <summary>
    /// A held block whose file the tier's disk failed to read (an I/O error, not a checksum): the block is dropped (its
    /// pin and TTL go to its next fill) and counted as lost, and its tier is taken out of service for
    /// <see cref="CacheOptions.TierFaultPause"/>, as a tier whose disk fails a fill is, so that the refill lands elsewhere.
    /// </summary>
    public async Task DropUnreadableAsync(CachedBlock block, IOException error)
    {
        if (Index.TryPeek(block.Key, out var current) && ReferenceEquals(current, block) && await DropKeepingSettingsAsync(block.Key).ConfigureAwait(false))
        {
            Index.CountLost();
        }

        Index.TakeOutOfService(block.Tier, error.Message, _faultPause);
        LogUnreadable(_logger, block.Key.ToString(), block.Path, error.Message, block.Tier.Name, _faultPause.TotalSeconds);
    }

    /// <summary>Drops a block that failed its checksum (its pin and TTL go to its next fill); counted as corrupt.</summary>
    public async Task DiscardAsync(BlockKey key)
    {
        if (await DropKeepingSettingsAsync(key).ConfigureAwait(false))
        {
            Index.CountCorrupt();
            LogCorrupt(_logger, key.ToString());
        }
    }

    /// <summary>
    /// Sets or clears the pin, the TTL and the unpersisted mark of held blocks (rewriting their headers, off the index
    /// lock); null leaves a setting as it is. Returns how many were held.
    /// </summary>
    public async Task<int> SetFlagsAsync(IEnumerable<BlockKey> keys, bool? pinned, long? expiresTicks, bool? unpersisted = null)
    {
        var changed = 0;
        foreach (var key in keys)
        {
            if (!Index.TryClaim(key, out var block))
            {
                continue;
            }

            var old = block.Header;
            var flags = With(With(old.Flags, BlockFile.FlagPinned, pinned), BlockFile.FlagUnpersisted, unpersisted);
            var header = old with { Flags = flags, ExpiresTicks = expiresTicks ?? old.ExpiresTicks };
            BlockHeader? written = null;
            try
            {
                await BlockFileWriter.RewriteHeaderAsync(block.Path, header).ConfigureAwait(false);
                written = header;
                changed++;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                LogFlagsFailed(_logger, key.ToString(), e.Message);
            }

            var deferred = Index.Unclaim(block, written);
            if (deferred.Count > 0)
            {
                await Task.Run(() => TierFiles.Delete(Index, deferred)).ConfigureAwait(false);
            }
        }

        return changed;
    }

    private static ushort With(ushort flags, ushort flag, bool? on) => on switch
    {
        true => (ushort)(flags | flag),
        false => (ushort)(flags & ~flag),
        null => flags,
    };

    /// <inheritdoc cref="TierIndex.GetReport"/>
    public TierStoreReport GetReport() => Index.GetReport();

    /// <inheritdoc cref="TierIndex.Snapshot"/>
    public IReadOnlyList<CachedBlock> Snapshot() => Index.Snapshot();

    /// <summary>Stops maintenance and waits for every fill to end.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        await Maintenance.StopAsync(CancellationToken.None).ConfigureAwait(false);
        await _fills.DisposeAsync().ConfigureAwait(false);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Block {Key}: its file {Path} was removed or cut short behind the worker ({State}); dropped, the next read refills it")]
    private static partial void LogLost(ILogger logger, string key, string path, string state);

    [LoggerMessage(Level = LogLevel.Error, Message = "Block {Key}: the disk failed to read {Path} ({Reason}); dropped, and tier {Tier} is out of service for {Seconds} s (the next read refills the block elsewhere)")]
    private static partial void LogUnreadable(ILogger logger, string key, string path, string reason, string tier, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Block {Key} failed its checksum and was discarded; the next read refills it")]
    private static partial void LogCorrupt(ILogger logger, string key);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cannot rewrite the header of block {Key}: {Reason}")]
    private static partial void LogFlagsFailed(ILogger logger, string key, string reason);
}
