using GrainFs.DataPlane.Blocks;

namespace GrainFs.Storage.Cache;

/// <summary>
/// Decides which block leaves a tier next. Not thread-safe: the tier store calls it under its lock.
/// Sizes are bytes, so blocks of different sizes weigh what they occupy.
/// </summary>
public interface IEvictionPolicy
{
    /// <summary>The policy's name (lru, tinylfu).</summary>
    string Name { get; }

    /// <summary>A request for the block, hit or miss (frequency policies count misses too).</summary>
    void OnRequest(BlockKey key);

    /// <summary>The block entered the tier.</summary>
    void OnAdded(BlockKey key, long bytes);

    /// <summary>The block in the tier was read.</summary>
    void OnAccess(BlockKey key);

    /// <summary>The block left the tier.</summary>
    void OnRemoved(BlockKey key);

    /// <summary>The next block to take out of the tier, skipping those <paramref name="canEvict"/> refuses (pinned, being copied).</summary>
    bool TryNextVictim(Func<BlockKey, bool> canEvict, out BlockKey victim);
}

/// <summary>Policy names and construction.</summary>
public static class EvictionPolicies
{
    /// <summary>The known policies.</summary>
    public static readonly IReadOnlyList<string> Names = ["lru", "tinylfu"];

    /// <summary>Creates a policy for a tier of <paramref name="capacity"/> bytes; shares <paramref name="sketch"/> across tiers.</summary>
    public static IEvictionPolicy Create(string name, long capacity, FrequencySketch sketch) => name switch
    {
        "lru" => new LruPolicy(),
        "tinylfu" => new TinyLfuPolicy(capacity, sketch),
        _ => throw new ArgumentException($"unknown eviction policy '{name}' (known: {string.Join(", ", Names)})", nameof(name)),
    };
}

/// <summary>An ordered set of keys with sizes: the most recent at the front, the victim at the back.</summary>
internal sealed class RecencyList
{
    private readonly LinkedList<(BlockKey Key, long Bytes)> _list = new();
    private readonly Dictionary<BlockKey, LinkedListNode<(BlockKey Key, long Bytes)>> _nodes = [];

    public long Bytes { get; private set; }

    public int Count => _nodes.Count;

    public bool Contains(BlockKey key) => _nodes.ContainsKey(key);

    public void AddFront(BlockKey key, long bytes)
    {
        Remove(key);
        _nodes[key] = _list.AddFirst((key, bytes));
        Bytes += bytes;
    }

    public bool Touch(BlockKey key)
    {
        if (!_nodes.TryGetValue(key, out var node))
        {
            return false;
        }

        _list.Remove(node);
        _list.AddFirst(node);
        return true;
    }

    public bool Remove(BlockKey key)
    {
        if (!_nodes.Remove(key, out var node))
        {
            return false;
        }

        Bytes -= node.Value.Bytes;
        _list.Remove(node);
        return true;
    }

    public long SizeOf(BlockKey key) => _nodes.TryGetValue(key, out var node) ? node.Value.Bytes : 0;

    /// <summary>The least recent key <paramref name="canEvict"/> accepts.</summary>
    public bool TryOldest(Func<BlockKey, bool> canEvict, out BlockKey key)
    {
        for (var node = _list.Last; node is not null; node = node.Previous)
        {
            if (canEvict(node.Value.Key))
            {
                key = node.Value.Key;
                return true;
            }
        }

        key = default;
        return false;
    }
}

/// <summary>Least recently used: the baseline. Under epoch-random access over a dataset larger than the cache it hits rarely.</summary>
public sealed class LruPolicy : IEvictionPolicy
{
    private readonly RecencyList _list = new();

    /// <inheritdoc />
    public string Name => "lru";

    /// <inheritdoc />
    public void OnRequest(BlockKey key)
    {
    }

    /// <inheritdoc />
    public void OnAdded(BlockKey key, long bytes) => _list.AddFront(key, bytes);

    /// <inheritdoc />
    public void OnAccess(BlockKey key) => _list.Touch(key);

    /// <inheritdoc />
    public void OnRemoved(BlockKey key) => _list.Remove(key);

    /// <inheritdoc />
    public bool TryNextVictim(Func<BlockKey, bool> canEvict, out BlockKey victim) => _list.TryOldest(canEvict, out victim);
}

