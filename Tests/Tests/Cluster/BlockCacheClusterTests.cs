using System.Text.RegularExpressions;
using GrainFs.Client;
using GrainFs.DataPlane.Blocks;
using GrainFs.Storage.Cache;
using GrainFs.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace GrainFs.Tests.Cluster;

/// <summary>Three silos, two of them GPU hosts: block homes live only on the GPU hosts.</summary>
public sealed class GpuClusterFixture : ClusterFixture
{
    protected override IReadOnlyDictionary<string, string>? Roles => new Dictionary<string, string>
    {
        ["Primary"] = "gpu,read",
        ["Secondary_1"] = "gpu,read",
        ["Secondary_2"] = "read,write",
    };
}

public sealed class BlockCacheClusterTests(GpuClusterFixture fixture) : IClassFixture<GpuClusterFixture>
{
    private static string Unique(string name) => $"/{name}-{Guid.NewGuid().ToString("N")[..6]}";

    /// <summary>A client that does not share a host with any silo: every read goes through a data port.</summary>
    private GrainFsClient RemoteClient(int metadataCache = 10_000) =>
        GrainFsClient.Create(fixture.Cluster.Client, new GrainFsClientOptions { Host = "no-such-host", MetadataCacheEntries = metadataCache });

    private static async Task<byte[]> ReadAll(GrainFsClient client, string path)
    {
        var file = (await client.OpenAsync(path)).GetValueOrThrow();
        var data = new byte[file.Length];
        var read = await file.ReadAsync(0, data);
        Assert.True(read.IsOk, read.Message);
        Assert.Equal(data.Length, read.Value);
        return data;
    }

    /// <summary>A file of <paramref name="blocks"/> 64 KiB blocks in a new folder, mounted with that block size, and a client with <paramref name="options"/>.</summary>
    private async Task<(GrainFsClient Client, string Mount, byte[] Data)> MountBlocksAsync(string name, string file, int blocks, int seed, GrainFsClientOptions options)
    {
        var folder = TestProcess.NewFolder(name);
        var data = RandomBytes(blocks * 65536, seed);
        await File.WriteAllBytesAsync(Path.Combine(folder, file), data);
        var client = GrainFsClient.Create(fixture.Cluster.Client, options);
        var m = Unique(name);
        Assert.True((await client.MountAsync(m, $"file://{folder}", new Dictionary<string, string> { ["block-size"] = "64KiB" })).IsOk);
        return (client, m, data);
    }

