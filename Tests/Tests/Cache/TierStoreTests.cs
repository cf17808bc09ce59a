using CsCheck;
using GrainFs.DataPlane.Blocks;
using GrainFs.Storage.Cache;
using GrainFs.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Win32.SafeHandles;

namespace GrainFs.Tests.Cache;

public sealed class TierStoreTests
{
    private static byte[] Bytes(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    private static Func<CancellationToken, ValueTask<Stream>> Source(byte[] data, Action? onOpen = null) => _ =>
    {
        onOpen?.Invoke();
        return ValueTask.FromResult<Stream>(new MemoryStream(data, writable: false));
    };

    private static async Task<TierStore> StoreAsync(string root, long mem, long ssd, string policy = "tinylfu", CacheOptions? template = null, TimeProvider? time = null)
    {
        var options = template ?? new CacheOptions();
        options.Tiers = [new TierSpec(TierKind.Mem, Path.Combine(root, "mem"), mem), new TierSpec(TierKind.Ssd, Path.Combine(root, "ssd"), ssd)];
        options.Policy = policy;
        var store = new TierStore(options, NullLogger.Instance, time);
        await store.InitializeAsync();
        await store.Maintenance.StartAsync(CancellationToken.None);
        return store;
    }

    /// <summary>A maintenance pass that began after this call, run by the store's service (never beside its own pass).</summary>
    private static Task PassAsync(TierStore store) => store.Maintenance.RequestPassAsync().WaitAsync(TimeSpan.FromSeconds(30));

    private static byte[] ReadBack(CachedBlock block, bool verify = true)
    {
        using SafeFileHandle handle = File.OpenHandle(block.Path);
        var data = new byte[block.Header.DataLength];
        Assert.Equal(data.Length, BlockFile.ReadVerified(handle, block.Header, 0, data, verify));
        return data;
    }

    [Fact]
    public async Task With_a_read_order_in_force_eviction_takes_what_the_reader_passed_then_what_it_will_reach_last()
    {
        var root = TestProcess.NewFolder("ts-order");
        const int Size = 256 * 1024;
        var keys = Enumerable.Range(0, 12).Select(i => new BlockKey(40, 40, i)).ToArray();
        var blockBytes = BlockFile.HeaderLength(Size) + Size;
        // Room for ten: the first eight stay below the high watermark, so nothing leaves before the reader starts.
        await using var store = await StoreAsync(root, 10L * blockBytes, 64 << 20);
        store.AddOrderPart("epoch", 0, keys[..5], last: false, TimeSpan.FromMinutes(10));
        store.AddOrderPart("epoch", 5, keys[5..], last: true, TimeSpan.FromMinutes(10));
        Assert.Equal(["epoch"], store.Index.OrderJobs);
        for (var i = 0; i < 8; i++)
        {
            await store.StartFill(keys[i], Size, Source(Bytes(Size, i)))!.Completion;
        }

        // The reader has read the first four; four more blocks arrive (the prefetcher's), and the tier makes room
        // (TinyLFU alone would keep the four read twice and refuse the newcomers).
        for (var i = 0; i < 4; i++)
        {
            Assert.True(store.TryGet(keys[i], out _));
        }

        for (var i = 8; i < 12; i++)
        {
            await store.StartFill(keys[i], Size, Source(Bytes(Size, i)))!.Completion;
        }

        await PassAsync(store);
        bool InMem(BlockKey key) => store.TryGet(key, out var block) && block.Tier.Name == "MEM";
        var kept = keys.Where(InMem).Select(k => k.Index).ToList();
        // Room had to be made (twelve blocks, room for ten): blocks the reader passed went, and every block ahead of it
        // that was in the tier before stayed (a newcomer may have been placed in the next tier at once, when the first
        // was full at that moment: that is placement, not eviction).
        Assert.True(Enumerable.Range(0, 4).Any(i => !kept.Contains(i)), $"no block the reader passed left: {string.Join(",", kept)}");
        Assert.All(Enumerable.Range(4, 4), i => Assert.Contains(i, kept));

        // Forgotten, the base policy decides again.
        store.ForgetOrder("epoch");
        Assert.Empty(store.Index.OrderJobs);
    }

    [Fact]
    public async Task Prefetched_blocks_count_once_as_hits_when_read_and_as_wasted_when_evicted_unread()
    {
        var root = TestProcess.NewFolder("ts-prefetch");
        const int Size = 512 * 1024;
        var keys = Enumerable.Range(0, 12).Select(i => new BlockKey(41, 41, i)).ToArray();
        var blockBytes = BlockFile.HeaderLength(Size) + Size;
        await using var store = await StoreAsync(root, 4L * blockBytes, 2L * blockBytes, policy: "lru");

        // Four blocks filled ahead of a reader (as the data port marks an announced order's fills).
        for (var i = 0; i < 4; i++)
        {
            var fill = store.StartFill(keys[i], Size, Source(Bytes(Size, i)))!;
            store.Index.NotePrefetch(keys[i]);
            await fill.Completion;
        }

        var report = store.GetReport();
        Assert.Equal((4L, 4L * Size, 0L, 0L, 0), (report.Prefetch.Fills, report.Prefetch.Bytes, report.Prefetch.Hits, report.Prefetch.Wasted, report.Prefetch.Running));
        Assert.Equal(4, report.Fills); // a prefetch is a fill like any other

        // The reader reaches two of them: two hits, counted once however often they are read.
        Assert.True(store.TryGet(keys[0], out _));
        Assert.True(store.TryGet(keys[1], out _));
        Assert.True(store.TryGet(keys[0], out _));
        Assert.Equal(2, store.GetReport().Prefetch.Hits);

        // Eight ordinary fills in room for six: older blocks leave. Each prefetched block that leaves unread is wasted;
        // the two that were read are not, whether they left or not.
        for (var i = 4; i < 12; i++)
        {
            await store.StartFill(keys[i], Size, Source(Bytes(Size, i)))!.Completion;
        }

        await PassAsync(store);
        report = store.GetReport();
        var unreadGone = keys[2..4].Count(k => !store.TryPeek(k, out _));
        var held = string.Join(",", store.Index.Snapshot().Select(b => $"{b.Key.Index}@{b.Tier.Name}"));
        Assert.True(report.Evictions >= 6 && unreadGone >= 1, $"{report.Evictions} evictions; held {held}");
        Assert.Equal((4L, 2L, (long)unreadGone), (report.Prefetch.Fills, report.Prefetch.Hits, report.Prefetch.Wasted));
    }

    [Fact]
    public async Task A_block_dropped_as_corrupt_or_lost_keeps_its_pin_and_ttl_when_it_is_filled_again()
    {
        var root = TestProcess.NewFolder("ts-keep");
        await using var store = await StoreAsync(root, 64 << 20, 64 << 20);
        var data = Bytes(100_000, 9);
        var pinned = new BlockKey(42, 42, 0);
        var expiring = new BlockKey(42, 42, 1);
        var expires = DateTime.UtcNow.AddDays(3).Ticks;
        await store.StartFill(pinned, data.Length, Source(data), BlockFile.FlagPinned)!.Completion;
        await store.StartFill(expiring, data.Length, Source(data), 0, expires)!.Completion;

        // Corrupt: discarded, then filled again by a reader that knows nothing of the settings.
        await store.DiscardAsync(pinned);
        Assert.False(store.TryPeek(pinned, out _));
        await store.StartFill(pinned, data.Length, Source(data))!.Completion;
        Assert.True(store.TryPeek(pinned, out var refilled));
        Assert.True(refilled.Header.Pinned);

        // Lost: its file removed behind the store's back, dropped on the next look, filled again with its TTL.
        Assert.True(store.TryPeek(expiring, out var block));
        File.Delete(block.Path);
        Assert.True(await store.DropIfLostAsync(block));
        Assert.Equal(1, store.GetReport().Lost);
        await store.StartFill(expiring, data.Length, Source(data))!.Completion;
        Assert.True(store.TryPeek(expiring, out refilled));
        Assert.Equal(expires, refilled.Header.ExpiresTicks);
        Assert.False(refilled.Header.Pinned);

        // A whole file is not lost.
        Assert.False(await store.DropIfLostAsync(refilled));
        Assert.Equal(data, ReadBack(refilled));
    }

    [Fact]
    public async Task A_tier_whose_disk_fills_up_is_taken_out_of_service_and_its_fills_go_to_the_next_tier()
    {
        // The MEM tier sits on a real 1 MiB tmpfs but says it holds 64 MiB: its disk is full long before its accounting.
        var root = TestProcess.NewFolder("ts-enospc");
        var small = Path.Combine(root, "small");
        Directory.CreateDirectory(small);
        var mounted = await TestProcess.RunAsync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", small]);
        Assert.True(mounted.ExitCode == 0, "tests run as root (the README's test command and CI do): " + mounted.Stderr);
        try
        {
            var options = new CacheOptions { TierFaultPause = TimeSpan.FromHours(1) };
            options.Tiers = [new TierSpec(TierKind.Mem, Path.Combine(small, "mem"), 64 << 20), new TierSpec(TierKind.Ssd, Path.Combine(root, "ssd"), 64 << 20)];
            options.Policy = "lru";
            await using var store = new TierStore(options, NullLogger.Instance);
            await store.InitializeAsync();

            // Eight blocks of 300 KB: MEM takes what its disk holds, the fill that hits ENOSPC goes to SSD, and so does
            // every later fill (MEM is not tried again within the pause).
            const int Size = 300_000;
            for (var i = 0; i < 8; i++)
            {
                var data = Bytes(Size, 50 + i);
                var fill = store.StartFill(new BlockKey(43, 43, i), Size, Source(data))!;
                await fill.Completion; // no fill fails
                Assert.True(store.TryPeek(new BlockKey(43, 43, i), out var block));
                Assert.Equal(data, ReadBack(block));
            }

            var tiers = Enumerable.Range(0, 8).Select(i => store.TryPeek(new BlockKey(43, 43, i), out var b) ? b.Tier.Name : "?").ToList();
            var firstOnSsd = tiers.IndexOf("SSD");
            Assert.InRange(firstOnSsd, 1, 3);
            Assert.All(tiers.Skip(firstOnSsd), t => Assert.Equal("SSD", t));
            var mem = store.GetReport().Tiers.Single(t => t.Name == "MEM");
            Assert.Equal(1, mem.Faults);
            Assert.Contains("disk was full", mem.OutOfService, StringComparison.Ordinal);
        }
        finally
        {
            await TestProcess.RunAsync("umount", ["-l", small]);
        }
    }

    // A source that sends its first MiB, then nothing until it is cancelled (a stalled S3 body): 16 reads of 64 KiB.
    private static Stream Stalling(byte[] data) => new SlowStream(data, new SemaphoreSlim(16));

    [Fact]
    public async Task A_source_that_stalls_is_asked_again_and_one_that_keeps_stalling_fails_the_fill_and_frees_its_room()
    {
        var root = TestProcess.NewFolder("ts-stall");
        var options = new CacheOptions { FillStallTimeout = TimeSpan.FromMilliseconds(300), FillAttempts = 3 };
        await using var store = await StoreAsync(root, 64 << 20, 64 << 20, template: options);
        var data = Bytes(3 << 20, 61);

        // The first GET stalls after 1 MiB; the second sends everything.
        var opens = 0;
        var key = new BlockKey(44, 44, 0);
        var fill = store.StartFill(key, data.Length, _ => ValueTask.FromResult<Stream>(Interlocked.Increment(ref opens) == 1 ? Stalling(data) : new MemoryStream(data, writable: false)))!;
        await fill.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(2, opens);
        Assert.True(store.TryPeek(key, out var block));
        Assert.Equal(data, ReadBack(block));

        // Every GET stalls: three attempts, then the fill fails naming the stall, and its room is given back.
        var stuck = new BlockKey(44, 44, 1);
        opens = 0;
        var failing = store.StartFill(stuck, data.Length, _ => { Interlocked.Increment(ref opens); return ValueTask.FromResult(Stalling(data)); })!;
        var error = await Assert.ThrowsAnyAsync<IOException>(() => failing.Completion.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("sent nothing for 0.3 s", error.Message, StringComparison.Ordinal);
        Assert.Equal(3, opens);
        Assert.False(store.TryPeek(stuck, out _));
        Assert.Null(store.FindFill(stuck));
        Assert.Equal(block.Header.FileLength, store.Tiers.Sum(t => t.Used));
    }

    [Fact]
    public async Task A_fill_whose_S3_body_is_cut_by_connection_resets_is_asked_again_on_new_connections()
    {
        // Real S3 (moto) behind a proxy that resets (RST) each of the next 5 connections once it carried 256 KiB: more
        // cuts than FillAttempts allows for stalls, fewer than a body that breaks off is given.
        var moto = await MotoServer.Shared;
        var bucket = await moto.CreateBucketAsync("resets");
        var data = Bytes(3 << 20, 71);
        await moto.PutAsync(bucket, "k/obj", data);
        var port = new Uri(moto.Endpoint).Port;
        await using var proxy = new ResetProxy(port) { ResetAfterBytes = 256 << 10, ResetsLeft = 5 };
        var settings = new GrainFs.Storage.UnderStorage.S3Settings(bucket, "k", proxy.Endpoint, "us-east-1", true, new Amazon.Runtime.BasicAWSCredentials("k", "s"));
        await using var s3 = new GrainFs.Storage.UnderStorage.S3UnderStorage(settings);
        var root = TestProcess.NewFolder("ts-reset");
        await using var store = await StoreAsync(root, 64 << 20, 64 << 20, template: new CacheOptions { FillAttempts = 3 });
        var opens = 0;
        var key = new BlockKey(45, 45, 0);
        var fill = store.StartFill(key, data.Length, ct =>
        {
            Interlocked.Increment(ref opens);
            return s3.OpenReadAsync("obj", 0, data.Length, null, ct);
        })!;
        await fill.Completion.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(5, proxy.Resets);
        Assert.Equal(6, opens);
        Assert.True(store.TryPeek(key, out var block));
        Assert.Equal(data, ReadBack(block));
    }

    [Fact]
    public async Task A_fill_is_checksummed_renamed_into_place_and_read_back_exactly()
    {
        var root = TestProcess.NewFolder("ts");
        await using var store = await StoreAsync(root, 64 << 20, 64 << 20);
        var data = Bytes(3 * BlockFile.ChunkSize + 123, 1);
        var key = new BlockKey(1, 2, 0);
        var fill = store.StartFill(key, data.Length, Source(data));
        Assert.NotNull(fill);
        await fill.Completion;
        Assert.True(store.TryGet(key, out var block));
        Assert.Equal(data, ReadBack(block));
        Assert.Equal("MEM", block.Tier.Name);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(root, "mem", "tmp")));
        Assert.Null(store.StartFill(key, data.Length, Source(data)));

        // Unaligned ranged reads check the chunks they touch.
        using var handle = File.OpenHandle(block.Path);
        var part = new byte[1000];
        Assert.Equal(1000, BlockFile.ReadVerified(handle, block.Header, BlockFile.ChunkSize - 500, part, verify: true));
        Assert.Equal(data.AsSpan(BlockFile.ChunkSize - 500, 1000).ToArray(), part);
    }

