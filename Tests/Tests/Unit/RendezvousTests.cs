using GrainFs.DataPlane.Blocks;

namespace GrainFs.Tests.Unit;

public class RendezvousTests
{
    [Fact]
    public void Homes_spread_evenly_and_move_little_when_a_silo_leaves_or_joins()
    {
        string[] five = ["gpu-1", "gpu-2", "gpu-3", "gpu-4", "gpu-5"];
        string[] four = ["gpu-1", "gpu-2", "gpu-4", "gpu-5"];
        string[] six = [.. five, "gpu-6"];
        var keys = Enumerable.Range(0, 20_000).Select(i => new BlockKey(0xABCDEF, (ulong)(i / 10), i % 10)).ToList();
        var counts = new int[five.Length];
        int movedOnLeave = 0, movedOnJoin = 0;
        foreach (var key in keys)
        {
            var home = five[Rendezvous.Pick(key, five)];
            counts[Array.IndexOf(five, home)]++;
            var afterLeave = four[Rendezvous.Pick(key, four)];
            if (home != "gpu-3")
            {
                Assert.Equal(home, afterLeave);
            }
            else
            {
                movedOnLeave++;
            }

            var afterJoin = six[Rendezvous.Pick(key, six)];
            if (afterJoin != home)
            {
                Assert.Equal("gpu-6", afterJoin);
                movedOnJoin++;
            }
        }

        Assert.All(counts, c => Assert.InRange(c, 3400, 4600));
        Assert.InRange(movedOnLeave, 3400, 4600);
        Assert.InRange(movedOnJoin, 2800, 3900);
        Assert.Equal(-1, Rendezvous.Pick(keys[0], []));
    }

    [Fact]
    public void Block_keys_change_with_the_file_version_and_round_trip_as_text()
    {
        var v1 = BlockKey.FileId("s3://b/p", "a/x.jpg", "etag1", 100, 4 << 20);
        var v2 = BlockKey.FileId("s3://b/p", "a/x.jpg", "etag2", 100, 4 << 20);
        Assert.NotEqual(v1, v2);
        var key = BlockKey.For(v1, 7);
        Assert.True(BlockKey.TryParse(key.ToString(), out var parsed));
        Assert.Equal(key, parsed);
        Assert.False(BlockKey.TryParse("nope", out _));
    }
}
