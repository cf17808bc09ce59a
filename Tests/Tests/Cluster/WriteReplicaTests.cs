using Amazon.S3;
using GrainFs.Client;

namespace GrainFs.Tests.Cluster;

/// <summary>Two write workers on two hosts, persisting slowly (64 KiB/s each), so acknowledged files are still pending when one dies.</summary>
public sealed class ReplicaClusterFixture : ClusterFixture
{
    protected override IReadOnlyDictionary<string, string>? Roles => new Dictionary<string, string>
    {
        ["Primary"] = "gpu,read",
        ["Secondary_1"] = "read,write",
        ["Secondary_2"] = "read,write",
    };

    protected override IReadOnlyDictionary<string, string>? Settings => new Dictionary<string, string>
    {
        ["GrainFs:Persist:Rate"] = "64KiB",
    };
}

public sealed class WriteReplicaTests(ReplicaClusterFixture fixture) : IClassFixture<ReplicaClusterFixture>
{
    [Fact]
    public async Task With_write_replicas_2_a_write_worker_killed_for_good_loses_no_acknowledged_file()
    {
        var client = GrainFsClient.Create(fixture.Cluster.Client, new GrainFsClientOptions { Host = "no-such-host", MetadataCacheEntries = 0 });
        var bucket = await fixture.Moto.CreateBucketAsync("replicas");
        var mount = "/replicas";
        var mounted = await client.MountAsync(mount, $"s3://{bucket}", new Dictionary<string, string>(fixture.Moto.MountOptions) { ["write-replicas"] = "2", ["block-size"] = "256KiB" });
        Assert.True(mounted.IsOk, mounted.Message);

        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        string? primary = null;
        for (var i = 0; i < 6; i++)
        {
            var data = new byte[40_000 + (i * 60_000)];
            new Random(i).NextBytes(data);
            var written = await client.WriteFileAsync($"{mount}/f{i}", new MemoryStream(data));
            Assert.True(written.IsOk, written.Message);
            Assert.Equal(2, written.Value!.Holders!.Length);
            Assert.NotEqual(written.Value.Holders[0], written.Value.Holders[1]);
            primary ??= written.Value.Holders[0];
            files[$"f{i}"] = data;
        }

        // Acknowledged and mostly pending: the primary write worker dies and never comes back.
        var pending = 0;
        foreach (var name in files.Keys)
        {
            pending += (await client.StatAsync($"{mount}/{name}")).GetValueOrThrow().Persistence == Persistence.Pending ? 1 : 0;
        }

        Assert.True(pending > 0, "every file was persisted before the kill: the test proves nothing");
        var victim = fixture.Cluster.Silos.Single(s => s.Name == primary);
        await fixture.Cluster.KillSiloAsync(victim);

        using var s3 = fixture.Moto.Client();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
        var landed = new HashSet<string>(StringComparer.Ordinal);
        while (landed.Count < files.Count && DateTime.UtcNow < deadline)
        {
            foreach (var (name, data) in files)
            {
                if (landed.Contains(name))
                {
                    continue;
                }

                try
                {
                    using var response = await s3.GetObjectAsync(bucket, name);
                    using var copy = new MemoryStream();
                    await response.ResponseStream.CopyToAsync(copy);
                    if (copy.ToArray().AsSpan().SequenceEqual(data))
                    {
                        landed.Add(name);
                    }
                }
                catch (AmazonS3Exception e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
                {
                    // Not yet.
                }
            }

            await Task.Delay(500);
        }

        Assert.Equal(files.Keys.Order(StringComparer.Ordinal), landed.Order(StringComparer.Ordinal));
    }
}