    [Fact]
    public async Task Concurrent_fills_of_one_block_open_under_storage_once_and_readers_see_bytes_as_they_arrive()
    {
        var root = TestProcess.NewFolder("ts-sf");
        await using var store = await StoreAsync(root, 64 << 20, 64 << 20);
        var data = Bytes(4 << 20, 2);
        var opens = 0;
        var gate = new SemaphoreSlim(0);
        var source = new SlowStream(data, gate);
        var key = new BlockKey(3, 3, 1);
        var fills = Enumerable.Range(0, 16).Select(_ => store.StartFill(key, data.Length, _ =>
        {
            Interlocked.Increment(ref opens);
            return ValueTask.FromResult<Stream>(source);
        })).ToList();
        Assert.All(fills, f => Assert.Same(fills[0], f));

        gate.Release(1);
        var available = await fills[0]!.WaitForAsync(1, CancellationToken.None);
        Assert.InRange(available, 1, data.Length - 1);
        Assert.False(fills[0]!.Completion.IsCompleted, "the first bytes are readable before the block is complete");
        using (var partial = File.OpenHandle(fills[0]!.TempPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        {
            var first = new byte[available];
            RandomAccess.Read(partial, first, BlockFile.HeaderLength(data.Length));
            Assert.Equal(data.AsSpan(0, (int)available).ToArray(), first);
        }

        gate.Release(1000);
        await fills[0]!.Completion;
        Assert.Equal(1, opens);
        Assert.True(store.TryGet(key, out var block));
        Assert.Equal(data, ReadBack(block));
    }

    [Fact]
    public async Task A_corrupted_block_fails_its_checksum_and_is_discarded()
    {
        var root = TestProcess.NewFolder("ts-bad");
        await using var store = await StoreAsync(root, 64 << 20, 64 << 20);
        var data = Bytes(200_000, 3);
        var key = new BlockKey(4, 4, 0);
        await store.StartFill(key, data.Length, Source(data))!.Completion;
        Assert.True(store.TryGet(key, out var block));
        await using (var file = new FileStream(block.Path, FileMode.Open, FileAccess.Write))
        {
            file.Position = BlockFile.HeaderLength(data.Length) + 150_000;
            file.WriteByte((byte)(data[150_000] ^ 0xFF));
        }

        using (var handle = File.OpenHandle(block.Path))
        {
            var buffer = new byte[data.Length];
            Assert.Equal(-1, BlockFile.ReadVerified(handle, block.Header, 0, buffer, verify: true));
            Assert.Equal(100, BlockFile.ReadVerified(handle, block.Header, 0, buffer.AsSpan(0, 100), verify: true));
        }

        await store.DiscardAsync(key);
        Assert.False(store.TryPeek(key, out _));
        Assert.False(File.Exists(block.Path));
        Assert.Equal(1, store.GetReport().Corrupt);
    }

    [Fact]
    public async Task A_restarted_store_finds_its_blocks_again_and_drops_broken_files()
    {
        var root = TestProcess.NewFolder("ts-restart");
        var data = Bytes(100_000, 4);
        string path;
        await using (var store = await StoreAsync(root, 64 << 20, 64 << 20))
        {
            await store.StartFill(new BlockKey(5, 5, 0), data.Length, Source(data))!.Completion;
            await store.StartFill(new BlockKey(5, 5, 1), data.Length, Source(data))!.Completion;
            Assert.True(store.TryPeek(new BlockKey(5, 5, 1), out var second));
            path = second.Path;
        }

        await File.WriteAllBytesAsync(path, [1, 2, 3]);
        await File.WriteAllTextAsync(Path.Combine(root, "mem", "tmp", "leftover"), "x");
        await using var again = await StoreAsync(root, 64 << 20, 64 << 20);
        Assert.True(again.TryGet(new BlockKey(5, 5, 0), out var block));
        Assert.Equal(data, ReadBack(block));
        Assert.False(again.TryPeek(new BlockKey(5, 5, 1), out _));
        Assert.False(File.Exists(path));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(root, "mem", "tmp")));
        Assert.Equal(block.Header.FileLength, again.Tiers[0].Used);
    }

