using System.Buffers;
using System.Diagnostics;
using System.IO.Hashing;
using GrainFs.DataPlane;
using GrainFs.DataPlane.Blocks;
using Microsoft.Extensions.Logging;

namespace GrainFs.Storage.Cache;

/// <summary>One tier of a store, with its exact accounting.</summary>
public sealed class Tier
{
    internal Tier(int level, TierSpec spec, IEvictionPolicy policy)
    {
        Level = level;
        Name = spec.Name;
        Root = Path.GetFullPath(spec.Path);
        Capacity = spec.Capacity;
        Policy = policy;
    }

    /// <summary>0 for the fastest tier.</summary>
    public int Level { get; }

    /// <summary>MEM, SSD or HDD.</summary>
    public string Name { get; }

    /// <summary>The tier folder.</summary>
    public string Root { get; }

    /// <summary>Bytes the tier may hold.</summary>
    public long Capacity { get; }

    /// <summary>Bytes held or reserved: never more than <see cref="Capacity"/>.</summary>
    public long Used { get; internal set; }

    /// <summary>Blocks held.</summary>
    public int Blocks { get; internal set; }

    /// <summary>Reads served from this tier.</summary>
    public long Hits { get; internal set; }

    internal IEvictionPolicy Policy { get; }

    /// <summary>The path of a block's file in this tier.</summary>
    public string BlockPath(BlockKey key) => Path.Combine(Root, BlockFile.RelativePath(key));

    internal string NewTempPath(BlockKey key) => Path.Combine(Root, "tmp", $"{key}.{Guid.NewGuid():N}");
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

    internal bool Moving { get; set; }
}

/// <summary>What a store holds, for reports.</summary>
public sealed record TierReport(string Name, string Path, long Capacity, long Used, int Blocks, long Hits);

/// <summary>A store's report.</summary>
public sealed record TierStoreReport(IReadOnlyList<TierReport> Tiers, string Policy, long Requests, long Misses, long Fills, long FillBytes, long Evictions, long Demotions, long Promotions, long Corrupt, IReadOnlyDictionary<string, long> BytesServedBySource);