    private static byte[] RandomBytes(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    [Fact]
    public async Task Blocks_are_homed_on_gpu_silos_where_rendezvous_hashing_says()
    {
        var folder = TestProcess.NewFolder("homes");
        var data = RandomBytes(24 * 65536, 11);
        await File.WriteAllBytesAsync(Path.Combine(folder, "f.bin"), data);
        var client = RemoteClient();
        var m = Unique("homes");
        Assert.True((await client.MountAsync(m, $"file://{folder}", new Dictionary<string, string> { ["block-size"] = "64KiB" })).IsOk);
        Assert.Equal(data, await ReadAll(client, $"{m}/f.bin"));

        var silos = await client.GetSilosAsync();
        Assert.Equal(3, silos.Length);
        var gpuNames = silos.Where(s => s.Roles.Contains("gpu")).Select(s => s.Name).ToList();
        Assert.Equal(2, gpuNames.Count);
        var file = (await client.OpenAsync($"{m}/f.bin")).GetValueOrThrow();
        var homes = new HashSet<string>();
        for (var i = 0; i < file.Version.BlockCount; i++)
        {
            var key = file.Version.KeyOf(i);
            var expected = gpuNames[Rendezvous.Pick(key, gpuNames)];
            var state = await fixture.Cluster.Client.GetGrain<IBlockGrain>(key.ToString()).GetStateAsync();
            Assert.Equal(expected, state.Home);
            Assert.NotNull(state.Tier);
            Assert.Equal(65536, state.Length);
            homes.Add(state.Home);
        }

        Assert.Equal(2, homes.Count);
        var report = (await client.GetReportAsync()).GetValueOrThrow();
        var readOnly = Assert.Single(report, w => w.Silo == "Secondary_2");
        Assert.Equal(0, readOnly.Fills);
    }

    [Fact]
    public async Task Many_concurrent_readers_of_a_cold_object_cause_exactly_one_read_of_each_block_from_s3()
    {
        await using var moto = await MotoServer.StartAsync();
        var bucket = await moto.CreateBucketAsync("crowd");
        var data = RandomBytes((3 * 1024 * 1024) + 12345, 12);
        await moto.PutAsync(bucket, "ds/crowd.bin", data);
        var client = RemoteClient();
        var m = Unique("crowd");
        Assert.True((await client.MountAsync(m, $"s3://{bucket}/ds", new Dictionary<string, string>(moto.MountOptions) { ["block-size"] = "1MiB" })).IsOk);

        var readers = Enumerable.Range(0, 16).Select(_ => Task.Run(() => ReadAll(RemoteClient(), $"{m}/crowd.bin"))).ToArray();
        foreach (var bytes in await Task.WhenAll(readers))
        {
            Assert.Equal(data, bytes);
        }

        var gets = Regex.Matches(moto.Log, $"\"GET /{bucket}/ds/crowd.bin HTTP").Count;
        Assert.Equal(4, gets);
    }

    [Fact]
    public async Task A_sequential_cold_reader_keeps_its_read_ahead_window_moving_through_blocks_filled_ahead_of_it()
    {
        const int block = 65536;
        var (client, m, data) = await MountBlocksAsync("readahead", "seq.bin", 40, 13, new GrainFsClientOptions { Host = "no-such-host", ReadAheadBlocks = 4 });
        var file = (await client.OpenAsync($"{m}/seq.bin")).GetValueOrThrow();
        async Task<bool> HeldAsync(int index) =>
            (await fixture.Cluster.Client.GetGrain<IBlockGrain>(file.Version.KeyOf(index).ToString()).GetStateAsync()).Tier is not null;
        async Task WaitHeldAsync(int index)
        {
            for (var i = 0; i < 200 && !await HeldAsync(index); i++)
            {
                await Task.Delay(50);
            }

            Assert.True(await HeldAsync(index), $"block {index} was filled ahead of the reader");
        }

        var buffer = new byte[block];
        // Block 0 is cold: the reader fills it and asks for blocks 1-4 ahead; wait until they are all held.
        Assert.Equal(block, (await file.ReadAsync(0, buffer)).GetValueOrThrow());
        Assert.Equal(data.AsSpan(0, block).ToArray(), buffer);
        for (var i = 1; i <= 4; i++)
        {
            await WaitHeldAsync(i);
        }

        // Reading on through blocks that were filled ahead moves the window: 5, 6 and 7 follow, and nothing beyond.
        for (var i = 1; i <= 3; i++)
        {
            Assert.Equal(block, (await file.ReadAsync((long)i * block, buffer)).GetValueOrThrow());
            Assert.Equal(data.AsSpan(i * block, block).ToArray(), buffer);
        }

        for (var i = 5; i <= 7; i++)
        {
            await WaitHeldAsync(i);
        }

        Assert.False(await HeldAsync(8), "the window is four blocks ahead of the reader");
    }

    [Fact]
    public async Task A_cold_read_on_the_host_of_the_filling_worker_reads_the_block_file_and_nothing_crosses_its_data_port()
    {
        const int block = 65536;
        // On Primary's host: its blocks are read from its tier folders, Secondary_1's through Secondary_1's data port.
        var (client, m, data) = await MountBlocksAsync("samehost", "f.bin", 24, 14, new GrainFsClientOptions { Host = "Primary" });
        static long Served(WorkerReport worker) => worker.BytesServedBySource.Values.Sum();
        var before = (await client.GetReportAsync()).GetValueOrThrow().ToDictionary(w => w.Silo);

        Assert.Equal(data, await ReadAll(client, $"{m}/f.bin"));

        var file = (await client.OpenAsync($"{m}/f.bin")).GetValueOrThrow();
        var homes = new List<string>();
        for (var i = 0; i < file.Version.BlockCount; i++)
        {
            homes.Add((await fixture.Cluster.Client.GetGrain<IBlockGrain>(file.Version.KeyOf(i).ToString()).GetStateAsync()).Home);
        }

        var after = (await client.GetReportAsync()).GetValueOrThrow().ToDictionary(w => w.Silo);
        var local = homes.Count(h => h == "Primary");
        Assert.InRange(local, 1, homes.Count - 1);
        Assert.Equal(local, after["Primary"].Fills - before["Primary"].Fills);
        Assert.Equal(0, Served(after["Primary"]) - Served(before["Primary"]));
        Assert.Equal((long)(homes.Count - local) * block, Served(after["Secondary_1"]) - Served(before["Secondary_1"]));
    }

    [Fact]
    public async Task Block_files_and_tmp_folders_removed_or_cut_short_behind_the_workers_cost_the_next_reads_nothing()
    {
        // A reader on Primary's host (short-circuit for Primary's blocks, the data port for Secondary_1's) has read the
        // file once, so it knows the block files; then a cleaner removes half of them, cuts the other half short, and
        // removes every tier's tmp folder.
        var (client, m, data) = await MountBlocksAsync("lost", "f.bin", 24, 21, new GrainFsClientOptions { Host = "Primary", ReadAheadBlocks = 0 });
        Assert.Equal(data, await ReadAll(client, $"{m}/f.bin"));
        var file = (await client.OpenAsync($"{m}/f.bin")).GetValueOrThrow();
        var stores = fixture.SiloServices.Values.Select(s => s.GetRequiredService<TierStore>()).ToList();
        var damaged = 0;
        for (var i = 0; i < file.Version.BlockCount; i++)
        {
            foreach (var store in stores)
            {
                if (!store.TryPeek(file.Version.KeyOf(i), out var block))
                {
                    continue;
                }

                if (i % 2 == 0)
                {
                    File.Delete(block.Path);
                }
                else
                {
                    using var cut = new FileStream(block.Path, FileMode.Open, FileAccess.Write);
                    cut.SetLength(block.Header.FileLength / 2);
                }

                damaged++;
            }
        }

        Assert.Equal(24, damaged);
        foreach (var tier in stores.SelectMany(s => s.Tiers))
        {
            Directory.Delete(tier.TempRoot, recursive: true);
        }

        // Read again by that reader and by one on no silo's host: every byte right at once, not after a timeout.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(data, await ReadAll(client, $"{m}/f.bin"));
        Assert.Equal(data, await ReadAll(RemoteClient(), $"{m}/f.bin"));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"reads took {clock.Elapsed}");

        // Every block is held again, whole, and the tmp folders are back.
        for (var i = 0; i < file.Version.BlockCount; i++)
        {
            var held = stores.Where(s => s.TryPeek(file.Version.KeyOf(i), out _)).ToList();
            Assert.NotEmpty(held);
            foreach (var store in held)
            {
                Assert.True(store.TryPeek(file.Version.KeyOf(i), out var block));
                Assert.Equal(block.Header.FileLength, new FileInfo(block.Path).Length);
            }
        }

        // The tiers that filled again made their tmp folders again.
        Assert.All(stores.SelectMany(s => s.Tiers).Where(t => t.Blocks > 0 && t.Name == "MEM"), t => Assert.True(Directory.Exists(t.TempRoot), t.TempRoot));
    }

