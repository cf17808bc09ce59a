using GrainFs.DataPlane.Blocks;

namespace GrainFs.Storage.Cache;

/// <summary>
/// Eviction that knows the reader's order: while an announced order (a training epoch's) is in force, a block the
/// reader has already passed in this epoch, and so will not need before the next one, goes first; then blocks the order
/// does not name, by the base policy; then, of the blocks still ahead of the reader, the one it will reach last.
/// For a known sequence that is Belady's choice (evict the block whose next use is farthest), except that it cannot see
/// into epochs not yet announced. Without an order the base policy decides alone. The reader's place in the order is
/// the farthest announced block requested so far. Not thread-safe: the tier index serializes calls, as for every
/// policy.
/// </summary>
public sealed class EpochOrderPolicy(IEvictionPolicy basePolicy) : IEvictionPolicy
{
    private Dictionary<BlockKey, int> _positions = [];

    // Held blocks of the order, by position: those below the cursor were read this epoch.
    private readonly SortedSet<(int Position, BlockKey Key)> _held = new(Comparer<(int Position, BlockKey Key)>.Create(static (a, b) => a.Position != b.Position ? a.Position.CompareTo(b.Position) : a.Key.CompareTo(b.Key)));
    private readonly HashSet<BlockKey> _present = [];
    private int _cursor = -1;

    /// <inheritdoc />
    public string Name => basePolicy.Name + "+order";

    /// <summary>The base policy (blocks no order names).</summary>
    public IEvictionPolicy Base => basePolicy;

    /// <summary>True while an order is in force.</summary>
    public bool HasOrder => _positions.Count > 0;

    /// <summary>
    /// Puts <paramref name="order"/> in force (the blocks the reader will request, in order), replacing the last one: a
    /// new epoch starts with its reader before the first block. A block named twice keeps its first place.
    /// </summary>
    public void Announce(IReadOnlyList<BlockKey> order)
    {
        var positions = new Dictionary<BlockKey, int>(order.Count);
        for (var i = 0; i < order.Count; i++)
        {
            positions.TryAdd(order[i], i);
        }

        _positions = positions;
        _cursor = -1;
        _held.Clear();
        foreach (var key in _present)
        {
            if (positions.TryGetValue(key, out var position))
            {
                _held.Add((position, key));
            }
        }
    }

    /// <summary>Ends the order in force (abandoned, expired, read to the end): the base policy decides alone again.</summary>
    public void Forget()
    {
        _positions = [];
        _held.Clear();
        _cursor = -1;
    }

    /// <inheritdoc />
    public void OnRequest(BlockKey key)
    {
        basePolicy.OnRequest(key);
        Reached(key);
    }

    /// <inheritdoc />
    public void OnAdded(BlockKey key, long bytes)
    {
        basePolicy.OnAdded(key, bytes);
        _present.Add(key);
        if (_positions.TryGetValue(key, out var position))
        {
            _held.Add((position, key));
        }
    }

    /// <inheritdoc />
    public void OnAccess(BlockKey key)
    {
        basePolicy.OnAccess(key);
        Reached(key); // reads reported after the fact (short-circuit reads) move the reader too
    }

    private void Reached(BlockKey key)
    {
        if (_positions.TryGetValue(key, out var position) && position > _cursor)
        {
            _cursor = position;
        }
    }

    /// <inheritdoc />
    public void OnRemoved(BlockKey key)
    {
        basePolicy.OnRemoved(key);
        _present.Remove(key);
        if (_positions.TryGetValue(key, out var position))
        {
            _held.Remove((position, key));
        }
    }

    /// <inheritdoc />
    public bool TryNextVictim(Func<BlockKey, bool> canEvict, out BlockKey victim)
    {
        if (_positions.Count == 0)
        {
            return basePolicy.TryNextVictim(canEvict, out victim);
        }

        // Read already this epoch: the one read longest ago.
        foreach (var (position, key) in _held)
        {
            if (position > _cursor)
            {
                break;
            }

            if (canEvict(key))
            {
                victim = key;
                return true;
            }
        }

        // Not in the order, by the base policy (only when there are such blocks: the base policy holds every block).
        if (_present.Count > _held.Count && basePolicy.TryNextVictim(k => !_positions.ContainsKey(k) && canEvict(k), out victim))
        {
            return true;
        }

        // Ahead of the reader: the one it will reach last.
        foreach (var (position, key) in _held.Reverse())
        {
            if (position <= _cursor)
            {
                break;
            }

            if (canEvict(key))
            {
                victim = key;
                return true;
            }
        }

        victim = default;
        return false;
    }
}
