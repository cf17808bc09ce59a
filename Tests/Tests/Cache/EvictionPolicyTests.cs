using GrainFs.DataPlane.Blocks;
using GrainFs.Storage.Cache;
using Xunit.Abstractions;

namespace GrainFs.Tests.Cache;

/// <summary>
/// Hit ratios under epoch-random access (each epoch reads every block once, in a new random order) with the
/// cache at 25/50/75% of the dataset: LRU all but stops hitting; TinyLFU keeps a stable subset and hits in
/// proportion to its capacity.
/// </summary>
public sealed class EvictionPolicyTests(ITestOutputHelper output)
{
    private static double HitRatio(string policyName, int blocks, double share, int epochs = 6, int seed = 3)
    {
        var capacity = (long)(blocks * share) * 1000;
        return HitRatio(EvictionPolicies.Create(policyName, capacity, new FrequencySketch(blocks)), blocks, share, epochs, seed);
    }

    // With prefetchAhead > 0, before each read a prefetcher brings in the blocks up to that many places ahead of the
    // reader (as an announced order's prefetch does), evicting by the policy like any fill.
    private static double HitRatio(IEvictionPolicy policy, int blocks, double share, int epochs = 6, int seed = 3, int prefetchAhead = 0)
    {
        const long blockBytes = 1000;
        var capacity = (long)(blocks * share) * blockBytes;
        var cached = new HashSet<BlockKey>();
        long used = 0;
        long hits = 0, requests = 0;
        var random = new Random(seed);
        var order = Enumerable.Range(0, blocks).ToArray();
        for (var epoch = 0; epoch < epochs; epoch++)
        {
            random.Shuffle(order);
            (policy as EpochOrderPolicy)?.Announce([.. order.Select(i => new BlockKey(7, 7, i))]);
            var fetchedUpTo = -1;
            for (var position = 0; position < order.Length; position++)
            {
                var i = order[position];
                for (; fetchedUpTo < Math.Min(order.Length - 1, position + prefetchAhead); fetchedUpTo++)
                {
                    var ahead = new BlockKey(7, 7, order[fetchedUpTo + 1]);
                    if (prefetchAhead > 0 && cached.Add(ahead))
                    {
                        used += blockBytes;
                        policy.OnAdded(ahead, blockBytes);
                        Evict();
                    }
                }

                var key = new BlockKey(7, 7, i);
                policy.OnRequest(key);
                requests += epoch == 0 ? 0 : 1;
                if (cached.Contains(key))
                {
                    hits += epoch == 0 ? 0 : 1;
                    policy.OnAccess(key);
                    continue;
                }

                cached.Add(key);
                used += blockBytes;
                policy.OnAdded(key, blockBytes);
                Evict();
            }
        }

        return (double)hits / requests;

        void Evict()
        {
            while (used > capacity)
            {
                Assert.True(policy.TryNextVictim(cached.Contains, out var victim));
                cached.Remove(victim);
                policy.OnRemoved(victim);
                used -= blockBytes;
            }
        }
    }

    [Theory]
    [InlineData(0.25)]
    [InlineData(0.50)]
    [InlineData(0.75)]
    public void Tinylfu_hits_in_proportion_to_capacity_where_lru_thrashes(double share)
    {
        var lru = HitRatio("lru", 4000, share);
        var tinylfu = HitRatio("tinylfu", 4000, share);
        output.WriteLine($"cache at {share:P0} of the dataset: lru hit ratio {lru:F3}, tinylfu {tinylfu:F3}");
        // A stable subset of ~98% of capacity (the rest is the admission window) hits at about that share.
        Assert.InRange(tinylfu, share * 0.9, share * 1.05);
        // LRU under random epochs keeps whatever came last, which the next permutation reaches late.
        Assert.True(lru < share * 0.85, $"lru {lru:F3} at {share}");
        Assert.True(tinylfu - lru > share * 0.15, $"tinylfu {tinylfu:F3} vs lru {lru:F3} at {share}");
    }

    /// <summary>Belady's optimum for the same sequence: on a miss with the cache full, the block used again last goes.</summary>
    private static double BeladyHitRatio(int blocks, double share, int epochs = 6, int seed = 3)
    {
        var capacity = (int)(blocks * share);
        var random = new Random(seed);
        var order = Enumerable.Range(0, blocks).ToArray();
        var sequence = new List<int>();
        for (var epoch = 0; epoch < epochs; epoch++)
        {
            random.Shuffle(order);
            sequence.AddRange(order);
        }

        var nextUse = new int[sequence.Count];
        var last = new Dictionary<int, int>();
        for (var i = sequence.Count - 1; i >= 0; i--)
        {
            nextUse[i] = last.TryGetValue(sequence[i], out var n) ? n : int.MaxValue;
            last[sequence[i]] = i;
        }

        var held = new Dictionary<int, int>(); // block → its next use
        var byNextUse = new SortedSet<(int NextUse, int Block)>();
        long hits = 0, requests = 0;
        for (var i = 0; i < sequence.Count; i++)
        {
            var block = sequence[i];
            var counted = i >= blocks;
            requests += counted ? 1 : 0;
            if (held.Remove(block, out var previous))
            {
                hits += counted ? 1 : 0;
                byNextUse.Remove((previous, block));
            }
            else if (held.Count >= capacity)
            {
                var victim = byNextUse.Max;
                byNextUse.Remove(victim);
                held.Remove(victim.Block);
            }

            held[block] = nextUse[i];
            byNextUse.Add((nextUse[i], block));
        }

        return (double)hits / requests;
    }

