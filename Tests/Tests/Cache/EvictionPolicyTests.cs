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
        const long blockBytes = 1000;
        var capacity = (long)(blocks * share) * blockBytes;
        var policy = EvictionPolicies.Create(policyName, capacity, new FrequencySketch(blocks));
        var cached = new HashSet<BlockKey>();
        long used = 0;
        long hits = 0, requests = 0;
        var random = new Random(seed);
        var order = Enumerable.Range(0, blocks).ToArray();
        for (var epoch = 0; epoch < epochs; epoch++)
        {
            random.Shuffle(order);
            foreach (var i in order)
            {
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
                while (used > capacity)
                {
                    Assert.True(policy.TryNextVictim(cached.Contains, out var victim));
                    cached.Remove(victim);
                    policy.OnRemoved(victim);
                    used -= blockBytes;
                }
            }
        }

        return (double)hits / requests;
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