    [Fact]
    public async Task Cold_reads_fill_through_the_home_workers_data_port_without_a_block_grain_activation_per_block()
    {
        var folder = TestProcess.NewFolder("lean");
        var files = Enumerable.Range(0, 20).Select(i => RandomBytes(1000 + i, 100 + i)).ToArray();
        for (var i = 0; i < files.Length; i++)
        {
            await File.WriteAllBytesAsync(Path.Combine(folder, $"f{i}.bin"), files[i]);
        }

        var remote = RemoteClient();
        var local = GrainFsClient.Create(fixture.Cluster.Client, new GrainFsClientOptions { Host = "Primary" });
        var m = Unique("lean");
        Assert.True((await remote.MountAsync(m, $"file://{folder}")).IsOk);
        var management = fixture.Cluster.Client.GetGrain<IManagementGrain>(0);
        async Task<int> BlockGrainsAsync() =>
            (await management.GetSimpleGrainStatistics()).Where(s => s.GrainType.Contains("BlockGrain", StringComparison.Ordinal)).Sum(s => s.ActivationCount);
        var before = await BlockGrainsAsync();
        var fills = (await remote.GetReportAsync()).GetValueOrThrow().Sum(w => w.Fills);

        // Half read from another host (data port), half on Primary's host (its blocks short-circuit): every one cold.
        for (var i = 0; i < files.Length; i++)
        {
            Assert.Equal(files[i], await ReadAll(i % 2 == 0 ? remote : local, $"{m}/f{i}.bin"));
        }

        Assert.Equal(before, await BlockGrainsAsync());
        Assert.Equal(files.Length, (await remote.GetReportAsync()).GetValueOrThrow().Sum(w => w.Fills) - fills);
    }