    [Theory]
    [InlineData(0.50)]
    [InlineData(0.25)]
    public void With_the_order_announced_eviction_comes_within_a_tenth_of_beladys_optimum(double share)
    {
        // A dataset twice (0.50) and four times (0.25) the cache, a warm-up epoch and five random epochs.
        const int Blocks = 4000;
        var capacity = (long)(Blocks * share) * 1000;
        var lru = HitRatio("lru", Blocks, share);
        var tinylfu = HitRatio("tinylfu", Blocks, share);
        var ordered = HitRatio(new EpochOrderPolicy(EvictionPolicies.Create("tinylfu", capacity, new FrequencySketch(Blocks))), Blocks, share);
        var belady = BeladyHitRatio(Blocks, share);
        output.WriteLine($"cache at {share:P0} of the dataset: lru {lru:F3}, tinylfu {tinylfu:F3}, epoch order {ordered:F3}, Belady {belady:F3}");
        // Each block is read once per epoch, so no policy hits more than the cache's share of the dataset: Belady
        // reaches it, and so does the ordered policy.
        Assert.True(ordered >= 0.9 * belady, $"epoch order {ordered:F3} against Belady {belady:F3}");
        Assert.True(belady >= ordered - 1e-9, "nothing beats the optimum");
        Assert.True(lru < ordered && tinylfu <= ordered + 1e-9, $"lru {lru:F3}, tinylfu {tinylfu:F3}, ordered {ordered:F3}");
    }

    [Theory]
    [InlineData(0.50)]
    [InlineData(0.25)]
    public void With_prefetch_ahead_of_the_reader_the_ordered_policy_keeps_what_was_fetched_until_it_is_read(double share)
    {
        // The prefetcher runs a tenth of the cache ahead of the reader. TinyLFU takes each prefetched block as a
        // newcomer of no standing and evicts most before the reader gets there; the ordered policy evicts what the
        // reader has passed, so every read finds its block.
        const int Blocks = 4000;
        var capacity = (long)(Blocks * share) * 1000;
        var ahead = (int)(Blocks * share / 10);
        var tinylfu = HitRatio(EvictionPolicies.Create("tinylfu", capacity, new FrequencySketch(Blocks)), Blocks, share, prefetchAhead: ahead);
        var lru = HitRatio(EvictionPolicies.Create("lru", capacity, new FrequencySketch(Blocks)), Blocks, share, prefetchAhead: ahead);
        var ordered = HitRatio(new EpochOrderPolicy(EvictionPolicies.Create("tinylfu", capacity, new FrequencySketch(Blocks))), Blocks, share, prefetchAhead: ahead);
        output.WriteLine($"cache at {share:P0} of the dataset, prefetch {ahead} blocks ahead: reads finding their block: lru {lru:F3}, tinylfu {tinylfu:F3}, epoch order {ordered:F3}");
        Assert.Equal(1.0, ordered, 3);
        Assert.True(tinylfu < 0.9, $"tinylfu {tinylfu:F3}");
    }

    [Fact]
    public void Without_an_order_the_base_policy_decides_and_blocks_read_this_epoch_go_first_with_one()
    {
        var policy = new EpochOrderPolicy(new LruPolicy());
        var keys = Enumerable.Range(0, 4).Select(i => new BlockKey(3, 3, i)).ToArray();
        foreach (var key in keys)
        {
            policy.OnAdded(key, 10);
        }

        // No order: LRU's victim, the oldest.
        Assert.True(policy.TryNextVictim(_ => true, out var victim));
        Assert.Equal(0, victim.Index);

        // The order 3, 1, 0, 2 with the reader past 3 and 1: the block it read first goes, then the other it read; with
        // those pinned, the block it will reach last (2).
        policy.Announce([keys[3], keys[1], keys[0], keys[2]]);
        policy.OnRequest(keys[3]);
        policy.OnRequest(keys[1]);
        Assert.True(policy.TryNextVictim(_ => true, out victim));
        Assert.Equal(3, victim.Index);
        Assert.True(policy.TryNextVictim(k => k.Index != 3, out victim));
        Assert.Equal(1, victim.Index);
        Assert.True(policy.TryNextVictim(k => k.Index is not (3 or 1), out victim));
        Assert.Equal(2, victim.Index);

        // A block the order does not name goes before those still ahead of the reader.
        var stranger = new BlockKey(9, 9, 9);
        policy.OnAdded(stranger, 10);
        Assert.True(policy.TryNextVictim(k => k.Index is not (3 or 1), out victim));
        Assert.Equal(stranger, victim);

        policy.Forget();
        Assert.True(policy.TryNextVictim(_ => true, out victim));
        Assert.Equal(0, victim.Index);
    }