    [Fact]
    public async Task Eviction_demotes_to_the_next_tier_then_drops_and_pinned_blocks_stay()
    {
        var root = TestProcess.NewFolder("ts-evict");
        const int size = 1 << 20;
        var blockBytes = BlockFile.HeaderLength(size) + size;
        await using var store = await StoreAsync(root, 4L * blockBytes, 6L * blockBytes, "lru");
        var pinned = new BlockKey(6, 6, 0);
        await store.StartFill(pinned, size, Source(Bytes(size, 0)), BlockFile.FlagPinned)!.Completion;
        for (var i = 1; i < 16; i++)
        {
            await store.StartFill(new BlockKey(6, 6, i), size, Source(Bytes(size, i)))!.Completion;
            await PassAsync(store);
            foreach (var tier in store.Tiers)
            {
                Assert.True(tier.Used <= tier.Capacity, $"{tier.Name} {tier.Used} > {tier.Capacity}");
            }
        }

        var report = store.GetReport();
        Assert.True(report.Demotions > 0, "blocks evicted from MEM go to SSD first");
        Assert.True(report.Evictions > 0, "and leave the last tier when it fills");
        Assert.True(store.TryPeek(pinned, out var stay));
        Assert.Equal("MEM", stay.Tier.Name);
        foreach (var block in store.Snapshot())
        {
            Assert.Equal(Bytes(size, block.Key.Index), ReadBack(block));
        }
    }

