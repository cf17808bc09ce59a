using GrainFs.Client;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Cluster;

/// <summary>The namespace on a real 3-silo cluster with a PostgreSQL metadata store, local folders and a moto bucket.</summary>
public sealed class NamespaceClusterTests(ClusterFixture fixture) : IClassFixture<ClusterFixture>
{
    /// <summary>A client without a metadata cache whose mount table is fetched on first use (after the test's mounts).</summary>
    private GrainFsClient Uncached() => fixture.NewClient(cache: false);

    private static string Unique(string name) => $"/{name}-{Guid.NewGuid().ToString("N")[..6]}";

    private static async Task<Dictionary<string, long>> ListFilesRecursively(GrainFsClient client, string root)
    {
        var files = new Dictionary<string, long>(StringComparer.Ordinal);
        var pending = new Stack<string>([root]);
        while (pending.Count > 0)
        {
            var dir = pending.Pop();
            await foreach (var entry in client.ListAsync(dir))
            {
                var full = FsPath.Combine(dir, entry.Name);
                if (entry.IsDirectory)
                {
                    pending.Push(full);
                }
                else
                {
                    Assert.True(files.TryAdd(full[(root.Length + 1)..], entry.Size), $"{full} listed twice");
                }
            }
        }

        return files;
    }

    [Fact]
    public async Task A_mount_of_an_endpoint_that_never_answers_does_not_hold_up_lookups()
    {
        // An S3 endpoint that takes connections and says nothing for 4 s, then hangs up.
        using var blackhole = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        blackhole.Start();
        var port = ((System.Net.IPEndPoint)blackhole.LocalEndpoint).Port;
        using var stop = new CancellationTokenSource();
        var held = Task.Run(async () =>
        {
            var open = new List<Task>();
            try
            {
                while (true)
                {
                    var socket = await blackhole.AcceptSocketAsync(stop.Token);
                    open.Add(Task.Delay(TimeSpan.FromSeconds(4)).ContinueWith(_ => socket.Dispose(), TaskScheduler.Default));
                }
            }
            catch (OperationCanceledException)
            {
            }

            await Task.WhenAll(open);
        });

        var client = fixture.NewClient(cache: false);
        var pending = client.MountAsync(Unique("blackhole"), "s3://never/data", new Dictionary<string, string>
        {
            ["endpoint"] = $"http://127.0.0.1:{port}",
            ["access-key"] = "k",
            ["secret-key"] = "s",
        }).AsTask();
        await Task.Delay(500);
        Assert.False(pending.IsCompleted);

        // Meanwhile the table answers at once, as every lookup of a fresh client needs it.
        var table = fixture.Cluster.Client.GetGrain<IMountTableGrain>(IMountTableGrain.Key);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await table.GetTableAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(2));
        await table.GetVersionAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(2));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"the table answered after {clock.Elapsed}");
        Assert.False(pending.IsCompleted);

        // The mount itself fails, naming the endpoint's silence, and leaves no mount behind.
        var result = await pending.WaitAsync(TimeSpan.FromSeconds(45));
        Assert.False(result.IsOk);
        Assert.Contains("never", result.Message, StringComparison.Ordinal);
        await stop.CancelAsync();
        await held;
    }

    [Fact]
    public async Task A_bucket_and_a_folder_mounted_side_by_side_list_exactly_their_files()
    {
        var folder = TestProcess.NewFolder("side");
        var expected = TestData.ImageFolder(folder, classes: 4, perClass: 30);
        var bucket = await fixture.Moto.CreateBucketAsync("side");
        await fixture.Moto.UploadFolderAsync(folder, bucket, "train");
        var client = fixture.NewClient();
        var local = Unique("local");
        var s3 = Unique("s3");
        Assert.Equal(FsStatus.Ok, (await client.MountAsync(local, $"file://{folder}")).Status);
        var mounted = await client.MountAsync(s3, $"s3://{bucket}/train", fixture.Moto.MountOptions);
        Assert.True(mounted.IsOk, mounted.Message);

        Assert.Equal(expected.OrderBy(x => x.Key), (await ListFilesRecursively(client, local)).OrderBy(x => x.Key));
        Assert.Equal(expected.OrderBy(x => x.Key), (await ListFilesRecursively(client, s3)).OrderBy(x => x.Key));

        var stat = await client.StatAsync($"{s3}/class01/img0003.jpg");
        Assert.True(stat.IsOk, stat.Message);
        Assert.Equal(expected["class01/img0003.jpg"], stat.Value!.Size);
        Assert.Equal(32, stat.Value.ETag.Length);

        var mounts = (await client.GetMountsAsync(refresh: true)).GetValueOrThrow();
        var shown = Assert.Single(mounts.Mounts, m => m.Path == s3);
        Assert.Equal(Infrastructure.MotoServer.SecretKey.Length > 0 ? "***" : string.Empty, shown.Options.Properties["secret-key"]);

        var root = await client.ListPageAsync("/");
        Assert.Contains(root.Value!.Entries, e => e.Name == local[1..] && e.IsDirectory);
    }

    [Fact]
    public async Task Mount_conflicts_and_bad_input_are_refused_with_clear_errors()
    {
        var client = fixture.NewClient();
        var folder = TestProcess.NewFolder("conflict");
        var path = Unique("m");
        Assert.Equal(FsStatus.Ok, (await client.MountAsync(path, $"file://{folder}")).Status);

        async Task Refused(string mountPath, string uri, FsStatus status, string words, Dictionary<string, string>? options = null)
        {
            var result = await client.MountAsync(mountPath, uri, options);
            Assert.Equal(status, result.Status);
            Assert.Contains(words, result.Message, StringComparison.Ordinal);
        }

        var other = TestProcess.NewFolder("other");
        await Refused(path, $"file://{other}", FsStatus.Exists, "already a mount point");
        await Refused(path + "/nested", $"file://{other}", FsStatus.InvalidArgument, "nested mounts are not allowed");
        await Refused("relative", $"file://{other}", FsStatus.InvalidArgument, "not absolute");
        await Refused("/x/../y", $"file://{other}", FsStatus.InvalidArgument, "'..'");
        await Refused("/", $"file://{other}", FsStatus.InvalidArgument, "root is virtual");
        await Refused("/" + new string('n', 300), $"file://{other}", FsStatus.NameTooLong, "255");
        await Refused(Unique("q"), "nosuch://x", FsStatus.InvalidArgument, "unsupported under-storage scheme 'nosuch'");
        await Refused(Unique("q"), $"file://{other}", FsStatus.InvalidArgument, "unknown mount option 'nosuchoption'", new() { ["nosuchoption"] = "1" });
        await Refused(Unique("q"), $"file://{other}/does-not-exist", FsStatus.NotFound, "no such directory");
        await Refused(Unique("q"), "s3://no-such-bucket-x", FsStatus.NotFound, "no such bucket", new(fixture.Moto.MountOptions));
        await Refused(Unique("q"), $"file://{folder}", FsStatus.InvalidArgument, "overlaps");
        Assert.Equal(FsStatus.Ok, (await client.MountAsync(Unique("ro"), $"file://{other}", new Dictionary<string, string> { ["readonly"] = "true" })).Status);
        Assert.Equal(FsStatus.Ok, (await client.MountAsync(Unique("ro"), $"file://{other}", new Dictionary<string, string> { ["readonly"] = "true" })).Status);

        var unmount = await client.UnmountAsync(Unique("never"));
        Assert.Equal(FsStatus.NotFound, unmount.Status);
        Assert.Contains("not a mount point", unmount.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stat_reports_errno_values_for_every_kind_of_miss()
    {
        var folder = TestProcess.NewFolder("errs");
        Directory.CreateDirectory(Path.Combine(folder, "d"));
        await File.WriteAllTextAsync(Path.Combine(folder, "d", "f"), "x");
        var client = fixture.NewClient();
        var m = Unique("errs");
        await client.MountAsync(m, $"file://{folder}");

        Assert.Equal(FsStatus.Ok, (await client.StatAsync($"{m}/d/f")).Status);
        Assert.True((await client.StatAsync($"{m}/d")).Value!.IsDirectory);
        Assert.True((await client.StatAsync(m)).Value!.IsDirectory);
        Assert.True((await client.StatAsync("/")).Value!.IsDirectory);
        Assert.Equal(FsStatus.NotFound, (await client.StatAsync($"{m}/d/nope")).Status);
        Assert.Equal(FsStatus.NotFound, (await client.StatAsync($"{m}/nodir/f")).Status);
        Assert.Equal(FsStatus.NotADirectory, (await client.StatAsync($"{m}/d/f/g")).Status);
        Assert.Equal(FsStatus.NotFound, (await client.StatAsync("/not-mounted/x")).Status);
        Assert.Equal(FsStatus.InvalidArgument, (await client.StatAsync("relative/x")).Status);
        Assert.Equal(FsStatus.InvalidArgument, (await client.StatAsync($"{m}/../etc/passwd")).Status);
        Assert.Equal(FsStatus.NameTooLong, (await client.StatAsync($"{m}/" + new string('x', 256))).Status);
        Assert.Equal(FsStatus.NotADirectory, (await client.ListPageAsync($"{m}/d/f")).Status);
    }

    [Fact]
    public async Task A_directory_larger_than_the_threshold_is_sharded_and_still_listed_and_resolved_exactly()
    {
        var folder = TestProcess.NewFolder("big");
        const int count = 1500;
        for (var i = 0; i < count; i++)
        {
            await File.WriteAllTextAsync(Path.Combine(folder, $"n{i:D5}.JPEG"), new string('x', i % 50));
        }

        var client = fixture.NewClient();
        var m = Unique("big");
        await client.MountAsync(m, $"file://{folder}");
        var names = new List<string>();
        string? cursor = null;
        var pages = 0;
        do
        {
            var page = (await client.ListPageAsync(m, cursor, 100)).GetValueOrThrow();
            names.AddRange(page.Entries.Select(e => e.Name));
            cursor = page.NextCursor;
            pages++;
        }
        while (cursor is not null);

        Assert.Equal(count, names.Count);
        Assert.Equal(count, names.Distinct(StringComparer.Ordinal).Count());
        Assert.True(pages >= count / 100, $"{pages} pages");
        var management = fixture.Cluster.Client.GetGrain<IManagementGrain>(0);
        var stats = await management.GetSimpleGrainStatistics();
        var directoryGrains = stats.Where(s => s.GrainType.Contains("DirectoryGrain", StringComparison.Ordinal)).Sum(s => s.ActivationCount);
        Assert.True(directoryGrains >= 1 + (count / 100), $"expected the directory split into shards, saw {directoryGrains} directory grains");

        foreach (var i in new[] { 0, 1, 777, 1499 })
        {
            var stat = await Uncached().StatAsync($"{m}/n{i:D5}.JPEG");
            Assert.True(stat.IsOk, stat.Message);
            Assert.Equal(i % 50, stat.Value!.Size);
        }

        Assert.Equal(FsStatus.NotFound, (await Uncached().StatAsync($"{m}/n99999.JPEG")).Status);

        // The head answers a lookup with the shard count instead of calling the shard: callers route to shards.
        var mount = (await client.GetMountsAsync()).Value!.Mounts.Single(x => x.Path == m);
        var head = await fixture.Cluster.Client.GetGrain<IDirectoryGrain>(new DirectoryKey(mount.Id, 0, string.Empty).ToString()).LookupAsync("n00777.JPEG");
        Assert.Equal(FsStatus.Stale, head.Status);
        Assert.True(head.ShardCount > 1);
        var shard = await fixture.Cluster.Client.GetGrain<IDirectoryGrain>(new DirectoryKey(mount.Id, DirectoryKey.ShardOf("n00777.JPEG", head.ShardCount), string.Empty).ToString()).LookupAsync("n00777.JPEG");
        Assert.Equal(FsStatus.Ok, shard.Status);
        Assert.Equal(777 % 50, shard.Entry!.Size);
    }

    [Fact]
    public async Task Idle_directories_deactivate_and_come_back_from_the_store_without_relisting()
    {
        var folder = TestProcess.NewFolder("idle");
        await File.WriteAllTextAsync(Path.Combine(folder, "first"), "1");
        var client = fixture.NewClient();
        var m = Unique("idle");
        await client.MountAsync(m, $"file://{folder}");
        Assert.Equal(FsStatus.Ok, (await Uncached().StatAsync($"{m}/first")).Status);

        // A file added behind GrainFS's back: with sync-interval -1 only a re-list would find it.
        await File.WriteAllTextAsync(Path.Combine(folder, "second"), "2");
        var management = fixture.Cluster.Client.GetGrain<IManagementGrain>(0);
        await management.ForceActivationCollection(TimeSpan.Zero);

        Assert.Equal(FsStatus.Ok, (await Uncached().StatAsync($"{m}/first")).Status);
        Assert.Equal(FsStatus.NotFound, (await Uncached().StatAsync($"{m}/second")).Status);
    }

    [Fact]
    public async Task A_sync_interval_picks_up_changes_and_never_keeps_the_first_listing()
    {
        var folder = TestProcess.NewFolder("sync");
        await File.WriteAllTextAsync(Path.Combine(folder, "a"), "1");
        var client = fixture.NewClient();
        var every = Unique("every");
        var never = Unique("never");
        await client.MountAsync(every, $"file://{folder}", new Dictionary<string, string> { ["sync-interval"] = "1", ["readonly"] = "true" });
        await client.MountAsync(never, $"file://{folder}", new Dictionary<string, string> { ["readonly"] = "true" });
        Assert.Equal(FsStatus.NotFound, (await Uncached().StatAsync($"{every}/b")).Status);
        Assert.Equal(FsStatus.NotFound, (await Uncached().StatAsync($"{never}/b")).Status);

        await File.WriteAllTextAsync(Path.Combine(folder, "b"), "22");
        // One sync interval passes: the next lookup under the sync-interval=1 mount re-lists.
        fixture.Clock.Advance(TimeSpan.FromSeconds(1));
        var seen = await Uncached().StatAsync($"{every}/b");
        Assert.True(seen.IsOk, $"a file added under a sync-interval=1 mount was not seen once the interval had passed: {seen.Message}");
        Assert.Equal(2, seen.Value!.Size);
        Assert.Equal(FsStatus.NotFound, (await Uncached().StatAsync($"{never}/b")).Status);

        var always = Unique("always");
        await client.MountAsync(always, $"file://{folder}", new Dictionary<string, string> { ["sync-interval"] = "0", ["readonly"] = "true" });
        await File.WriteAllTextAsync(Path.Combine(folder, "c"), "333");
        Assert.Equal(3, (await Uncached().StatAsync($"{always}/c")).Value!.Size);
    }

    [Fact]
    public async Task With_under_storage_down_cached_entries_keep_serving_and_uncached_ones_fail_naming_the_path()
    {
        await using var moto = await MotoServer.StartAsync();
        var bucket = await moto.CreateBucketAsync("down");
        await moto.PutAsync(bucket, "ds/one/x.jpg", [1, 2, 3]);
        await moto.PutAsync(bucket, "ds/two/y.jpg", [4]);
        var client = fixture.NewClient();
        var m = Unique("down");
        Assert.True((await client.MountAsync(m, $"s3://{bucket}/ds", new Dictionary<string, string>(moto.MountOptions) { ["sync-interval"] = "1" })).IsOk);
        Assert.Equal(3, (await Uncached().StatAsync($"{m}/one/x.jpg")).Value!.Size);

        await moto.StopAsync();
        // The sync interval passes, so the next lookups try to re-list the dead store.
        fixture.Clock.Advance(TimeSpan.FromSeconds(1.5));
        var cached = await Uncached().StatAsync($"{m}/one/x.jpg");
        Assert.True(cached.IsOk, cached.Message);
        var listed = await Uncached().ListPageAsync($"{m}/one");
        Assert.True(listed.IsOk, listed.Message);
        Assert.Single(listed.Value!.Entries);

        var uncached = await Uncached().StatAsync($"{m}/two/y.jpg");
        Assert.Equal(FsStatus.IoError, uncached.Status);
        Assert.Contains($"{m}/two", uncached.Message, StringComparison.Ordinal);
        Assert.Contains("cannot reach", uncached.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unmount_forgets_the_mount_and_a_remount_at_the_same_path_shows_the_new_data()
    {
        var first = TestProcess.NewFolder("first");
        var second = TestProcess.NewFolder("second");
        await File.WriteAllTextAsync(Path.Combine(first, "only-in-first"), "1");
        await File.WriteAllTextAsync(Path.Combine(second, "only-in-second"), "2");
        var client = fixture.NewClient();
        var m = Unique("re");
        await client.MountAsync(m, $"file://{first}");
        Assert.Equal(FsStatus.Ok, (await client.StatAsync($"{m}/only-in-first")).Status);
        Assert.Equal(FsStatus.Ok, (await client.UnmountAsync(m)).Status);
        Assert.Equal(FsStatus.NotFound, (await client.StatAsync($"{m}/only-in-first")).Status);
        Assert.DoesNotContain((await client.GetMountsAsync(true)).Value!.Mounts, x => x.Path == m);

        await client.MountAsync(m, $"file://{second}");
        Assert.Equal(FsStatus.NotFound, (await client.StatAsync($"{m}/only-in-first")).Status);
        Assert.Equal(FsStatus.Ok, (await client.StatAsync($"{m}/only-in-second")).Status);

        // A client that cached the old mount learns of the change by the mount's new id, not by time.
        var stale = fixture.NewClient();
        Assert.Equal(FsStatus.Ok, (await stale.StatAsync($"{m}/only-in-second")).Status);
    }

    [Fact]
    public async Task A_mount_made_by_another_client_is_seen_by_the_next_lookup_without_waiting()
    {
        var folder = TestProcess.NewFolder("seen");
        await File.WriteAllTextAsync(Path.Combine(folder, "f"), "1");
        var reader = fixture.NewClient();
        var writer = fixture.NewClient();
        var m = Unique("seen");
        // The reader has just fetched the mount table, and has just been told the path is not there.
        Assert.True((await reader.GetMountsAsync(true)).IsOk);
        Assert.Equal(FsStatus.NotFound, (await reader.StatAsync($"{m}/f")).Status);
        await writer.MountAsync(m, $"file://{folder}");
        Assert.Equal(FsStatus.Ok, (await reader.StatAsync($"{m}/f")).Status);
    }

    [Fact]
    public async Task Virtual_directories_hold_deeper_mount_points()
    {
        var folder = TestProcess.NewFolder("deep");
        var client = fixture.NewClient();
        var top = Unique("datasets");
        await client.MountAsync($"{top}/imagenet/train", $"file://{folder}");
        var listing = (await client.ListPageAsync(top)).GetValueOrThrow();
        Assert.Equal(["imagenet"], listing.Entries.Select(e => e.Name));
        Assert.True((await client.StatAsync($"{top}/imagenet")).Value!.IsDirectory);
        Assert.Equal(FsStatus.InvalidArgument, (await client.MountAsync(top, $"file://{TestProcess.NewFolder("x")}")).Status);
    }
}