/// <summary>
/// A worker's tier store: block files in MEM/SSD/HDD folders with exact accounting (a fill reserves its bytes
/// before it writes, so no tier ever holds more than its capacity). Blocks are written to a temporary name,
/// checksummed per 64 KiB chunk, and renamed. Eviction runs in the background between the high and low
/// watermarks, never inside a read: the victim is demoted to the next tier when there is one, and dropped from
/// the last. A hit in a lower tier is promoted. Pinned blocks are never evicted; blocks with a TTL are freed when
/// it ends. Orleans-free: the worker grain, the data port and the tests drive it.
/// </summary>
public sealed partial class TierStore : IAsyncDisposable
{
    private const int CopyBufferSize = 1 << 20;
    private readonly CacheOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly Dictionary<BlockKey, CachedBlock> _blocks = [];
    private readonly Dictionary<BlockKey, BlockFill> _fills = [];
    private readonly HashSet<BlockKey> _promotions = [];
    private readonly SemaphoreSlim _maintenanceSignal = new(0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Dictionary<string, long> _servedBySource = new(StringComparer.Ordinal);
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
    private Task? _maintenance;
    private int _disposed;

    /// <summary>Creates a store; call <see cref="InitializeAsync"/> before use.</summary>
    public TierStore(CacheOptions options, ILogger logger, TimeProvider? time = null)
    {
        var problems = options.Validate().ToList();
        if (problems.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", problems), nameof(options));
        }

        _options = options;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        var sketch = new FrequencySketch((int)Math.Min(int.MaxValue / 4, options.Tiers.Sum(t => t.Capacity) / (64 * 1024)));
        Tiers = [.. options.Tiers.Select((spec, level) => new Tier(level, spec, EvictionPolicies.Create(options.Policy, spec.Capacity, sketch)))];
    }

    /// <summary>The tiers, fastest first.</summary>
    public IReadOnlyList<Tier> Tiers { get; }

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

    /// <summary>Creates the tier folders, drops temporary files of an earlier run, indexes the blocks already on disk (so a restart finds them again), and starts background maintenance.</summary>
    public async Task InitializeAsync(CancellationToken cancellationToken = default)
    {
        await Task.Run(() =>
        {
            foreach (var tier in Tiers)
            {
                Directory.CreateDirectory(Path.Combine(tier.Root, "blocks"));
                var tmp = Path.Combine(tier.Root, "tmp");
                if (Directory.Exists(tmp))
                {
                    Directory.Delete(tmp, recursive: true);
                }

                Directory.CreateDirectory(tmp);
                var found = 0;
                var dropped = 0;
                var files = new DirectoryInfo(Path.Combine(tier.Root, "blocks")).EnumerateFiles("*", SearchOption.AllDirectories)
                    .OrderByDescending(f => f.LastWriteTimeUtc)
                    .ToList();
                foreach (var file in files)
                {
                    if (Index(tier, file))
                    {
                        found++;
                    }
                    else
                    {
                        dropped++;
                        TryDelete(file.FullName);
                    }
                }

                LogTierReady(_logger, tier.Name, tier.Root, ByteSize.Format(tier.Capacity), found, ByteSize.Format(tier.Used), dropped);
            }
        }, cancellationToken).ConfigureAwait(false);
        _maintenance = Task.Run(() => MaintainAsync(_stop.Token), CancellationToken.None);
    }

    private bool Index(Tier tier, FileInfo file)
    {
        if (!BlockKey.TryParse(file.Name, out var key))
        {
            return false;
        }

        BlockHeader? header;
        try
        {
            using var handle = File.OpenHandle(file.FullName);
            header = BlockFile.ReadHeader(handle);
        }
        catch (IOException)
        {
            return false;
        }

        if (header is null || header.Key != key || header.FileLength != file.Length)
        {
            return false;
        }

        lock (_lock)
        {
            if (_blocks.ContainsKey(key) || tier.Used + header.FileLength > tier.Capacity)
            {
                // A copy in a faster tier already, or more than a (since shrunk) capacity allows: newest kept.
                return false;
            }

            Add(new CachedBlock(key, tier, header));
        }

        return true;
    }

    private void Add(CachedBlock block)
    {
        _blocks[block.Key] = block;
        block.Tier.Used += block.Header.FileLength;
        block.Tier.Blocks++;
        block.Tier.Policy.OnAdded(block.Key, block.Header.FileLength);
    }

    /// <summary>Takes a block out of the index; false when it is no longer this very entry (freed or replaced meanwhile).</summary>
    private bool RemoveLocked(CachedBlock block)
    {
        if (!_blocks.TryGetValue(block.Key, out var current) || !ReferenceEquals(current, block))
        {
            return false;
        }

        _blocks.Remove(block.Key);
        block.Tier.Used -= block.Header.FileLength;
        block.Tier.Blocks--;
        block.Tier.Policy.OnRemoved(block.Key);
        return true;
    }

    // ------------------------------------------------------------------ lookups

    /// <summary>
    /// The block when held, counting the request as a hit (and scheduling a promotion when it sits below the top
    /// tier); counts a miss otherwise. The file may still vanish before it is opened: treat that as a miss.
    /// </summary>
    public bool TryGet(BlockKey key, out CachedBlock block)
    {
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
            if (block.Tier.Level > 0 && !block.Moving && _promotions.Add(key))
            {
                _maintenanceSignal.Release();
            }

            return true;
        }
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

    // ------------------------------------------------------------------ fills

    /// <summary>
    /// Starts filling a block from <paramref name="open"/> (a stream over exactly the block's bytes in under-storage),
    /// or joins the fill already running: concurrent callers share one under-storage read. Returns null when the
    /// block is already held. <paramref name="flags"/> and <paramref name="expiresTicks"/> are applied to the block.
    /// </summary>
    public BlockFill? StartFill(BlockKey key, int length, Func<CancellationToken, ValueTask<Stream>> open, ushort flags = 0, long expiresTicks = 0)
    {
        if (length < 0 || length > BlockFile.MaxBlockSize)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, $"a block holds 0 to {BlockFile.MaxBlockSize} bytes");
        }

