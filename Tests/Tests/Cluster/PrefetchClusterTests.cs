using System.Text.RegularExpressions;
using GrainFs.Client;
using GrainFs.Storage.Cache;
using GrainFs.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace GrainFs.Tests.Cluster;

/// <summary>
/// Announced read orders on a 3-silo cluster over a moto bucket of its own (its request log counts the GETs of each
/// object): the files are filled ahead of the reader, never more than the window ahead, each from S3 once, into the
/// reader's own host's worker when it has one (else the homes), and those workers rank them for eviction by the order
/// until it is read to the end and count prefetch fills and hits; a missing path is skipped; a cancelled order fetches
/// nothing more; a newer order of the same job replaces the older; two jobs' orders run side by side.
/// </summary>
public sealed class PrefetchClusterTests(GpuClusterFixture fixture) : IClassFixture<GpuClusterFixture>
{
    private const int FileSize = 64 * 1024;

    private async Task<(MotoServer Moto, string Bucket, GrainFsClient Client, string Mount, List<string> Paths)> BucketAsync(int files, string host = "no-such-host")
    {
        var moto = await MotoServer.StartAsync();
        var bucket = await moto.CreateBucketAsync("order");
        var random = new Random(files);
        for (var i = 0; i < files; i++)
        {
            var data = new byte[FileSize];
            random.NextBytes(data);
            await moto.PutAsync(bucket, $"ds/f{i:D3}.bin", data);
        }

        // By default a client on no silo's host: the fills land on the files' home workers, and its reads cross a data port.
        var client = Reader(host);
        var mount = "/order-" + Guid.NewGuid().ToString("N")[..6];
        Assert.True((await client.MountAsync(mount, $"s3://{bucket}/ds", moto.MountOptions)).IsOk);
        return (moto, bucket, client, mount, [.. Enumerable.Range(0, files).Select(i => $"{mount}/f{i:D3}.bin")]);
    }

    private GrainFsClient Reader(string host) =>
        GrainFsClient.Create(fixture.Cluster.Client, new GrainFsClientOptions { Host = host, ReadAheadBlocks = 0, ReplicateAfterReads = 0 });

    // Each worker's prefetch counts and blocks held, by silo.
    private Dictionary<string, (PrefetchCounts Prefetch, int Blocks)> Workers() =>
        fixture.SiloServices.ToDictionary(s => s.Key, s => (s.Value.GetRequiredService<TierStore>().GetReport().Prefetch, s.Value.GetRequiredService<TierStore>().Count));

    private async Task<long> WaitHitsAsync(Dictionary<string, (PrefetchCounts Prefetch, int Blocks)> before, long hits)
    {
        long Hits() => Workers().Sum(w => w.Value.Prefetch.Hits - before[w.Key].Prefetch.Hits);
        for (var i = 0; i < 200 && Hits() < hits; i++)
        {
            await Task.Delay(50); // short-circuit reads reach the worker in batches
        }

        return Hits();
    }

    private static int Gets(MotoServer moto, string bucket, int file) => Regex.Matches(moto.Log, $"\"GET /{bucket}/ds/f{file:D3}.bin HTTP").Count;

    private static async Task<PrefetchProgress> WaitFetchedAsync(PrefetchOrder order, int fetched)
    {
        for (var i = 0; i < 300 && order.Progress.Fetched < fetched; i++)
        {
            await Task.Delay(50);
        }

        Assert.True(order.Progress.Fetched >= fetched, $"{order.Progress.Fetched} of {fetched} files fetched");
        return order.Progress;
    }

    private static async Task ReadAsync(GrainFsClient client, string path)
    {
        var file = (await client.OpenAsync(path)).GetValueOrThrow();
        var read = await file.ReadAsync(0, new byte[FileSize]);
        Assert.True(read.IsOk && read.Value == FileSize, read.Message);
    }

