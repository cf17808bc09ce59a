using GrainFs.Client;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Cluster;

public sealed class MountsSurviveRestartTests
{
    [Fact]
    public async Task Mounts_and_listings_survive_a_cluster_restart_in_postgres_mode()
    {
        var pg = await PostgresServer.Shared;
        var connection = await pg.CreateDatabaseAsync("restart");
        var folder = TestProcess.NewFolder("restart");
        var files = TestData.ImageFolder(folder, 2, 5);

        var cluster = await ClusterFixture.StartClusterAsync(connection, silos: 2);
        try
        {
            var client = GrainFsClient.Create(cluster.Client);
            Assert.True((await client.MountAsync("/kept", $"file://{folder}", new Dictionary<string, string> { ["readonly"] = "true" })).IsOk);
            Assert.Equal(5, await client.ListAsync("/kept/class00").CountAsync());
        }
        finally
        {
            await cluster.StopAllSilosAsync();
            await cluster.DisposeAsync();
        }

        // Removed from the folder while the cluster was down: the stored listing still names it, proving no re-list.
        File.Delete(Path.Combine(folder, "class00", "img0000.jpg"));
        var restarted = await ClusterFixture.StartClusterAsync(connection, silos: 2);
        try
        {
            var client = GrainFsClient.Create(restarted.Client);
            var mounts = (await client.GetMountsAsync(refresh: true)).GetValueOrThrow();
            var kept = Assert.Single(mounts.Mounts);
            Assert.Equal("/kept", kept.Path);
            Assert.True(kept.Options.ReadOnly);
            Assert.Equal(5, await client.ListAsync("/kept/class00").CountAsync());
            Assert.Equal(files["class01/img0002.jpg"], (await client.StatAsync("/kept/class01/img0002.jpg")).Value!.Size);
        }
        finally
        {
            await restarted.StopAllSilosAsync();
            await restarted.DisposeAsync();
        }
    }
}