        BlockFill fill;
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

            fill = new BlockFill(key, length);
            _fills[key] = fill;
            _fillCount++;
        }

        _ = Task.Run(() => RunFillAsync(fill, open, flags, expiresTicks));
        return fill;
    }

    private async Task RunFillAsync(BlockFill fill, Func<CancellationToken, ValueTask<Stream>> open, ushort flags, long expiresTicks)
    {
        var key = fill.Key;
        var need = BlockFile.HeaderLength(fill.Length) + (long)fill.Length;
        Tier? tier = null;
        try
        {
            tier = await ReserveAsync(need, _stop.Token).ConfigureAwait(false);
            fill.Place(tier);
            var header = await WriteBlockAsync(fill, open, flags, expiresTicks).ConfigureAwait(false);
            var final = tier.BlockPath(key);
            Directory.CreateDirectory(Path.GetDirectoryName(final)!);
            lock (_lock)
            {
                // Renamed under the lock, so a concurrent free of the same key cannot delete the new file.
                File.Move(fill.TempPath, final, overwrite: true);
                tier.Used -= need;
                Add(new CachedBlock(key, tier, header));
                _fills.Remove(key);
                _fillBytes += fill.Length;
            }

            fill.Complete();
        }
        catch (Exception e)
        {
            if (fill.TempPath.Length > 0)
            {
                TryDelete(fill.TempPath);
            }

            lock (_lock)
            {
                if (tier is not null)
                {
                    tier.Used -= need;
                }

                _fills.Remove(key);
            }

            SignalSpaceFreed();
            LogFillFailed(_logger, key.ToString(), e.Message);
            fill.Fail(e);
        }
    }

    private async Task<BlockHeader> WriteBlockAsync(BlockFill fill, Func<CancellationToken, ValueTask<Stream>> open, ushort flags, long expiresTicks)
    {
        var headerLength = BlockFile.HeaderLength(fill.Length);
        var checksums = new ulong[BlockFile.ChunkCount(fill.Length)];
        var buffer = ArrayPool<byte>.Shared.Rent(256 * 1024);
        try
        {
            using var file = File.OpenHandle(fill.TempPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read | FileShare.Delete, FileOptions.Asynchronous, preallocationSize: headerLength + (long)fill.Length);
            var hasher = new XxHash3();
            var inChunk = 0;
            var chunk = 0;
            long written = 0;
            await using (var source = await open(_stop.Token).ConfigureAwait(false))
            {
                while (written < fill.Length)
                {
                    var read = await source.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, fill.Length - written)), _stop.Token).ConfigureAwait(false);
                    if (read == 0)
                    {
                        break;
                    }

                    await RandomAccess.WriteAsync(file, buffer.AsMemory(0, read), headerLength + written, _stop.Token).ConfigureAwait(false);
                    var piece = buffer.AsSpan(0, read);
                    while (!piece.IsEmpty)
                    {
                        var take = Math.Min(piece.Length, BlockFile.ChunkSize - inChunk);
                        hasher.Append(piece[..take]);
                        inChunk += take;
                        piece = piece[take..];
                        if (inChunk == BlockFile.ChunkSize)
                        {
                            checksums[chunk++] = hasher.GetCurrentHashAsUInt64();
                            hasher.Reset();
                            inChunk = 0;
                        }
                    }

                    written += read;
                    fill.Publish(written);
                }
            }

            if (written != fill.Length)
            {
                throw new IOException($"under-storage returned {written} of the block's {fill.Length} bytes (the file shrank?)");
            }

            if (inChunk > 0 || fill.Length == 0)
            {
                checksums[chunk] = hasher.GetCurrentHashAsUInt64();
            }

            var header = new BlockHeader(fill.Key, fill.Length, flags, _time.GetUtcNow().UtcTicks, expiresTicks, checksums);
            await RandomAccess.WriteAsync(file, BlockFile.EncodeHeader(header), 0, _stop.Token).ConfigureAwait(false);
            return header;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reserves <paramref name="bytes"/> in the fastest tier with room, waiting for eviction when none has.</summary>
    private async Task<Tier> ReserveAsync(long bytes, CancellationToken cancellationToken)
    {
        var deadline = _time.GetUtcNow() + _options.SpaceWait;
        while (true)
        {
            Task freed;
            lock (_lock)
            {
                foreach (var tier in Tiers)
                {
                    if (tier.Capacity >= bytes && tier.Used + bytes <= tier.Capacity)
                    {
                        tier.Used += bytes;
                        if (tier.Used > tier.Capacity * _options.HighWatermark)
                        {
                            _maintenanceSignal.Release();
                        }

                        return tier;
                    }
                }

                if (Tiers.All(t => t.Capacity < bytes))
                {
                    throw new IOException($"a block of {ByteSize.Format(bytes)} is larger than every tier");
                }

                _pressure = Math.Max(_pressure, bytes);
                freed = _spaceFreed.Task;
            }

            _maintenanceSignal.Release();
            var left = deadline - _time.GetUtcNow();
            if (left <= TimeSpan.Zero)
            {
                throw new IOException($"no tier has {ByteSize.Format(bytes)} free after {_options.SpaceWait.TotalSeconds:0} s of eviction (everything pinned or being read?)");
            }

            await Task.WhenAny(freed, Task.Delay(TimeSpan.FromMilliseconds(Math.Min(500, left.TotalMilliseconds)), _time, cancellationToken)).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    private void SignalSpaceFreed()
    {
        TaskCompletionSource old;
        lock (_lock)
        {
            old = _spaceFreed;
            _spaceFreed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        old.TrySetResult();
    }

    // ------------------------------------------------------------------ free, pin, TTL, corruption

    /// <summary>Removes blocks from every tier. Returns how many were held.</summary>
    public int Free(IEnumerable<BlockKey> keys)
    {
        var freed = 0;
        lock (_lock)
        {
            foreach (var key in keys)
            {
                if (_blocks.TryGetValue(key, out var block) && RemoveLocked(block))
                {
                    // Unlinked under the lock so that a refill of the same key cannot land in between; open readers keep their bytes.
                    TryDelete(block.Path);
                    freed++;
                }
            }
        }

        if (freed > 0)
        {
            SignalSpaceFreed();
        }

        return freed;
    }

    /// <summary>Drops a block whose data failed its checksum, so the next read refills it.</summary>
    public void Discard(BlockKey key)
    {
        if (Free([key]) > 0)
        {
            Interlocked.Increment(ref _corrupt);
            LogCorrupt(_logger, key.ToString());
        }
    }

    /// <summary>Sets or clears the pin and the TTL of held blocks (rewriting their headers). Returns how many were held.</summary>
    public async Task<int> SetFlagsAsync(IEnumerable<BlockKey> keys, bool? pinned, long? expiresTicks)
    {
        var changed = 0;
        foreach (var key in keys)
        {
            CachedBlock? block;
            lock (_lock)
            {
                if (!_blocks.TryGetValue(key, out block) || block.Moving)
                {
                    continue;
                }
            }

            var old = block.Header;
            var flags = pinned switch
            {
                true => (ushort)(old.Flags | BlockFile.FlagPinned),
                false => (ushort)(old.Flags & ~BlockFile.FlagPinned),
                null => old.Flags,
            };
            var header = old with { Flags = flags, ExpiresTicks = expiresTicks ?? old.ExpiresTicks };
            try
            {
                using var handle = File.OpenHandle(block.Path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
                await RandomAccess.WriteAsync(handle, BlockFile.EncodeHeader(header), 0).ConfigureAwait(false);
            }
            catch (IOException)
            {
                continue;
            }

            lock (_lock)
            {
                block.Header = header;
            }

            changed++;
        }

        return changed;
    }

    // ------------------------------------------------------------------ maintenance

    private async Task MaintainAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await _maintenanceSignal.WaitAsync(_options.MaintenanceInterval, cancellationToken).ConfigureAwait(false);
                await MaintainOnceAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                LogMaintenanceFailed(_logger, e.Message);
            }
        }
    }

    /// <summary>One maintenance pass: TTL expiry, eviction down to the low watermark (slowest tier first, so demotions find room), promotions.</summary>
    public async Task MaintainOnceAsync(CancellationToken cancellationToken = default)
    {
        ExpireTtl();
        for (var level = Tiers.Count - 1; level >= 0; level--)
        {
            await EvictAsync(Tiers[level], cancellationToken).ConfigureAwait(false);
        }

        await PromoteAsync(cancellationToken).ConfigureAwait(false);
        SignalSpaceFreed();
    }

    private void ExpireTtl()
    {
        var now = _time.GetUtcNow().UtcTicks;
        List<BlockKey> expired;
        lock (_lock)
        {
            expired = [.. _blocks.Values.Where(b => b.Header.ExpiresTicks != 0 && b.Header.ExpiresTicks <= now && !b.Moving).Select(b => b.Key)];
        }

        if (expired.Count > 0)
        {
            Free(expired);
        }
    }

    private async Task EvictAsync(Tier tier, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            CachedBlock victim;
            lock (_lock)
            {
                var target = (long)(tier.Capacity * _options.LowWatermark);
                var overHigh = tier.Used > tier.Capacity * _options.HighWatermark;
                var pressed = _pressure > 0 && tier.Used + _pressure > tier.Capacity && tier.Capacity >= _pressure;
                if (!overHigh && !pressed)
                {
                    return;
                }

                if (pressed && !overHigh)
                {
                    target = Math.Min(target, tier.Capacity - _pressure);
                }

                if (tier.Used <= target && !pressed)
                {
                    return;
                }

                if (!tier.Policy.TryNextVictim(k => _blocks.TryGetValue(k, out var b) && !b.Moving && !b.Header.Pinned && b.Tier == tier, out var key))
                {
                    return;
                }

                victim = _blocks[key];
                victim.Moving = true;
                if (tier.Used - victim.Header.FileLength <= target)
                {
                    _pressure = 0;
                }
            }

            await DemoteOrDropAsync(victim, cancellationToken).ConfigureAwait(false);
            SignalSpaceFreed();
        }
    }

    private async Task DemoteOrDropAsync(CachedBlock victim, CancellationToken cancellationToken)
    {
        var from = victim.Tier;
        Tier? to = null;
        lock (_lock)
        {
            for (var level = from.Level + 1; level < Tiers.Count && to is null; level++)
            {
                var candidate = Tiers[level];
                if (candidate.Used + victim.Header.FileLength <= candidate.Capacity * _options.HighWatermark)
                {
                    candidate.Used += victim.Header.FileLength;
                    to = candidate;
                }
            }
        }

        if (to is not null && await CopyAsync(victim, to, cancellationToken).ConfigureAwait(false))
        {
            Interlocked.Increment(ref _demotions);
            return;
        }

        lock (_lock)
        {
            victim.Moving = false;
            if (RemoveLocked(victim))
            {
                TryDelete(from.BlockPath(victim.Key));
                Interlocked.Increment(ref _evictions);
            }
        }
    }

    /// <summary>Copies a block to another tier where <paramref name="to"/>'s space is already reserved; false (reservation released) on failure.</summary>
    private async Task<bool> CopyAsync(CachedBlock block, Tier to, CancellationToken cancellationToken)
    {
        var from = block.Tier;
        var temp = to.NewTempPath(block.Key);
        try
        {
            await using (var source = new FileStream(from.BlockPath(block.Key), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, CopyBufferSize, FileOptions.Asynchronous | FileOptions.SequentialScan))
            await using (var target = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, CopyBufferSize, FileOptions.Asynchronous))
            {
                await source.CopyToAsync(target, CopyBufferSize, cancellationToken).ConfigureAwait(false);
            }

            Directory.CreateDirectory(Path.GetDirectoryName(to.BlockPath(block.Key))!);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or OperationCanceledException)
        {
            // Stopped or failed half-way: the reservation and the partial copy go; the block stays where it was.
            TryDelete(temp);
            lock (_lock)
            {
                to.Used -= block.Header.FileLength;
                block.Moving = false;
            }

            return false;
        }

        lock (_lock)
        {
            to.Used -= block.Header.FileLength;
            block.Moving = false;
            if (!RemoveLocked(block))
            {
                // Freed while it was being copied: the copy goes too.
                TryDelete(temp);
                return false;
            }

            File.Move(temp, to.BlockPath(block.Key), overwrite: true);
            TryDelete(from.BlockPath(block.Key));
            block.Tier = to;
            Add(block);
        }

        return true;
    }

    private async Task PromoteAsync(CancellationToken cancellationToken)
    {
        List<CachedBlock> candidates;
        lock (_lock)
        {
            candidates = [];
            foreach (var key in _promotions)
            {
                if (_blocks.TryGetValue(key, out var block) && !block.Moving && block.Tier.Level > 0)
                {
                    candidates.Add(block);
                }
            }

            _promotions.Clear();
        }

        foreach (var block in candidates)
        {
            Tier? to = null;
            lock (_lock)
            {
                for (var level = 0; level < block.Tier.Level && to is null; level++)
                {
                    var candidate = Tiers[level];
                    if (candidate.Used + block.Header.FileLength <= candidate.Capacity * _options.LowWatermark)
                    {
                        candidate.Used += block.Header.FileLength;
                        block.Moving = true;
                        to = candidate;
                    }
                }
            }

            if (to is not null && await CopyAsync(block, to, cancellationToken).ConfigureAwait(false))
            {
                Interlocked.Increment(ref _promotionCount);
            }
        }
    }

    // ------------------------------------------------------------------ reports

    /// <summary>What the store holds and has done.</summary>
    public TierStoreReport GetReport()
    {
        lock (_lock)
        {
            return new TierStoreReport(
                [.. Tiers.Select(t => new TierReport(t.Name, t.Root, t.Capacity, t.Used, t.Blocks, t.Hits))],
                _options.Policy,
                _requests,
                _misses,
                _fillCount,
                _fillBytes,
                Interlocked.Read(ref _evictions),
                Interlocked.Read(ref _demotions),
                Interlocked.Read(ref _promotionCount),
                Interlocked.Read(ref _corrupt),
                new Dictionary<string, long>(_servedBySource));
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

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Debug.WriteLine($"could not delete {path}: {e.Message}");
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        if (_maintenance is not null)
        {
            await _maintenance.ConfigureAwait(false);
        }

        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Tier {Tier} at {Path}: capacity {Capacity}, found {Blocks} blocks ({Used}), dropped {Dropped} invalid files")]
    private static partial void LogTierReady(ILogger logger, string tier, string path, string capacity, int blocks, string used, int dropped);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Fill of block {Key} failed: {Reason}")]
    private static partial void LogFillFailed(ILogger logger, string key, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Block {Key} failed its checksum and was discarded; the next read refills it")]
    private static partial void LogCorrupt(ILogger logger, string key);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Tier maintenance failed: {Reason}")]
    private static partial void LogMaintenanceFailed(ILogger logger, string reason);
}
