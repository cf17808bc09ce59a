using System.Text.RegularExpressions;
using GrainFs.Client;
using GrainFs.Storage.Cache;
using GrainFs.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace GrainFs.Tests.Cluster;

/// <summary>
/// Announced read orders on a 3-silo cluster over a moto bucket of its own (its request log counts the GETs of each
/// object): the files are filled ahead of the reader, never more than the window ahead, each from S3 once, and their
/// home workers rank them for eviction by the order until it is read to the end; a missing path is skipped; a cancelled
/// order fetches nothing more; a newer order of the same job replaces the older.
/// </summary>
public sealed class PrefetchClusterTests(GpuClusterFixture fixture) : IClassFixture<GpuClusterFixture>
{
    private const int FileSize = 64 * 1024;

    private async Task<(MotoServer Moto, string Bucket, GrainFsClient Client, string Mount, List<string> Paths)> BucketAsync(int files)
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

        // A client on no silo's host: the fills land on the files' home workers, and its reads cross a data port.
        var client = GrainFsClient.Create(fixture.Cluster.Client, new GrainFsClientOptions { Host = "no-such-host", ReadAheadBlocks = 0, ReplicateAfterReads = 0 });
        var mount = "/order-" + Guid.NewGuid().ToString("N")[..6];
        Assert.True((await client.MountAsync(mount, $"s3://{bucket}/ds", moto.MountOptions)).IsOk);
        return (moto, bucket, client, mount, [.. Enumerable.Range(0, files).Select(i => $"{mount}/f{i:D3}.bin")]);
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
        }
    }

    private List<string?> OrderJobs() =>
        [.. fixture.SiloServices.Values.Select(s => s.GetRequiredService<TierStore>().Index.OrderJob)];

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
