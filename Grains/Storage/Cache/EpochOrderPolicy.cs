using GrainFs.DataPlane.Blocks;

namespace GrainFs.Storage.Cache;

/// <summary>
/// Eviction that knows the readers' orders: while announced orders (training epochs, one per job) are in force, a block
/// every order naming it has already passed in this epoch, and so will not be needed before the next one, goes first;
/// then blocks no order names, by the base policy; then, of the blocks still ahead of a reader, the one whose next read
/// is farthest away (in places of the order that reaches it first). For one known sequence that is Belady's choice
/// (evict the block whose next use is farthest), except that it cannot see into epochs not yet announced. Without an
/// order the base policy decides alone. A reader's place in its order is where its announcer says it is (<see cref="Advance"/>),
/// or else the farthest block of it requested so far.
/// Not thread-safe: the tier index serializes calls, as for every policy.
/// </summary>
public sealed class EpochOrderPolicy(IEvictionPolicy basePolicy) : IEvictionPolicy
{
    private static readonly IComparer<(int Position, BlockKey Key)> ByPosition =
        Comparer<(int Position, BlockKey Key)>.Create(static (a, b) => a.Position != b.Position ? a.Position.CompareTo(b.Position) : a.Key.CompareTo(b.Key));

    // How far down an order's blocks ahead of its reader eviction looks for the one read farthest from now by every order.
    private const int AheadCandidates = 8;

    private readonly Dictionary<string, Order> _orders = new(StringComparer.Ordinal);
    private readonly HashSet<BlockKey> _present = [];

    // Held blocks some order names (the base policy is asked only when there are others).
    private readonly HashSet<BlockKey> _named = [];

    /// <summary>The job of orders announced without one.</summary>
    public const string DefaultJob = "";

    private sealed class Order(IReadOnlyDictionary<BlockKey, int> positions)
    {
        // Shared by the policies of every tier, which only read it.
        public IReadOnlyDictionary<BlockKey, int> Positions { get; } = positions;

        // Held blocks of the order, by position: those at or below the cursor were read this epoch.
        public SortedSet<(int Position, BlockKey Key)> Held { get; } = new(ByPosition);

        public int Cursor { get; set; } = -1;

        // Placed by its reader's own reports (Advance) rather than by the requests the store sees.
        public bool Told { get; set; }

        // Places until the reader of this order reaches the key: -1 when it does not name it or passed it already.
        public int Distance(BlockKey key) => Positions.TryGetValue(key, out var position) && position > Cursor ? position - Cursor : -1;
    }

    /// <inheritdoc />
    public string Name => basePolicy.Name + "+order";

    /// <summary>The base policy (blocks no order names).</summary>
    public IEvictionPolicy Base => basePolicy;

    /// <summary>True while an order is in force.</summary>
    public bool HasOrder => _orders.Count > 0;

    /// <summary>The jobs whose orders are in force.</summary>
    public IReadOnlyCollection<string> Jobs => _orders.Keys;

    /// <summary>Puts <paramref name="order"/> in force as the order of <see cref="DefaultJob"/>.</summary>
    public void Announce(IReadOnlyList<BlockKey> order) => Announce(DefaultJob, order);

    /// <summary>
    /// Puts <paramref name="order"/> (the blocks a reader will request, in order) in force for <paramref name="job"/>,
    /// replacing that job's last one: a new epoch starts with its reader before the first block. Other jobs' orders stay.
    /// A block named twice keeps its first place. With <paramref name="told"/> the reader is placed only by
    /// <see cref="Advance"/> from the start (its announcer reports its place; requests may be other readers' or late).
    /// </summary>
    public void Announce(string job, IReadOnlyList<BlockKey> order, bool told = false) => Announce(job, Positions(order), told);

    /// <summary>The place of each block in <paramref name="order"/> (a block named twice keeps its first), for <see cref="Announce(string, IReadOnlyDictionary{BlockKey, int}, bool)"/>.</summary>
    public static IReadOnlyDictionary<BlockKey, int> Positions(IReadOnlyList<BlockKey> order)
    {
        var positions = new Dictionary<BlockKey, int>(order.Count);
        for (var i = 0; i < order.Count; i++)
        {
            positions.TryAdd(order[i], i);
        }

        return positions;
    }