    [Fact]
    public async Task Announced_files_are_fetched_ahead_of_the_reader_within_the_window_each_from_s3_once()
    {
        var (moto, bucket, client, mount, paths) = await BucketAsync(30);
        var before = Workers();
        await using (moto)
        {
            // A missing path is skipped with a warning, not an error.
            var order = client.Prefetch([.. paths.Take(15), mount + "/nope.bin", .. paths.Skip(15)], new PrefetchOptions { WindowBytes = 10 * FileSize, Parallel = 4 });

            // The window: ten files fetched, none of the rest, while nobody reads.
            await WaitFetchedAsync(order, 10);

            // The files' home workers rank their blocks by the order for eviction.
            for (var i = 0; i < 200 && OrderJobs().All(j => j != order.Job); i++)
            {
                await Task.Delay(50);
            }

            Assert.Contains(order.Job, OrderJobs());
            await Task.Delay(500);
            Assert.Equal(10, order.Progress.Fetched);
            Assert.Equal(10 * FileSize, order.Progress.Ahead);
            Assert.Equal(0, Gets(moto, bucket, 10));

            // The reader moves the window: each file it reaches was fetched before it got there, and only once.
            for (var i = 0; i < 30; i++)
            {
                await WaitFetchedAsync(order, Math.Min(30, i + 10));
                Assert.Equal(1, Gets(moto, bucket, i));
                await ReadAsync(client, paths[i]);
                Assert.Equal(1, Gets(moto, bucket, i));
            }

            await order.Completion.WaitAsync(TimeSpan.FromSeconds(30));
            // 31 announced (one missing), 30 fetched, and the reader reached the last of the order.
            var done = order.Progress;
            Assert.Equal((31, 1, 30, 31), (done.Files, done.Skipped, done.Fetched, done.Read));
            Assert.False(order.IsActive);
            Assert.Empty(client.PrefetchOrders);

            // Read to the end, the order is forgotten by the workers too.
            for (var i = 0; i < 200 && OrderJobs().Contains(order.Job); i++)
            {
                await Task.Delay(50);
            }

            Assert.DoesNotContain(order.Job, OrderJobs());

            // The home workers counted thirty prefetch fills, and a hit for each file the reader then asked for.
            Assert.Equal(30, Workers().Sum(w => w.Value.Prefetch.Fills - before[w.Key].Prefetch.Fills));
            Assert.Equal(30, await WaitHitsAsync(before, 30));
            Assert.Equal(0, Workers().Sum(w => w.Value.Prefetch.Wasted - before[w.Key].Prefetch.Wasted));
        }
    }

    [Fact]
    public async Task A_reader_on_a_silo_host_has_its_order_filled_into_that_hosts_worker_and_reads_it_there()
    {
        // Secondary_2 has the read and write roles: no block's home (homes are the gpu silos), but a worker on the
        // reader's host, so the order is filled there and read short-circuit.
        var (moto, bucket, client, _, paths) = await BucketAsync(12, host: "Secondary_2");
        var before = Workers();
        await using (moto)
        {
            var order = client.Prefetch(paths, new PrefetchOptions { Parallel = 4 });
            await WaitFetchedAsync(order, 12);
            var after = Workers();
            Assert.Equal(12, after["Secondary_2"].Blocks - before["Secondary_2"].Blocks);
            Assert.Equal(12, after["Secondary_2"].Prefetch.Fills - before["Secondary_2"].Prefetch.Fills);
            foreach (var silo in new[] { "Primary", "Secondary_1" })
            {
                Assert.Equal(before[silo].Blocks, after[silo].Blocks);
                Assert.Equal(before[silo].Prefetch.Fills, after[silo].Prefetch.Fills);
            }

            // Secondary_2's worker ranks the order's blocks for eviction.
            Assert.Contains(order.Job, fixture.SiloServices["Secondary_2"].GetRequiredService<TierStore>().Index.OrderJobs);

            for (var i = 0; i < 12; i++)
            {
                await ReadAsync(client, paths[i]);
                Assert.Equal(1, Gets(moto, bucket, i));
            }

            // Read where they were filled: nothing new on the homes, a hit for each on Secondary_2 once the client tells
            // its worker of its short-circuit reads.
            await client.ReportAccessAsync();
            Assert.Equal(12, await WaitHitsAsync(before, 12));
            var read = Workers();
            Assert.Equal(12, read["Secondary_2"].Prefetch.Hits - before["Secondary_2"].Prefetch.Hits);
            foreach (var silo in new[] { "Primary", "Secondary_1" })
            {
                Assert.Equal(before[silo].Blocks, read[silo].Blocks);
            }

            await order.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        }
    }

    [Fact]
    public async Task The_window_is_bounded_by_its_share_of_the_cache_it_fills()
    {
        var (moto, bucket, client, _, paths) = await BucketAsync(10, host: "Secondary_2");
        await using (moto)
        {
            // A share of Secondary_2's cache worth three files and a half: three are fetched ahead, however large the byte window.
            var capacity = fixture.SiloServices["Secondary_2"].GetRequiredService<TierStore>().Tiers.Sum(t => t.Capacity);
            var share = 3.5 * FileSize / capacity;
            var order = client.Prefetch(paths, new PrefetchOptions { WindowBytes = 1L << 40, WindowShare = share, Parallel = 4 });
            await WaitFetchedAsync(order, 3);
            await Task.Delay(500);
            Assert.Equal(3, order.Progress.Fetched);
            Assert.Equal((long)(capacity * share), order.Progress.Window);
            Assert.All(Enumerable.Range(3, 7), i => Assert.Equal(0, Gets(moto, bucket, i)));

            // A share that is not one is refused before anything starts.
            Assert.Throws<ArgumentOutOfRangeException>(() => client.Prefetch(paths, new PrefetchOptions { WindowShare = 1.5 }));
            order.Cancel();
        }
    }