    [Fact]
    public async Task An_object_rewritten_in_s3_is_served_with_its_new_bytes_after_sync()
    {
        var moto = fixture.Moto;
        var bucket = await moto.CreateBucketAsync("rewrite");
        var before = RandomBytes(300_000, 13);
        var after = RandomBytes(300_000, 14);
        await moto.PutAsync(bucket, "x/obj", before);
        var client = RemoteClient(metadataCache: 0);
        var m = Unique("rewrite");
        Assert.True((await client.MountAsync(m, $"s3://{bucket}/x", new Dictionary<string, string>(moto.MountOptions) { ["sync-interval"] = "1" })).IsOk);
        Assert.Equal(before, await ReadAll(client, $"{m}/obj"));
        Assert.Equal(before, await ReadAll(client, $"{m}/obj"));

        await moto.PutAsync(bucket, "x/obj", after);
        // Until the listing is re-read the old version (old ETag, old block keys) is what the namespace names; the
        // interval may already have passed in real time, so a read now gives one whole version or the other.
        var between = await ReadAll(client, $"{m}/obj");
        Assert.True(between.AsSpan().SequenceEqual(before) || between.AsSpan().SequenceEqual(after), "a read during the rewrite gave neither version");

        // One sync interval passes: the next open re-lists and names the new version.
        fixture.Clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(after, await ReadAll(client, $"{m}/obj"));
    }