    /// <summary>As <see cref="Announce(string, IReadOnlyList{BlockKey}, bool)"/>, with the places built once for every tier (<see cref="Positions"/>).</summary>
    public void Announce(string job, IReadOnlyDictionary<BlockKey, int> positions, bool told = false)
    {
        var entry = new Order(positions) { Told = told };
        foreach (var key in _present)
        {
            if (positions.TryGetValue(key, out var position))
            {
                entry.Held.Add((position, key));
            }
        }

        Forget(job);
        _orders[job] = entry;
        foreach (var (_, key) in entry.Held)
        {
            _named.Add(key);
        }
    }

    /// <summary>
    /// The reader of <paramref name="job"/>'s order has read up to place <paramref name="position"/>. From then on that
    /// order's reader is placed by these reports alone: requests for its blocks may come from other readers (another
    /// job reading the same files in its own order) or arrive late (short-circuit reads are reported in batches, some
    /// after the next epoch's order is in force), and either would move it past blocks it has still to read.
    /// </summary>
    public void Advance(string job, int position)
    {
        if (_orders.TryGetValue(job, out var order))
        {
            order.Told = true;
            if (position > order.Cursor)
            {
                order.Cursor = position;
            }
        }
    }

    /// <summary>Ends every order in force: the base policy decides alone again.</summary>
    public void Forget()
    {
        _orders.Clear();
        _named.Clear();
    }

    /// <summary>Ends the order of <paramref name="job"/> (abandoned, expired, read to the end); the others stay.</summary>
    public void Forget(string job)
    {
        if (!_orders.Remove(job, out var order))
        {
            return;
        }

        foreach (var (_, key) in order.Held)
        {
            if (!Named(key))
            {
                _named.Remove(key);
            }
        }
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
        foreach (var order in _orders.Values)
        {
            if (order.Positions.TryGetValue(key, out var position))
            {
                order.Held.Add((position, key));
                _named.Add(key);
            }
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
        foreach (var order in _orders.Values)
        {
            if (!order.Told && order.Positions.TryGetValue(key, out var position) && position > order.Cursor)
            {
                order.Cursor = position;
            }
        }
    }

    /// <inheritdoc />
    public void OnRemoved(BlockKey key)
    {
        basePolicy.OnRemoved(key);
        _present.Remove(key);
        _named.Remove(key);
        foreach (var order in _orders.Values)
        {
            if (order.Positions.TryGetValue(key, out var position))
            {
                order.Held.Remove((position, key));
            }
        }
    }

    // Places until the first reader that still needs the key reaches it; -1 when no order needs it again this epoch.
    private int NextUse(BlockKey key)
    {
        var next = -1;
        foreach (var order in _orders.Values)
        {
            var distance = order.Distance(key);
            if (distance > 0 && (next < 0 || distance < next))
            {
                next = distance;
            }
        }

        return next;
    }

    private bool Named(BlockKey key)
    {
        foreach (var order in _orders.Values)
        {
            if (order.Positions.ContainsKey(key))
            {
                return true;
            }
        }

        return false;
    }

    /// <inheritdoc />
    public bool TryNextVictim(Func<BlockKey, bool> canEvict, out BlockKey victim)
    {
        if (_orders.Count == 0)
        {
            return basePolicy.TryNextVictim(canEvict, out victim);
        }

        // Read already this epoch by its reader, and not ahead of another: the one read longest ago.
        var single = _orders.Count == 1;
        foreach (var order in _orders.Values)
        {
            foreach (var (position, key) in order.Held)
            {
                if (position > order.Cursor)
                {
                    break;
                }

                if (canEvict(key) && (single || NextUse(key) < 0))
                {
                    victim = key;
                    return true;
                }
            }
        }

        // Not in any order, by the base policy (only when there may be such blocks: the base policy holds every block).
        if (_present.Count > _named.Count && basePolicy.TryNextVictim(k => !Named(k) && canEvict(k), out victim))
        {
            return true;
        }

        // Ahead of the readers: the block whose next read is farthest away.
        var found = false;
        var farthest = -1;
        victim = default;
        foreach (var order in _orders.Values)
        {
            var looked = 0;
            foreach (var (position, key) in order.Held.Reverse())
            {
                if (position <= order.Cursor || looked == AheadCandidates)
                {
                    break;
                }

                if (!canEvict(key))
                {
                    continue;
                }

                looked++;
                var next = single ? position - order.Cursor : NextUse(key);
                if (next > farthest)
                {
                    (farthest, victim, found) = (next, key, true);
                }

                if (single)
                {
                    break;
                }
            }
        }

        if (found)
        {
            return true;
        }

        victim = default;
        return false;
    }
}