    [Fact]
    public async Task Two_jobs_on_one_host_prefetch_their_own_orders_side_by_side_and_each_file_comes_from_s3_once()
    {
        var (moto, bucket, first, _, paths) = await BucketAsync(24);
        await using (moto)
        {
            // Two training processes on one host: the same files, one job reading them front to back, the other back to front.
            var second = Reader("no-such-host");
            var forward = first.Prefetch(paths, new PrefetchOptions { Job = "resnet", WindowBytes = 4 * FileSize, Parallel = 2 });
            var backward = second.Prefetch(Enumerable.Reverse(paths), new PrefetchOptions { Job = "vit", WindowBytes = 4 * FileSize, Parallel = 2 });
            await WaitFetchedAsync(forward, 4);
            await WaitFetchedAsync(backward, 4);

            // Each window holds the head of its own order, and the workers rank blocks by both orders at once.
            Assert.All(Enumerable.Range(0, 4).Concat(Enumerable.Range(20, 4)), i => Assert.Equal(1, Gets(moto, bucket, i)));
            Assert.All(Enumerable.Range(4, 16), i => Assert.Equal(0, Gets(moto, bucket, i)));
            for (var i = 0; i < 200 && !(OrderJobs().Contains("resnet") && OrderJobs().Contains("vit")); i++)
            {
                await Task.Delay(50);
            }

            Assert.Contains("resnet", OrderJobs());
            Assert.Contains("vit", OrderJobs());

            // Both read at once, each in its order: every file fetched from S3 once in all (single-flight, or held already).
            await Task.WhenAll(
                Task.Run(async () => { foreach (var path in paths) { await ReadAsync(first, path); } }),
                Task.Run(async () => { foreach (var path in Enumerable.Reverse(paths)) { await ReadAsync(second, path); } }));
            await Task.WhenAll(forward.Completion, backward.Completion).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.All(Enumerable.Range(0, 24), i => Assert.Equal(1, Gets(moto, bucket, i)));

            // Each order ended on its own reader's last file, and the workers forgot both.
            for (var i = 0; i < 200 && (OrderJobs().Contains("resnet") || OrderJobs().Contains("vit")); i++)
            {
                await Task.Delay(50);
            }

            Assert.DoesNotContain("resnet", OrderJobs());
            Assert.DoesNotContain("vit", OrderJobs());
        }
    }

    private List<string> OrderJobs() =>
        [.. fixture.SiloServices.Values.SelectMany(s => s.GetRequiredService<TierStore>().Index.OrderJobs)];

    [Fact]
    public async Task A_cancelled_or_replaced_order_fetches_nothing_more()
    {
        var (moto, bucket, client, _, paths) = await BucketAsync(20);
        await using (moto)
        {
            var order = client.Prefetch(paths, new PrefetchOptions { Job = "epoch", WindowBytes = 5 * FileSize, Parallel = 2 });
            await WaitFetchedAsync(order, 5);

            // A newer order of the job (the next epoch) replaces it: the first stops, the second starts from its own head.
            var next = client.Prefetch(Enumerable.Reverse(paths), new PrefetchOptions { Job = "epoch", WindowBytes = 5 * FileSize, Parallel = 2 });
            await order.Completion.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.False(order.IsActive);
            Assert.Same(next, Assert.Single(client.PrefetchOrders));
            await WaitFetchedAsync(next, 5);
            for (var i = 15; i < 20; i++)
            {
                Assert.Equal(1, Gets(moto, bucket, i));
            }

            next.Cancel();
            await next.Completion.WaitAsync(TimeSpan.FromSeconds(30));
            var fetched = Enumerable.Range(0, 20).Sum(i => Gets(moto, bucket, i));

            // Reading on does not wake a cancelled order.
            foreach (var path in paths.Skip(5).Take(5))
            {
                await ReadAsync(client, path);
            }

            await Task.Delay(500);
            Assert.Equal(fetched + 5, Enumerable.Range(0, 20).Sum(i => Gets(moto, bucket, i)));
            Assert.Equal(5, next.Progress.Fetched);
        }
    }
}
