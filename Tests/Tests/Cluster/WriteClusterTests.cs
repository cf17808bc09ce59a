using Amazon.S3;
using GrainFs.Client;
using GrainFs.DataPlane.Blocks;
using GrainFs.Storage.Cache;
using Microsoft.Extensions.DependencyInjection;

namespace GrainFs.Tests.Cluster;

/// <summary>
/// The write path on a real 3-silo cluster (PostgreSQL metadata, moto S3): only Secondary_2 has the write role, so every
/// written block must land there and nowhere else.
/// </summary>
public sealed class WriteClusterTests(GpuClusterFixture fixture) : IClassFixture<GpuClusterFixture>
{
    private const string WriteSilo = "Secondary_2";

    private static string Unique(string name) => $"/{name}-{Guid.NewGuid().ToString("N")[..6]}";

    /// <summary>A client on no silo's host: reads and writes cross data ports.</summary>
    private GrainFsClient Client(int cache = 10_000) =>
        GrainFsClient.Create(fixture.Cluster.Client, new GrainFsClientOptions { Host = "no-such-host", MetadataCacheEntries = cache });

    private static byte[] RandomBytes(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    private async Task<(GrainFsClient Client, string Mount, string Bucket)> MountBucketAsync(string name, Dictionary<string, string>? extra = null)
    {
        var client = Client();
        var bucket = await fixture.Moto.CreateBucketAsync(name);
        var options = new Dictionary<string, string>(fixture.Moto.MountOptions);
        foreach (var (key, value) in extra ?? [])
        {
            options[key] = value;
        }

        var mount = Unique(name);
        var mounted = await client.MountAsync(mount, $"s3://{bucket}", options);
        Assert.True(mounted.IsOk, mounted.Message);
        return (client, mount, bucket);
    }

    private async Task<byte[]?> ObjectAsync(string bucket, string key)
    {
        using var s3 = fixture.Moto.Client();
        try
        {
            using var response = await s3.GetObjectAsync(bucket, key);
            using var copy = new MemoryStream();
            await response.ResponseStream.CopyToAsync(copy);
            return copy.ToArray();
        }
        catch (AmazonS3Exception e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    private static async Task<byte[]> ReadAll(GrainFsClient client, string path)
    {
        var file = (await client.OpenAsync(path)).GetValueOrThrow();
        var data = new byte[file.Length];
        var read = await file.ReadAsync(0, data);
        Assert.True(read.IsOk, read.Message);
        Assert.Equal(data.Length, read.Value);
        return data;
    }

    /// <summary>The written blocks each silo's worker holds (unpersisted or not) for a file version.</summary>
    private Dictionary<string, int> HoldersOf(MountInfo mount, FsEntry entry)
    {
        var file = WriteTag.FileId(mount.BlockNamespace, string.Empty, entry.ETag, entry.Size, mount.Options.BlockSize);
        var count = (int)((entry.Size + mount.Options.BlockSize - 1) / mount.Options.BlockSize);
        var held = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (silo, services) in fixture.SiloServices)
        {
            var store = services.GetRequiredService<TierStore>();
            var n = Enumerable.Range(0, count).Count(i => store.TryPeek(BlockKey.For(file, i), out _));
            if (n > 0)
            {
                held[silo] = n;
            }
        }

        return held;
    }

    private static async Task<MountInfo> MountOf(GrainFsClient client, string mount) =>
        (await client.GetMountsAsync(refresh: true)).GetValueOrThrow().Mounts.Single(m => m.Path == mount);

    [Fact]
    public async Task Each_write_type_leaves_what_it_promises_in_S3_and_in_the_cache_after_close()
    {
        var (client, mount, bucket) = await MountBucketAsync("types", new() { ["block-size"] = "1MiB" });
        var info = await MountOf(client, mount);
        var data = RandomBytes((3 << 20) + 12345, 1);
        foreach (var type in new[] { WriteType.MustCache, WriteType.CacheThrough, WriteType.Through, WriteType.AsyncThrough })
        {
            var path = $"{mount}/{type}.bin";
            var written = await client.WriteFileAsync(path, new MemoryStream(data), new CreateOptions { WriteType = type });
            Assert.True(written.IsOk, written.Message);
            var entry = written.Value!;
            Assert.Equal(data.Length, entry.Size);
            var held = HoldersOf(info, entry);

            // Only the write-role silo ever takes written blocks (reads of a persisted file may cache it at its home later).
            Assert.All(held.Keys, silo => Assert.Equal(WriteSilo, silo));
            Assert.Equal(data, await ReadAll(Client(cache: 0), path));
            var inS3 = await ObjectAsync(bucket, $"{type}.bin");
            switch (type)
            {
                case WriteType.MustCache:
                    Assert.Null(inS3);
                    Assert.Equal(Persistence.CacheOnly, entry.Persistence);
                    Assert.Equal(4, held.GetValueOrDefault(WriteSilo));
                    break;
                case WriteType.CacheThrough:
                    Assert.Equal(data, inS3);
                    Assert.Equal(Persistence.Persisted, entry.Persistence);
                    Assert.Equal(4, held.GetValueOrDefault(WriteSilo));
                    break;
                case WriteType.Through:
                    Assert.Equal(data, inS3);
                    Assert.Equal(Persistence.Persisted, entry.Persistence);
                    Assert.Equal(0, held.GetValueOrDefault(WriteSilo));
                    break;
                case WriteType.AsyncThrough:
                    Assert.Equal(Persistence.Pending, entry.Persistence);
                    Assert.Equal(4, held.GetValueOrDefault(WriteSilo));
                    var persisted = await client.PersistAsync(path, TimeSpan.FromSeconds(60));
                    Assert.True(persisted.IsOk, persisted.Message);
                    Assert.Equal(data, await ObjectAsync(bucket, $"{type}.bin"));
                    break;
            }
        }
    }

    [Fact]
    public async Task A_file_written_at_any_offset_before_close_reads_back_whole_and_is_invisible_until_close()
    {
        var (client, mount, _) = await MountBucketAsync("seek", new() { ["block-size"] = "64KiB" });
        var path = $"{mount}/archive.zip";
        var writer = (await client.CreateAsync(path)).GetValueOrThrow();
        var expected = new byte[300_000];
        var tail = RandomBytes(200_000, 2);
        Assert.True((await writer.WriteAsync(100_000, tail)).IsOk);
        tail.CopyTo(expected, 100_000);
        var head = RandomBytes(1000, 3);
        Assert.True((await writer.WriteAsync(0, head)).IsOk);
        head.CopyTo(expected, 0);
        var patch = RandomBytes(70_000, 4);
        Assert.True((await writer.WriteAsync(60_000, patch)).IsOk);
        patch.CopyTo(expected, 60_000);
        Assert.Equal(FsStatus.NotFound, (await Client(cache: 0).StatAsync(path)).Status);
        var back = new byte[expected.Length];
        Assert.Equal(expected.Length, (await writer.ReadAsync(0, back)).Value);
        Assert.Equal(expected, back);
        Assert.True((await writer.CloseAsync()).IsOk);
        Assert.Equal(expected, await ReadAll(Client(cache: 0), path));
    }

    [Fact]
    public async Task Concurrent_exclusive_creators_of_one_path_one_wins_the_others_get_EEXIST()
    {
        var (client, mount, _) = await MountBucketAsync("excl");
        var path = $"{mount}/lock";
        var attempts = await Task.WhenAll(Enumerable.Range(0, 8).Select(async i =>
        {
            var created = await Client().CreateAsync(path, new CreateOptions { Exclusive = true });
            if (!created.IsOk)
            {
                return created.Status;
            }

            await using var writer = created.Value!;
            await writer.WriteAsync(0, new byte[] { (byte)i });
            return (await writer.CloseAsync()).Status;
        }));
        Assert.Equal(1, attempts.Count(s => s == FsStatus.Ok));
        Assert.Equal(7, attempts.Count(s => s == FsStatus.Exists));
        Assert.Equal(FsStatus.Exists, (await client.CreateAsync(path, new CreateOptions { Exclusive = true })).Status);

        // Without O_EXCL the last close wins.
        var first = (await client.CreateAsync(path)).GetValueOrThrow();
        var second = (await client.CreateAsync(path)).GetValueOrThrow();
        await first.WriteAsync(0, "first"u8.ToArray());
        await second.WriteAsync(0, "second"u8.ToArray());
        Assert.True((await second.CloseAsync()).IsOk);
        Assert.True((await first.CloseAsync()).IsOk);
        Assert.Equal("first"u8.ToArray(), await ReadAll(Client(cache: 0), path));
    }

    [Fact]
    public async Task A_write_over_quota_fails_with_EDQUOT_and_leaves_nothing_behind()
    {
        var (client, mount, bucket) = await MountBucketAsync("quota", new() { ["quota-bytes"] = "1MiB", ["quota-files"] = "3", ["block-size"] = "256KiB" });
        var info = await MountOf(client, mount);
        var small = await client.WriteFileAsync($"{mount}/small", new MemoryStream(RandomBytes(500_000, 5)));
        Assert.True(small.IsOk, small.Message);
        var over = await client.WriteFileAsync($"{mount}/over", new MemoryStream(RandomBytes(2 << 20, 6)));
        Assert.Equal(FsStatus.QuotaExceeded, over.Status);
        Assert.Contains("quota-bytes", over.Message, StringComparison.Ordinal);
        Assert.Equal(FsStatus.NotFound, (await Client(cache: 0).StatAsync($"{mount}/over")).Status);
        Assert.Null(await ObjectAsync(bucket, "over"));
        var usage = await client.Grains.GetGrain<IMountUsageGrain>(info.Id).GetAsync();
        Assert.Equal((500_000L, 1L), usage);

        // Files count too, and removing a file gives its share back.
        Assert.True((await client.WriteFileAsync($"{mount}/b", new MemoryStream([1]))).IsOk);
        Assert.True((await client.WriteFileAsync($"{mount}/c", new MemoryStream([1]))).IsOk);
        Assert.Equal(FsStatus.QuotaExceeded, (await client.WriteFileAsync($"{mount}/d", new MemoryStream([1]))).Status);
        Assert.True((await client.RemoveAsync($"{mount}/b")).IsOk);
        Assert.True((await client.WriteFileAsync($"{mount}/d", new MemoryStream([1]))).IsOk);
    }

    [Fact]
    public async Task Namespace_operations_give_the_errors_POSIX_gives()
    {
        var (client, mount, bucket) = await MountBucketAsync("ns");
        Assert.True((await client.MakeDirectoryAsync($"{mount}/a/b/c", parents: true)).IsOk);
        Assert.NotNull(await ObjectAsync(bucket, "a/b/c/"));
        Assert.Equal(FsStatus.Exists, (await client.MakeDirectoryAsync($"{mount}/a")).Status);
        Assert.True((await client.WriteFileAsync($"{mount}/a/b/c/f", new MemoryStream([1, 2, 3]), new CreateOptions { WriteType = WriteType.CacheThrough })).IsOk);
        Assert.Equal(FsStatus.NotEmpty, (await client.RemoveEntryAsync($"{mount}/a/b/c", directory: true)).Status);
        Assert.Equal(FsStatus.IsADirectory, (await client.RemoveEntryAsync($"{mount}/a/b", directory: false)).Status);
        Assert.Equal(FsStatus.NotADirectory, (await client.RemoveEntryAsync($"{mount}/a/b/c/f", directory: true)).Status);
        Assert.Equal(FsStatus.IsADirectory, (await client.CreateAsync($"{mount}/a")).Status);
        Assert.Equal(FsStatus.NotFound, (await client.CreateAsync($"{mount}/nope/f")).Status);

        // A file renamed on S3 is copied and deleted; the old name is gone, the new one reads the same bytes.
        var moved = await client.RenameAsync($"{mount}/a/b/c/f", $"{mount}/a/g");
        Assert.True(moved.IsOk, moved.Message);
        Assert.Equal([1, 2, 3], await ReadAll(Client(cache: 0), $"{mount}/a/g"));
        Assert.Null(await ObjectAsync(bucket, "a/b/c/f"));
        Assert.Equal([1, 2, 3], await ObjectAsync(bucket, "a/g"));
        Assert.Equal(FsStatus.NotFound, (await Client(cache: 0).StatAsync($"{mount}/a/b/c/f")).Status);
        Assert.Equal(FsStatus.NotSupported, (await client.RenameAsync($"{mount}/a/b", $"{mount}/z")).Status);

        var (_, other, _) = await MountBucketAsync("ns2");
        Assert.Equal(FsStatus.CrossDevice, (await client.RenameAsync($"{mount}/a/g", $"{other}/g")).Status);

        Assert.True((await client.RemoveAsync($"{mount}/a", recursive: true)).IsOk);
        Assert.Equal(FsStatus.NotFound, (await Client(cache: 0).StatAsync($"{mount}/a")).Status);
        Assert.Null(await ObjectAsync(bucket, "a/g"));
        Assert.Null(await ObjectAsync(bucket, "a/b/c/"));

        var ro = Unique("ro");
        var roBucket = await fixture.Moto.CreateBucketAsync("ro");
        Assert.True((await client.MountAsync(ro, $"s3://{roBucket}", new Dictionary<string, string>(fixture.Moto.MountOptions) { ["readonly"] = "true" })).IsOk);
        Assert.Equal(FsStatus.ReadOnly, (await client.CreateAsync($"{ro}/x")).Status);
        Assert.Equal(FsStatus.ReadOnly, (await client.MakeDirectoryAsync($"{ro}/d")).Status);
    }

    [Fact]
    public async Task Attributes_set_on_written_files_and_directories_are_kept_in_GrainFS_metadata()
    {
        var (client, mount, _) = await MountBucketAsync("attrs");
        Assert.True((await client.MakeDirectoryAsync($"{mount}/d")).IsOk);
        var writer = (await client.CreateAsync($"{mount}/d/f", new CreateOptions { Mode = 0x180, Uid = 1234, Gid = 5678 })).GetValueOrThrow();
        await writer.WriteAsync(0, new byte[] { 9 });
        var mtime = new DateTime(2020, 5, 6, 7, 8, 9, DateTimeKind.Utc);
        Assert.Equal(FsStatus.Ok, writer.SetAttributes(new AttributeChange(MtimeUtc: mtime)));
        Assert.True((await writer.CloseAsync()).IsOk);
        var stat = (await Client(cache: 0).StatAsync($"{mount}/d/f")).GetValueOrThrow();
        Assert.Equal((0x180, 1234, 5678, mtime), (stat.Mode, stat.Uid, stat.Gid, stat.MtimeUtc));

        Assert.True((await client.SetAttributesAsync($"{mount}/d", new AttributeChange(Mode: 0x1C0, Uid: 42, Gid: 43))).IsOk);
        var dir = (await Client(cache: 0).StatAsync($"{mount}/d")).GetValueOrThrow();
        Assert.Equal((0x1C0, 42, 43), (dir.Mode, dir.Uid, dir.Gid));

        Assert.Equal(FsStatus.NotPermitted, (await client.SetAttributesAsync($"{mount}/d/f", new AttributeChange(Size: 5))).Status);
        var truncated = await client.SetAttributesAsync($"{mount}/d/f", new AttributeChange(Size: 0));
        Assert.True(truncated.IsOk, truncated.Message);
        Assert.Equal(0, (await Client(cache: 0).StatAsync($"{mount}/d/f")).GetValueOrThrow().Size);
    }

    [Fact]
    public async Task Blocks_of_a_writer_that_never_closes_are_freed_once_abandoned_and_nothing_becomes_visible()
    {
        var (client, mount, _) = await MountBucketAsync("orphan", new() { ["block-size"] = "64KiB" });
        var info = await MountOf(client, mount);
        var writer = (await client.CreateAsync($"{mount}/never-closed")).GetValueOrThrow();
        Assert.True((await writer.WriteAsync(0, RandomBytes(200_000, 7))).IsOk);
        Assert.True((await writer.FlushAsync()).IsOk);
        var version = new FsEntry("never-closed", FsKind.File, 200_000, DateTime.UtcNow, writer.Tag, 0);
        Assert.Equal(4, HoldersOf(info, version).GetValueOrDefault(WriteSilo));

        // The writer is gone (its process died): past the abandon time, the worker's sweep frees what no seal covers.
        fixture.Clock.Advance(TimeSpan.FromMinutes(11));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (HoldersOf(info, version).Count > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
        }

        Assert.Empty(HoldersOf(info, version));
        Assert.Equal(FsStatus.NotFound, (await Client(cache: 0).StatAsync($"{mount}/never-closed")).Status);
    }
}