    [Fact]
    public async Task A_corrupted_block_file_is_detected_and_refilled_through_the_data_port_and_short_circuit()
    {
        var folder = TestProcess.NewFolder("corrupt");
        var data = RandomBytes(500_000, 15);
        await File.WriteAllBytesAsync(Path.Combine(folder, "c.bin"), data);
        var client = RemoteClient();
        var m = Unique("corrupt");
        Assert.True((await client.MountAsync(m, $"file://{folder}")).IsOk);
        Assert.Equal(data, await ReadAll(client, $"{m}/c.bin"));

        var file = (await client.OpenAsync($"{m}/c.bin")).GetValueOrThrow();
        var key = file.Version.KeyOf(0);
        var state = await fixture.Cluster.Client.GetGrain<IBlockGrain>(key.ToString()).GetStateAsync();
        var home = (await client.GetSilosAsync()).Single(s => s.Name == state.Home);
        string BlockPath() => home.TierPaths.Select(root => Path.Combine(root, BlockFile.RelativePath(key))).Single(File.Exists);

        // A read can be answered from a fill that is still writing the block: its file is in place once that fill ends.
        var homeStore = fixture.SiloServices[home.Name].GetRequiredService<TierStore>();
        Task FilledAsync() => homeStore.FindFill(key) is { } fill ? fill.Completion.WaitAsync(TimeSpan.FromSeconds(30)) : Task.CompletedTask;
        async Task CorruptAsync()
        {
            await FilledAsync();
            using var stream = new FileStream(BlockPath(), FileMode.Open, FileAccess.Write);
            stream.Position = BlockFile.HeaderLength(data.Length) + 400_000;
            stream.WriteByte((byte)(data[400_000] ^ 0x5A));
        }

        var corruptBefore = (await client.GetReportAsync()).GetValueOrThrow().Single(w => w.Silo == home.Name).Corrupt;
        await CorruptAsync();
        Assert.Equal(data, await ReadAll(RemoteClient(), $"{m}/c.bin"));
        var report = (await client.GetReportAsync()).GetValueOrThrow();
        Assert.Equal(corruptBefore + 1, report.Single(w => w.Silo == home.Name).Corrupt);

        // On the block's own host the client reads the tier file itself: it checks, asks for a refill, and reads good bytes.
        await CorruptAsync();
        var local = GrainFsClient.Create(fixture.Cluster.Client, new GrainFsClientOptions { Host = home.Host });
        Assert.Equal(data, await ReadAll(local, $"{m}/c.bin"));
        await FilledAsync();
        Assert.Equal(data, (await File.ReadAllBytesAsync(BlockPath()))[BlockFile.HeaderLength(data.Length)..]);
    }