    [Fact]
    public async Task A_hit_in_a_lower_tier_is_promoted_and_ttl_frees_blocks()
    {
        var root = TestProcess.NewFolder("ts-promote");
        const int size = 1 << 20;
        var blockBytes = BlockFile.HeaderLength(size) + size;
        await using var store = await StoreAsync(root, 4L * blockBytes, 16L * blockBytes, "lru");
        for (var i = 0; i < 5; i++)
        {
            await store.StartFill(new BlockKey(7, 7, i), size, Source(Bytes(size, i)))!.Completion;
            await PassAsync(store);
        }

        var demoted = store.Snapshot().First(b => b.Tier.Name == "SSD");
        await store.FreeAsync(store.Snapshot().Where(b => b.Tier.Name == "MEM").Select(b => b.Key));
        Assert.True(store.TryGet(demoted.Key, out _));
        await PassAsync(store);
        Assert.True(store.TryPeek(demoted.Key, out var promoted));
        Assert.Equal("MEM", promoted.Tier.Name);
        Assert.Equal(Bytes(size, demoted.Key.Index), ReadBack(promoted));

        Assert.Equal(1, await store.SetFlagsAsync([demoted.Key], pinned: null, expiresTicks: DateTime.UtcNow.AddSeconds(-1).Ticks));
        await PassAsync(store);
        Assert.False(store.TryPeek(demoted.Key, out _));
    }