/// <summary>
/// Window TinyLFU: new blocks enter a small LRU window (2% of the tier); when the window overflows, its oldest
/// block may join the main area only if it has been requested clearly more often than the main area's victim
/// (frequencies from a shared count-min sketch that also counts misses). Under epoch-random access all
/// frequencies are equal, newcomers are refused, and the main area keeps a stable subset, so the hit ratio
/// follows the cache's share of the dataset instead of collapsing as LRU's does.
/// </summary>
public sealed class TinyLfuPolicy(long capacity, FrequencySketch sketch) : IEvictionPolicy
{
    /// <summary>Share of the tier given to the admission window.</summary>
    public const double WindowShare = 0.02;

    private readonly RecencyList _window = new();
    private readonly RecencyList _main = new();
    private readonly long _windowTarget = (long)(capacity * WindowShare);
    private readonly long _mainTarget = capacity - (long)(capacity * WindowShare);

    /// <inheritdoc />
    public string Name => "tinylfu";

    /// <inheritdoc />
    public void OnRequest(BlockKey key) => sketch.Increment(key);

    /// <inheritdoc />
    public void OnAdded(BlockKey key, long bytes) => _window.AddFront(key, bytes);

    /// <inheritdoc />
    public void OnAccess(BlockKey key)
    {
        if (!_window.Touch(key))
        {
            _main.Touch(key);
        }
    }

    /// <inheritdoc />
    public void OnRemoved(BlockKey key)
    {
        if (!_window.Remove(key))
        {
            _main.Remove(key);
        }
    }

    /// <inheritdoc />
    public bool TryNextVictim(Func<BlockKey, bool> canEvict, out BlockKey victim)
    {
        while (_window.Bytes > _windowTarget && _window.TryOldest(canEvict, out var candidate))
        {
            var size = _window.SizeOf(candidate);
            if (_main.Bytes + size <= _mainTarget)
            {
                // Room in the main area: the candidate moves in without a contest.
                _window.Remove(candidate);
                _main.AddFront(candidate, size);
                continue;
            }

            if (!_main.TryOldest(canEvict, out var incumbent))
            {
                victim = candidate;
                return true;
            }

            // A margin of one request: within an epoch the candidate has just been counted and the incumbent
            // may not have been yet, and equal popularity must not make the main area churn.
            if (sketch.Estimate(candidate) > sketch.Estimate(incumbent) + 1)
            {
                _window.Remove(candidate);
                _main.AddFront(candidate, size);
                victim = incumbent;
                return true;
            }

            victim = candidate;
            return true;
        }

        return _main.TryOldest(canEvict, out victim) || _window.TryOldest(canEvict, out victim);
    }
}

/// <summary>
/// A count-min sketch of 4-bit counters (4 rows) estimating how often each block was requested. Counters halve
/// after a sample period of ten times the width, so old popularity fades.
/// </summary>
public sealed class FrequencySketch
{
    private readonly byte[][] _rows;
    private readonly int _mask;
    private readonly int _samplePeriod;
    private int _samples;

    /// <summary>Creates a sketch sized for about <paramref name="expectedBlocks"/> distinct blocks.</summary>
    public FrequencySketch(int expectedBlocks)
    {
        var width = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Clamp(expectedBlocks * 2, 64, 1 << 24));
        _mask = width - 1;
        _rows = [new byte[width], new byte[width], new byte[width], new byte[width]];
        _samplePeriod = width * 10;
    }

    /// <summary>Counts one request.</summary>
    public void Increment(BlockKey key)
    {
        for (var r = 0; r < _rows.Length; r++)
        {
            ref var counter = ref _rows[r][Slot(key, r)];
            if (counter < 15)
            {
                counter++;
            }
        }

        if (++_samples >= _samplePeriod)
        {
            _samples /= 2;
            foreach (var row in _rows)
            {
                for (var i = 0; i < row.Length; i++)
                {
                    row[i] >>= 1;
                }
            }
        }
    }

    /// <summary>The estimated request count (the least counter).</summary>
    public int Estimate(BlockKey key)
    {
        var min = int.MaxValue;
        for (var r = 0; r < _rows.Length; r++)
        {
            min = Math.Min(min, _rows[r][Slot(key, r)]);
        }

        return min;
    }

    private int Slot(BlockKey key, int row) => (int)(key.Hash64((ulong)row * 0x9E3779B97F4A7C15UL) & (ulong)_mask);
}