    [Fact]
    public async Task Loaded_data_is_read_back_intact_with_s3_stopped_and_uncached_reads_fail_naming_the_path()
    {
        await using var moto = await MotoServer.StartAsync();
        var bucket = await moto.CreateBucketAsync("offline");
        var files = Enumerable.Range(0, 20).ToDictionary(i => $"f{i:D2}", i => RandomBytes(50_000 + (i * 7919), 100 + i));
        foreach (var (name, bytes) in files)
        {
            await moto.PutAsync(bucket, $"loaded/{name}", bytes);
        }

        await moto.PutAsync(bucket, "cold/never", RandomBytes(1000, 1));
        var client = RemoteClient();
        var m = Unique("offline");
        Assert.True((await client.MountAsync(m, $"s3://{bucket}", moto.MountOptions)).IsOk);
        var load = await client.LoadAsync($"{m}/loaded");
        Assert.True(load.IsOk, load.Message);
        Assert.Equal(20, load.Value!.Files);
        Assert.True((await client.StatAsync($"{m}/cold/never")).IsOk);

        await moto.StopAsync();
        foreach (var (name, bytes) in files)
        {
            Assert.Equal(bytes, await ReadAll(RemoteClient(), $"{m}/loaded/{name}"));
        }

        var cold = await client.ReadAsync($"{m}/cold/never", 0, new byte[1000]);
        Assert.Equal(FsStatus.IoError, cold.Status);
        Assert.Contains($"{m}/cold/never", cold.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_ttl_runs_on_the_workers_clock_and_a_pinned_block_outlives_it_until_unpinned()
    {
        var folder = TestProcess.NewFolder("ttlclock");
        var files = TestData.ImageFolder(folder, classes: 1, perClass: 6, maxSize: 100_000);
        var client = RemoteClient(); // on the system clock, which the workers' clock is now two hours ahead of
        fixture.Clock.Advance(TimeSpan.FromHours(2));
        var m = Unique("ttlclock");
        Assert.True((await client.MountAsync(m, $"file://{folder}")).IsOk);
        Assert.True((await client.LoadAsync(m)).IsOk);
        var names = files.Keys.Order(StringComparer.Ordinal).ToList();
        async Task<bool> HeldAsync(string name)
        {
            var version = (await client.OpenAsync($"{m}/{name}")).GetValueOrThrow().Version;
            return (await fixture.Cluster.Client.GetGrain<IBlockGrain>(version.KeyOf(0).ToString()).GetStateAsync()).Tier is not null;
        }

        // An hour from now on the workers' clock: not already past, as it would be on the client's.
        var ttl = await client.SetTtlAsync(m, TimeSpan.FromHours(1));
        Assert.True(ttl.IsOk, ttl.Message);
        Assert.Equal(6, ttl.Value!.Blocks);
        await fixture.MaintainAllAsync();
        foreach (var name in names)
        {
            Assert.True(await HeldAsync(name), $"{name} was freed before its TTL ended");
        }

        // One file pinned: when the hour has passed the others go, the pinned one stays until it is unpinned.
        Assert.True((await client.PinAsync($"{m}/{names[0]}")).IsOk);
        fixture.Clock.Advance(TimeSpan.FromHours(1) + TimeSpan.FromSeconds(1));
        await fixture.MaintainAllAsync();
        Assert.True(await HeldAsync(names[0]));
        foreach (var name in names.Skip(1))
        {
            Assert.False(await HeldAsync(name), $"{name} outlived its TTL");
        }

        Assert.True((await client.UnpinAsync($"{m}/{names[0]}")).IsOk);
        await fixture.MaintainAllAsync();
        Assert.False(await HeldAsync(names[0]));
    }

    [Fact]
    public async Task Pin_free_and_ttl_act_on_every_block_of_a_tree()
    {
        var folder = TestProcess.NewFolder("pin");
        var files = TestData.ImageFolder(folder, classes: 2, perClass: 10, maxSize: 200_000);
        var client = RemoteClient();
        var m = Unique("pin");
        Assert.True((await client.MountAsync(m, $"file://{folder}")).IsOk);

        var pinned = await client.PinAsync(m);
        Assert.True(pinned.IsOk, pinned.Message);
        Assert.Equal(20, pinned.Value!.Blocks);
        var file = (await client.OpenAsync($"{m}/class01/img0003.jpg")).GetValueOrThrow();
        var state = await fixture.Cluster.Client.GetGrain<IBlockGrain>(file.Version.KeyOf(0).ToString()).GetStateAsync();
        Assert.True(state.Pinned);

        Assert.Equal(20, (await client.UnpinAsync(m)).Value!.Blocks);
        Assert.False((await fixture.Cluster.Client.GetGrain<IBlockGrain>(file.Version.KeyOf(0).ToString()).GetStateAsync()).Pinned);

        // A TTL that is no time or past any date is refused, naming it, and changes nothing.
        foreach (var absurd in new[] { TimeSpan.Zero, TimeSpan.MaxValue })
        {
            var refused = await client.SetTtlAsync($"{m}/class00", absurd);
            Assert.Equal(FsStatus.InvalidArgument, refused.Status);
            Assert.Contains(absurd.ToString(), refused.Message, StringComparison.Ordinal);
        }

        var ttl = await client.SetTtlAsync($"{m}/class00", TimeSpan.FromSeconds(1));
        Assert.Equal(10, ttl.Value!.Blocks);
        // The TTL runs out on the workers' clock, and the next maintenance pass of each worker frees those blocks.
        fixture.Clock.Advance(TimeSpan.FromSeconds(1));
        await fixture.MaintainAllAsync();
        foreach (var expired in files.Keys.Where(f => f.StartsWith("class00/", StringComparison.Ordinal)))
        {
            var version = (await client.OpenAsync($"{m}/{expired}")).GetValueOrThrow().Version;
            Assert.Null((await fixture.Cluster.Client.GetGrain<IBlockGrain>(version.KeyOf(0).ToString()).GetStateAsync()).Tier);
        }

        var freed = await client.FreeAsync(m);
        Assert.True(freed.IsOk);
        Assert.Equal(10, freed.Value!.Blocks);
        Assert.Null((await fixture.Cluster.Client.GetGrain<IBlockGrain>(file.Version.KeyOf(0).ToString()).GetStateAsync()).Tier);
    }

    [Fact]
    public async Task A_block_a_host_keeps_reading_remotely_gets_a_bounded_replica_there()
    {
        var folder = TestProcess.NewFolder("replica");
        var data = RandomBytes(200_000, 16);
        await File.WriteAllBytesAsync(Path.Combine(folder, "hot.bin"), data);
        var m = Unique("replica");
        Assert.True((await RemoteClient().MountAsync(m, $"file://{folder}")).IsOk);

        // Secondary_2 has no gpu role, so it is never a home; a reader on its host reads remotely at first.
        var reader = GrainFsClient.Create(fixture.Cluster.Client, new GrainFsClientOptions { Host = "Secondary_2" });
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(data, await ReadAll(reader, $"{m}/hot.bin"));
        }

        var file = (await reader.OpenAsync($"{m}/hot.bin")).GetValueOrThrow();
        var key = file.Version.KeyOf(0);
        var grain = fixture.Cluster.Client.GetGrain<IBlockGrain>(key.ToString());

        // The third remote read asked for a replica; Secondary_2's worker copies it and reports back, and the block's
        // grain, on its home silo, logs that it recorded it.
        var home = (await grain.GetStateAsync()).Home;
        await fixture.LogOf(home).WaitForAsync("ReplicaRecorded", e => e["Key"] == key.ToString() && e["Silo"] == "Secondary_2", TimeSpan.FromSeconds(20));
        var state = await grain.GetStateAsync();
        Assert.Contains("Secondary_2", state.Replicas);
        var secondary = (await reader.GetSilosAsync()).Single(s => s.Name == "Secondary_2");
        Assert.Contains(secondary.TierPaths, root => File.Exists(Path.Combine(root, BlockFile.RelativePath(key))));
        Assert.Equal(data, await ReadAll(reader, $"{m}/hot.bin"));

        // Bounded: a second replica target is accepted, a third is refused.
        Assert.Equal(FsStatus.Ok, (await grain.ReplicateAsync(file.Version.SourceOf(0), state.Home == "Primary" ? "Secondary_1" : "Primary")).Status);
        Assert.Equal(FsStatus.Busy, (await grain.ReplicateAsync(file.Version.SourceOf(0), "nowhere")).Status);

        // A free reaches the replicas too.
        Assert.True((await reader.FreeAsync($"{m}/hot.bin")).IsOk);
        Assert.DoesNotContain(secondary.TierPaths, root => File.Exists(Path.Combine(root, BlockFile.RelativePath(key))));
    }

    [Fact]
    public async Task A_worker_answers_reports_and_frees_while_its_loads_wait_on_a_stalled_store()
    {
        var moto = fixture.Moto;
        var bucket = await moto.CreateBucketAsync("stall");
        for (var i = 0; i < 4; i++)
        {
            await moto.PutAsync(bucket, $"s/f{i}", RandomBytes(300_000, 40 + i));
        }

        await using var gate = new GatedProxy(moto.Endpoint);
        var client = RemoteClient();
        var m = Unique("stall");
        Assert.True((await client.MountAsync(m, $"s3://{bucket}/s", new Dictionary<string, string>(moto.MountOptions) { ["endpoint"] = gate.Endpoint })).IsOk);
        var files = new List<FileVersion>();
        for (var i = 0; i < 4; i++)
        {
            files.Add((await client.OpenAsync($"{m}/f{i}")).GetValueOrThrow().Version);
        }

        var silos = await client.GetSilosAsync();
        var worker = fixture.Cluster.Client.GetGrain<IWorkerGrain>(silos[0].Name);
        gate.Close();
        var load = await worker.StartLoadAsync([.. files.Select(f => f.SourceOf(0))], pin: null, ttl: null);

        // The store holds every request; the worker still answers at once.
        var report = await worker.GetReportAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(silos[0].Name, report.Silo);
        var freed = await worker.FreeAsync([files[0].KeyOf(0)]).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, freed.Failures);
        var running = await worker.WaitLoadAsync(load, 200).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(running.Done);
        Assert.Equal(4, running.Total);

        gate.Open();
        LoadStatus status;
        do
        {
            status = await worker.WaitLoadAsync(load, 5_000);
        }
        while (!status.Done);

        Assert.Equal((4, 0), (status.Blocks, status.Failures));
        Assert.Equal(4 * 300_000, status.Bytes);
        var again = await worker.WaitLoadAsync(load, 0);
        Assert.True(again.Done && again.Failures == 1, "a load's outcome is given once, then forgotten");
    }

