using GrainFs.Client;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Unit;

/// <summary>The client's bounded metadata cache: its size stays near its capacity whatever is put, removed or replaced.</summary>
public sealed class MetadataCacheTests
{
    [Fact]
    public void Puts_past_the_capacity_sweep_the_entries_closest_to_expiry()
    {
        var clock = new TestClock();
        var cache = new MetadataCache(1000, clock);
        for (var i = 0; i < 10_000; i++)
        {
            // Later puts live longer, so a sweep drops the earliest.
            cache.Put($"/m/f{i}", FsStatus.Ok, null, TimeSpan.FromMinutes(1) + TimeSpan.FromMilliseconds(i), 1);
            Assert.True(cache.Count <= 1000, $"{cache.Count} entries after {i + 1} puts into a cache of 1000");
        }

        Assert.True(cache.TryGet("/m/f9999", out _, out _));
        Assert.False(cache.TryGet("/m/f0", out _, out _));
    }

    [Fact]
    public void Replacing_forgetting_and_expiring_keep_the_count_true()
    {
        var clock = new TestClock();
        var cache = new MetadataCache(100, clock);
        for (var round = 0; round < 50; round++)
        {
            for (var i = 0; i < 80; i++)
            {
                cache.Put($"/m/d/f{i}", FsStatus.Ok, null, TimeSpan.FromSeconds(10), 1);
            }
        }

        // 80 paths put 50 times each are 80 entries: no sweep has dropped any of them.
        Assert.Equal(80, cache.Count);
        Assert.True(cache.TryGet("/m/d/f0", out _, out _));

        cache.Forget("/m/d/f0");
        cache.ForgetUnder("/m/d");
        Assert.Equal(0, cache.Count);

        // The forgotten paths made room: a full load fits without a sweep dropping any of it.
        for (var i = 0; i < 100; i++)
        {
            cache.Put($"/m/h{i}", FsStatus.Ok, null, TimeSpan.FromSeconds(1), 3);
        }

        Assert.Equal(100, cache.Count);
        cache.ForgetMount(3);
        Assert.Equal(0, cache.Count);

        // Entries that expired are dropped when asked for; the cache then takes a full load again without sweeping it.
        for (var i = 0; i < 100; i++)
        {
            cache.Put($"/m/e{i}", FsStatus.NotFound, null, TimeSpan.FromSeconds(1), 2);
        }

        clock.Advance(TimeSpan.FromSeconds(2));
        for (var i = 0; i < 100; i++)
        {
            Assert.False(cache.TryGet($"/m/e{i}", out _, out _));
        }

        for (var i = 0; i < 100; i++)
        {
            cache.Put($"/m/g{i}", FsStatus.Ok, null, TimeSpan.FromMinutes(1), 2);
        }

        Assert.Equal(100, cache.Count);
        Assert.True(cache.TryGet("/m/g0", out _, out _));
    }
}
