using GrainFs.Client;
using GrainFs.Tests.Infrastructure;
using Npgsql;

namespace GrainFs.Tests.Cluster;

/// <summary>The metadata store (PostgreSQL) failing while a directory is re-listed.</summary>
public sealed class MetadataStoreFaultTests
{
    [Fact]
    public async Task A_re_list_the_store_cannot_keep_serves_the_cached_entries_and_is_kept_once_the_store_is_back()
    {
        var connection = await (await PostgresServer.Shared).CreateDatabaseAsync("pgfault");
        var clock = new TestClock();
        var cluster = await ClusterFixture.StartClusterAsync(connection, silos: 1, clock: clock);
        try
        {
            var client = GrainFsClient.Create(cluster.Client);
            var folder = TestProcess.NewFolder("pgfault");
            await File.WriteAllTextAsync(Path.Combine(folder, "before.txt"), "x");
            Assert.True((await client.MountAsync("/pg", $"file://{folder}", new Dictionary<string, string> { ["sync-interval"] = "60", ["readonly"] = "true" })).IsOk);
            Assert.Equal(["before.txt"], await NamesAsync(client));

            // PostgreSQL refuses every save of a directory from now on (a real error of the server: the table is gone).
            await using (var sql = new NpgsqlConnection(connection))
            {
                await sql.OpenAsync();
                await new NpgsqlCommand("alter table grainfs_directories rename to grainfs_directories_away", sql).ExecuteNonQueryAsync();
            }

            await File.WriteAllTextAsync(Path.Combine(folder, "after.txt"), "y");
            clock.Advance(TimeSpan.FromSeconds(61));
            // The re-list fails to be kept: the cached entries are served (before: EIO for the listing).
            Assert.Equal(["before.txt"], await NamesAsync(client));

            await using (var sql = new NpgsqlConnection(connection))
            {
                await sql.OpenAsync();
                await new NpgsqlCommand("alter table grainfs_directories_away rename to grainfs_directories", sql).ExecuteNonQueryAsync();
            }

            // After the retry delay the next access lists again, and the store keeps it.
            clock.Advance(TimeSpan.FromSeconds(2));
            var names = await NamesAsync(client);
            for (var i = 0; i < 50 && names.Count < 2; i++)
            {
                await Task.Delay(100);
                clock.Advance(TimeSpan.FromSeconds(1));
                names = await NamesAsync(client);
            }

            Assert.Equal(["after.txt", "before.txt"], names);
        }
        finally
        {
            await cluster.StopAllSilosAsync();
            await cluster.DisposeAsync();
        }
    }

    private static async Task<List<string>> NamesAsync(GrainFsClient client)
    {
        var page = await client.ListPageAsync("/pg");
        Assert.True(page.IsOk, page.Message);
        return [.. page.Value!.Entries.Select(e => e.Name).Order(StringComparer.Ordinal)];
    }
}
