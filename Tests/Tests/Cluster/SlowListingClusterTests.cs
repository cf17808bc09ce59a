using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Cluster;

/// <summary>Silos that answer a call after 1 ms of a directory's listing from under-storage, however long it goes on.</summary>
public sealed class SlowListingFixture : ClusterFixture
{
    protected override IReadOnlyDictionary<string, string>? Settings => new Dictionary<string, string> { ["GrainFs:Namespace:SyncAnswerWait"] = "00:00:00.001" };
}

/// <summary>
/// A directory whose listing from under-storage outlasts a grain call (millions of objects under one prefix take
/// minutes) is answered EBUSY while the listing goes on, and the SDK asks again until it is done: no call times out.
/// </summary>
public sealed class SlowListingClusterTests(SlowListingFixture fixture) : IClassFixture<SlowListingFixture>
{
    [Fact]
    public async Task A_listing_that_outlasts_a_call_is_answered_busy_and_the_sdk_waits_it_out()
    {
        const int Files = 30_000;
        var folder = TestProcess.NewFolder("slow-listing");
        for (var i = 0; i < Files; i++)
        {
            File.Create(Path.Combine(folder, $"f{i:D6}")).Dispose();
        }

        var client = fixture.NewClient(cache: false);
        var path = "/slow-" + Guid.NewGuid().ToString("N")[..6];
        var mounted = await client.MountAsync(path, $"file://{folder}");
        Assert.Equal(FsStatus.Ok, mounted.Status);

        // The grain answers within its wait while the listing of 30,000 entries goes on.
        var root = client.Grains.GetGrain<IDirectoryGrain>(new DirectoryKey(mounted.Value!.Id, 0, string.Empty).ToString());
        var first = await root.ListAsync(null, 1000);
        Assert.Equal(FsStatus.Busy, first.Status);
        Assert.Contains("still listing", first.Message, StringComparison.Ordinal);

        // The SDK asks again until the listing is done, and then has every entry.
        var names = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var entry in client.ListAsync(path))
        {
            Assert.True(names.Add(entry.Name), $"{entry.Name} listed twice");
        }

        Assert.Equal(Files, names.Count);
        Assert.Equal(FsStatus.Ok, (await client.StatAsync(path + "/f029999")).Status);
    }
}