    [Fact]
    public void Two_jobs_orders_stay_in_force_together_and_a_block_goes_first_when_no_reader_needs_it_again()
    {
        var policy = new EpochOrderPolicy(new LruPolicy());
        var keys = Enumerable.Range(0, 6).Select(i => new BlockKey(5, 5, i)).ToArray();
        foreach (var key in keys)
        {
            policy.OnAdded(key, 10);
        }

        // Job a reads 0 1 2 3, job b reads 3 2 4 5; a's reader is past 0 and 1, b's past 3.
        policy.Announce("a", [keys[0], keys[1], keys[2], keys[3]]);
        policy.Announce("b", [keys[3], keys[2], keys[4], keys[5]]);
        Assert.Equal(2, policy.Jobs.Count);
        policy.OnRequest(keys[0]);
        policy.OnRequest(keys[1]);
        policy.OnRequest(keys[3]); // a's reader is now at 3, its last (so past 2), and b's at its first

        // Passed by every reader that names them: 0, 1 (a only) and 3 (a and b); 2 is still ahead of b.
        var passed = new List<int>();
        while (policy.TryNextVictim(k => !passed.Contains(k.Index), out var victim) && passed.Count < 3)
        {
            passed.Add(victim.Index);
        }

        Assert.Equal([0, 1, 3], passed.Order());

        // Then, ahead of b's reader: the block it reaches last (5) before 4 and 2.
        Assert.True(policy.TryNextVictim(k => k.Index is 2 or 4 or 5, out var ahead));
        Assert.Equal(5, ahead.Index);

        // b's order ends and a's stays in force: 2, which a's reader has passed, now goes before 4 and 5.
        policy.Forget("b");
        Assert.Equal(["a"], policy.Jobs);
        Assert.True(policy.TryNextVictim(k => k.Index is 2 or 4 or 5, out var next));
        Assert.Equal(2, next.Index);
    }

    [Fact]
    public void A_reader_that_tells_its_place_is_placed_by_that_alone_not_by_requests_for_its_blocks()
    {
        var policy = new EpochOrderPolicy(new LruPolicy());
        var keys = Enumerable.Range(0, 6).Select(i => new BlockKey(6, 6, i)).ToArray();
        foreach (var key in keys)
        {
            policy.OnAdded(key, 10);
        }

        // Announced by a client that will report its reader's place: requests do not place the reader even before the
        // first report (the last epoch's reads may be reported after the new order is in force).
        policy.Announce("a", keys, told: true);
        policy.OnRequest(keys[3]);
        Assert.True(policy.TryNextVictim(_ => true, out var first));
        Assert.Equal(5, first.Index);

        policy.Advance("a", 1); // the reader has read 0 and 1

        // A request for block 4 (another job's reader, or a report that came late) does not move a's reader past 2 and 3.
        policy.OnRequest(keys[4]);
        var victims = new List<int>();
        while (victims.Count < 3 && policy.TryNextVictim(k => !victims.Contains(k.Index), out var victim))
        {
            victims.Add(victim.Index);
        }

        // Passed first (0, 1), then the block the reader will reach last (5), never 2, 3 or 4 before it.
        Assert.Equal([0, 1, 5], victims);

        // Its next report moves it on: 2 and 3 are passed now.
        policy.Advance("a", 3);
        Assert.True(policy.TryNextVictim(k => k.Index is 2 or 3 or 4, out var next));
        Assert.Equal(2, next.Index);

        // A report of a place it is already past changes nothing.
        policy.Advance("a", 0);
        Assert.True(policy.TryNextVictim(k => k.Index is 3 or 4, out next));
        Assert.Equal(3, next.Index);
    }

    [Fact]
    public void Lru_evicts_the_least_recently_used_and_skips_what_cannot_go()
    {
        var lru = new LruPolicy();
        for (var i = 0; i < 3; i++)
        {
            lru.OnAdded(new BlockKey(1, 1, i), 10);
        }

        lru.OnAccess(new BlockKey(1, 1, 0));
        Assert.True(lru.TryNextVictim(_ => true, out var victim));
        Assert.Equal(1, victim.Index);
        Assert.True(lru.TryNextVictim(k => k.Index != 1, out victim));
        Assert.Equal(2, victim.Index);
        Assert.False(lru.TryNextVictim(_ => false, out _));
    }

    [Fact]
    public void A_frequency_sketch_counts_and_forgets()
    {
        var sketch = new FrequencySketch(16);
        var hot = new BlockKey(1, 2, 3);
        for (var i = 0; i < 10; i++)
        {
            sketch.Increment(hot);
        }

        Assert.InRange(sketch.Estimate(hot), 10, 15);
        Assert.Equal(0, sketch.Estimate(new BlockKey(9, 9, 9)) > 5 ? 1 : 0);
        for (var i = 0; i < 2000; i++)
        {
            sketch.Increment(new BlockKey(5, 5, i));
        }

        Assert.True(sketch.Estimate(hot) < 10, "old counts age away");
    }
}