    [Fact]
    public async Task A_requested_maintenance_pass_reads_the_clock_after_the_request_and_ends_when_the_service_stops()
    {
        var root = TestProcess.NewFolder("ts-pass");
        var clock = new TestClock();
        // No pass comes from the interval during the test: every pass here is one the test asked for.
        var store = await StoreAsync(root, 16 << 20, 16 << 20, template: new CacheOptions { MaintenanceInterval = TimeSpan.FromHours(1) }, time: clock);
        var key = new BlockKey(9, 9, 0);
        await store.StartFill(key, 1000, Source(Bytes(1000, 9)), expiresTicks: (clock.GetUtcNow() + TimeSpan.FromMinutes(10)).UtcTicks)!.Completion;

        await store.Maintenance.RequestPassAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(store.TryPeek(key, out _), "a block freed before its TTL ran out");

        clock.Advance(TimeSpan.FromMinutes(10));
        await store.Maintenance.RequestPassAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(store.TryPeek(key, out _), "the pass asked for after the TTL ran out left the block");

        await store.DisposeAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => store.Maintenance.RequestPassAsync().WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task No_tier_ever_holds_more_than_its_capacity_under_a_random_workload()
    {
        var root = TestProcess.NewFolder("ts-prop");
        var run = 0;
        var op = Gen.Select(Gen.Int[0, 3], Gen.Int[0, 40], Gen.Int[1, 700_000]);
        await op.Array[20, 60].SampleAsync(async ops =>
        {
            var folder = Path.Combine(root, $"run{Interlocked.Increment(ref run)}");
            var options = new CacheOptions { HighWatermark = 0.9, LowWatermark = 0.7, SpaceWait = TimeSpan.FromSeconds(10) };
            await using var store = await StoreAsync(folder, 2_000_000, 3_000_000, "tinylfu", options);
            var fills = new List<Task>();
            foreach (var (kind, index, size) in ops)
            {
                var key = new BlockKey(8, 8, index);
                switch (kind)
                {
                    case 0:
                    case 1:
                        if (store.StartFill(key, size, Source(Bytes(size, index))) is { } fill)
                        {
                            fills.Add(fill.Completion);
                        }

                        break;
                    case 2:
                        store.TryGet(key, out _);
                        break;
                    default:
                        await store.FreeAsync([key]);
                        break;
                }

                foreach (var tier in store.Tiers)
                {
                    Assert.True(tier.Used <= tier.Capacity, $"{tier.Name} used {tier.Used} > {tier.Capacity}");
                }
            }

            await Task.WhenAll(fills.Select(f => f.ContinueWith(_ => { }, TaskScheduler.Default)));
            await PassAsync(store);
            await store.DisposeAsync();
            foreach (var tier in store.Tiers)
            {
                var onDisk = Directory.EnumerateFiles(Path.Combine(tier.Root, "blocks"), "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
                Assert.Equal(onDisk, tier.Used);
                Assert.True(tier.Used <= tier.Capacity);
            }
        }, iter: 25, threads: 1);
    }

    [Fact]
    public async Task An_unpersisted_block_is_never_evicted_expired_or_freed_until_it_is_marked_persisted()
    {
        var root = TestProcess.NewFolder("ts-dirty");
        const int size = 1 << 20;
        var blockBytes = BlockFile.HeaderLength(size) + size;
        await using var store = await StoreAsync(root, 3L * blockBytes, 3L * blockBytes, "lru");
        var written = new BlockKey(9, 9, 0);
        await store.StartFill(written, size, Source(Bytes(size, 0)), BlockFile.FlagUnpersisted, expiresTicks: DateTime.UtcNow.AddSeconds(-1).Ticks)!.Completion;
        for (var i = 1; i < 12; i++)
        {
            await store.StartFill(new BlockKey(9, 9, i), size, Source(Bytes(size, i)))!.Completion;
            await PassAsync(store);
        }

        Assert.True(store.GetReport().Evictions > 0, "the other blocks were evicted");
        Assert.True(store.TryPeek(written, out var kept));
        Assert.True(kept.Header.Unpersisted);
        Assert.Equal((0, 0L), await store.FreeAsync([written]));
        Assert.True(store.TryPeek(written, out _));

        Assert.Equal(1, await store.SetFlagsAsync([written], pinned: null, expiresTicks: null, unpersisted: false));
        await PassAsync(store);
        Assert.False(store.TryPeek(written, out _), "once persisted, its (past) TTL frees it");
    }

    [Fact]
    public async Task Disposing_the_store_stops_and_waits_for_the_fills_in_progress()
    {
        var root = TestProcess.NewFolder("ts-dispose");
        var store = await StoreAsync(root, 64 << 20, 64 << 20);
        var data = Bytes(1 << 20, 5);
        var gate = new SemaphoreSlim(1);
        var fill = store.StartFill(new BlockKey(10, 10, 0), data.Length, _ => ValueTask.FromResult<Stream>(new SlowStream(data, gate)))!;
        await fill.WaitForAsync(1, CancellationToken.None);

        await store.DisposeAsync();
        Assert.True(fill.Completion.IsCompleted, "dispose returned before the fill ended");
        Assert.True(fill.Completion.IsFaulted || fill.Completion.IsCanceled);
        // No block and no partial fill left: only the tier folder's FORMAT file.
        Assert.Equal([TierFolders.FormatFile], Directory.EnumerateFiles(Path.Combine(root, "mem"), "*", SearchOption.AllDirectories).Select(Path.GetFileName));
        Assert.Equal(0, store.Tiers[0].Used);
    }

    [Fact]
    public async Task A_refill_waits_for_the_deletion_of_the_freed_copy_and_a_busy_block_is_freed_by_its_owner()
    {
        var root = TestProcess.NewFolder("ts-race");
        await using var store = await StoreAsync(root, 64 << 20, 64 << 20);
        var data = Bytes(200_000, 6);
        var key = new BlockKey(11, 11, 0);
        await store.StartFill(key, data.Length, Source(data))!.Completion;
        var index = store.Index;

        // A free takes the block out of the index at once; its file is deleted outside the lock, and until that deletion
        // ends a new copy of the key must not be renamed into place (the late delete would remove it).
        var deletions = index.DetachForFree([key], evenUnpersisted: false, out var freed, out _);
        Assert.Equal(1, freed);
        Assert.False(index.TryPeek(key, out _));
        var wait = index.WaitForRemovalsAsync(key, CancellationToken.None).AsTask();
        Assert.False(wait.IsCompleted);
        var (path, removal) = Assert.Single(deletions);
        File.Delete(path);
        index.EndRemoval(removal);
        await wait.WaitAsync(TimeSpan.FromSeconds(10));

        // A block whose file is owned (a move, a header rewrite) is freed by the owner when it lets go.
        await store.StartFill(key, data.Length, Source(data))!.Completion;
        Assert.True(index.TryClaim(key, out var owned));
        Assert.Empty(index.DetachForFree([key], evenUnpersisted: false, out freed, out _));
        Assert.Equal(1, freed);
        Assert.False(index.WaitForRemovalsAsync(key, CancellationToken.None).IsCompleted);
        var deferred = Assert.Single(index.Unclaim(owned));
        Assert.Equal(owned.Path, deferred.Path);
        File.Delete(deferred.Path);
        index.EndRemoval(deferred.Removal);
        await index.WaitForRemovalsAsync(key, CancellationToken.None);
        Assert.Equal(0, store.Tiers[0].Used);
    }

    /// <summary>A stream that hands out 64 KiB per permit, so a test can watch a fill in progress.</summary>
    private sealed class SlowStream(byte[] data, SemaphoreSlim gate) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => data.Length;

        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await gate.WaitAsync(cancellationToken);
            var n = Math.Min(Math.Min(buffer.Length, 64 * 1024), data.Length - _position);
            data.AsMemory(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