    [Fact]
    public async Task A_block_grain_with_a_key_that_is_not_a_block_key_fails_the_call_naming_it()
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(async () => await fixture.Cluster.Client.GetGrain<IBlockGrain>("not-a-block-key").GetStateAsync());
        Assert.Contains("'not-a-block-key' is not a block key", error.ToString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// A TCP proxy to an S3 server that can hold every byte from clients to the server (new and pooled connections
    /// alike), so a test can stall the store under a running fill and let it go again.
    /// </summary>
    private sealed class GatedProxy : IAsyncDisposable
    {
        private readonly System.Net.Sockets.TcpListener _listener = new(System.Net.IPAddress.Loopback, 0);
        private readonly Uri _target;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _accept;
        private TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public GatedProxy(string target)
        {
            _target = new Uri(target);
            _open.SetResult();
            _listener.Start();
            Endpoint = $"http://127.0.0.1:{((System.Net.IPEndPoint)_listener.LocalEndpoint).Port}";
            _accept = AcceptAsync();
        }

        public string Endpoint { get; }

        public void Close()
        {
            if (_open.Task.IsCompleted)
            {
                _open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }

        public void Open() => _open.TrySetResult();

        private async Task AcceptAsync()
        {
            var connections = new List<Task>();
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    connections.Add(ServeAsync(client));
                }
            }
            catch (Exception e) when (e is OperationCanceledException or System.Net.Sockets.SocketException or ObjectDisposedException)
            {
                await Task.WhenAll(connections);
            }
        }

        private async Task ServeAsync(System.Net.Sockets.TcpClient client)
        {
            using (client)
            using (var server = new System.Net.Sockets.TcpClient())
            {
                try
                {
                    await server.ConnectAsync(_target.Host, _target.Port, _stop.Token);
                    await Task.WhenAny(PumpAsync(client.GetStream(), server.GetStream(), gated: true), PumpAsync(server.GetStream(), client.GetStream(), gated: false));
                }
                catch (Exception e) when (e is OperationCanceledException or System.Net.Sockets.SocketException or IOException)
                {
                    // Torn down with the test.
                }
            }
        }

        private async Task PumpAsync(Stream from, Stream to, bool gated)
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (true)
                {
                    var read = await from.ReadAsync(buffer, _stop.Token);
                    if (read == 0)
                    {
                        return;
                    }

                    if (gated)
                    {
                        await _open.Task.WaitAsync(_stop.Token);
                    }

                    await to.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
            {
                // The other side closed, or the test ended.
            }
        }

        public async ValueTask DisposeAsync()
        {
            Open();
            await _stop.CancelAsync();
            _listener.Stop();
            await _accept;
            _stop.Dispose();
        }
    }
}
