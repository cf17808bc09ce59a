using GrainFs.Storage.Metadata;

namespace GrainFs.Tests.Storage;

/// <summary>The contract every metadata store keeps; run against each engine by a subclass.</summary>
public abstract class MetadataStoreContract
{
    protected abstract Task<IMetadataStore> CreateStoreAsync();

    protected static EntryRecord File(string name, long size = 100) =>
        new(name, EntryKind.File, size, new DateTime(2025, 1, 2, 3, 4, 5, DateTimeKind.Utc).Ticks + size, $"{size:x32}", 0x1A4);

    [Fact]
    public async Task A_new_store_has_an_empty_mount_table()
    {
        var store = await CreateStoreAsync();
        var table = await store.LoadMountTableAsync();
        Assert.Equal(0, table.Version);
        Assert.Empty(table.Mounts);
        Assert.True(table.NextId >= 1);
    }

    [Fact]
    public async Task The_mount_table_round_trips_and_refuses_a_stale_writer()
    {
        var store = await CreateStoreAsync();
        var created = new DateTime(2026, 5, 6, 7, 8, 9, DateTimeKind.Utc);
        var v1 = new StoredMountTable(1, 3, [new StoredMount(1, "/a", "file:///a", """{"ReadOnly":true}""", created), new StoredMount(2, "/b", "s3://b/p", "{}", created)]);
        await store.SaveMountTableAsync(v1, expectedVersion: 0);
        var loaded = await store.LoadMountTableAsync();
        Assert.Equal(1, loaded.Version);
        Assert.Equal(3, loaded.NextId);
        Assert.Equal(["/a", "/b"], loaded.Mounts.Select(m => m.Path));
        Assert.Equal("s3://b/p", loaded.Mounts[1].Uri);
        Assert.Equal(created, loaded.Mounts[0].CreatedUtc.ToUniversalTime());
        Assert.Contains("ReadOnly", loaded.Mounts[0].OptionsJson, StringComparison.Ordinal);

        await Assert.ThrowsAsync<MetadataConflictException>(async () => await store.SaveMountTableAsync(v1 with { Version = 2 }, expectedVersion: 0));
        await store.SaveMountTableAsync(new StoredMountTable(2, 3, [v1.Mounts[1]]), expectedVersion: 1);
        Assert.Equal(["/b"], (await store.LoadMountTableAsync()).Mounts.Select(m => m.Path));
    }

    [Fact]
    public async Task A_directory_listing_round_trips_with_every_field()
    {
        var store = await CreateStoreAsync();
        var entries = Enumerable.Range(0, 500).Select(i => File($"img{i:D4}.jpg", i)).Append(new EntryRecord("sub", EntryKind.Directory, 0, 5, string.Empty, 0x1ED)).ToList();
        var synced = new DateTime(2026, 11, 1, 12, 0, 0, DateTimeKind.Utc);
        await store.SaveDirectoryAsync("7:0:a/b", 7, new DirectorySnapshot(DirectoryState.Listed, DirectoryTable.Build(entries), synced, 3, 1));
        var loaded = await store.LoadDirectoryAsync("7:0:a/b");
        Assert.NotNull(loaded);
        Assert.Equal(DirectoryState.Listed, loaded.State);
        Assert.Equal(3, loaded.Generation);
        Assert.Equal(1, loaded.ShardCount);
        Assert.Equal(synced, loaded.SyncedUtc);
        Assert.Equal(entries.Count, loaded.Table.Count);
        foreach (var e in entries)
        {
            Assert.Equal(e, loaded.Table[loaded.Table.IndexOf(e.Name)]);
        }
    }

    [Fact]
    public async Task A_directory_deeper_than_an_index_entry_holds_round_trips_with_its_entries_and_overlay()
    {
        // 40 components of 100 bytes: a 4 KB path, past PostgreSQL's ~2.7 KB b-tree entry.
        var store = await CreateStoreAsync();
        var deep = "31:0:" + string.Join('/', Enumerable.Range(0, 40).Select(i => new string((char)('a' + (i % 26)), 100)));
        var other = deep[..^1] + "z";
        var entries = new List<EntryRecord> { File("leaf.bin", 1), File("twig.bin", 2) };
        await store.SaveDirectoryAsync(deep, 31, new DirectorySnapshot(DirectoryState.Listed, DirectoryTable.Build(entries), DateTime.UtcNow, 1, 1));
        await store.PutOverlayAsync(deep, 31, Written("new.bin", 5));
        var loaded = await store.LoadDirectoryAsync(deep);
        Assert.NotNull(loaded);
        Assert.Equal(2, loaded.Table.Count);
        Assert.Equal(["new.bin"], (await OverlayByNameAsync(store, deep)).Select(e => e.Name));

        // A path differing only in its last byte is another directory.
        Assert.Null(await store.LoadDirectoryAsync(other));
        Assert.Empty(await OverlayByNameAsync(store, other));
    }

    [Fact]
    public async Task Several_listings_saved_together_all_round_trip()
    {
        var store = await CreateStoreAsync();
        await store.SaveDirectoriesAsync(9, [
            new("9:1:big", new DirectorySnapshot(DirectoryState.Listed, DirectoryTable.Build([File("a")]), DateTime.UtcNow, 4, 2)),
            new("9:2:big", new DirectorySnapshot(DirectoryState.Listed, DirectoryTable.Build([File("b")]), DateTime.UtcNow, 4, 2)),
            new("9:0:big", new DirectorySnapshot(DirectoryState.Listed, DirectoryTable.Empty, DateTime.UtcNow, 4, 2)),
        ]);
        Assert.Equal(["a"], Names((await store.LoadDirectoryAsync("9:1:big"))!.Table));
        Assert.Equal(["b"], Names((await store.LoadDirectoryAsync("9:2:big"))!.Table));
        Assert.Equal(4, (await store.LoadDirectoryAsync("9:0:big"))!.Generation);
    }

    [Fact]
    public async Task Saving_again_replaces_the_listing_and_negative_answers_are_kept()
    {
        var store = await CreateStoreAsync();
        await store.SaveDirectoryAsync("8:0:x", 8, new DirectorySnapshot(DirectoryState.Listed, DirectoryTable.Build([File("old")]), DateTime.UtcNow, 1, 1));
        await store.SaveDirectoryAsync("8:0:x", 8, new DirectorySnapshot(DirectoryState.Listed, DirectoryTable.Build([File("new1"), File("new2")]), DateTime.UtcNow, 2, 1));
        var loaded = await store.LoadDirectoryAsync("8:0:x");
        Assert.Equal(2, loaded!.Table.Count);
        Assert.Equal(-1, loaded.Table.IndexOf("old"));

        await store.SaveDirectoryAsync("8:0:missing", 8, new DirectorySnapshot(DirectoryState.NotFound, DirectoryTable.Empty, DateTime.UtcNow, 1, 1));
        Assert.Equal(DirectoryState.NotFound, (await store.LoadDirectoryAsync("8:0:missing"))!.State);
        Assert.Null(await store.LoadDirectoryAsync("8:0:never-saved"));
    }

    [Fact]
    public async Task One_entry_is_added_replaced_and_removed_leaving_the_rest_of_the_listing()
    {
        var store = await CreateStoreAsync();
        var entries = Enumerable.Range(0, 500).Select(i => File($"e{i:D3}", i)).ToList();
        var synced = new DateTime(2026, 11, 2, 0, 0, 0, DateTimeKind.Utc);
        await store.SaveDirectoryAsync("12:0:d", 12, new DirectorySnapshot(DirectoryState.Listed, DirectoryTable.Build(entries), synced, 4, 1));

        Assert.True(await store.UpsertEntryAsync("12:0:d", File("new", 7)));
        Assert.True(await store.UpsertEntryAsync("12:0:d", File("e100", 123_456)));
        Assert.True(await store.DeleteEntryAsync("12:0:d", "e200"));
        Assert.False(await store.DeleteEntryAsync("12:0:d", "e200"));
        Assert.False(await store.DeleteEntryAsync("12:0:d", "never-there"));

        var loaded = (await store.LoadDirectoryAsync("12:0:d"))!;
        Assert.Equal(500, loaded.Table.Count);
        Assert.Equal(File("new", 7), loaded.Table[loaded.Table.IndexOf("new")]);
        Assert.Equal(123_456, loaded.Table[loaded.Table.IndexOf("e100")].Size);
        Assert.Equal(-1, loaded.Table.IndexOf("e200"));
        Assert.Equal(entries[499], loaded.Table[loaded.Table.IndexOf("e499")]);
        Assert.Equal(4, loaded.Generation);
        Assert.Equal(synced, loaded.SyncedUtc);

        // A whole listing saved later replaces the edits.
        await store.SaveDirectoryAsync("12:0:d", 12, new DirectorySnapshot(DirectoryState.Listed, DirectoryTable.Build([File("only")]), synced, 5, 1));
        Assert.Equal(["only"], Names((await store.LoadDirectoryAsync("12:0:d"))!.Table));
    }

    [Fact]
    public async Task Entry_edits_to_a_directory_never_listed_write_nothing()
    {
        var store = await CreateStoreAsync();
        Assert.False(await store.UpsertEntryAsync("13:0:unlisted", File("f")));
        Assert.False(await store.DeleteEntryAsync("13:0:unlisted", "f"));
        Assert.Null(await store.LoadDirectoryAsync("13:0:unlisted"));
    }

    protected static List<string> Names(DirectoryTable table) => [.. Enumerable.Range(0, table.Count).Select(i => table[i].Name)];

    [Fact]
    public async Task Deleting_a_mount_forgets_its_directories_only()
    {
        var store = await CreateStoreAsync();
        var snapshot = new DirectorySnapshot(DirectoryState.Listed, DirectoryTable.Build([File("f")]), DateTime.UtcNow, 1, 1);
        await store.SaveDirectoryAsync("9:0:", 9, snapshot);
        await store.SaveDirectoryAsync("9:2:big", 9, snapshot);
        await store.SaveDirectoryAsync("10:0:", 10, snapshot);
        await store.DeleteMountDataAsync(9);
        Assert.Null(await store.LoadDirectoryAsync("9:0:"));
        Assert.Null(await store.LoadDirectoryAsync("9:2:big"));
        Assert.NotNull(await store.LoadDirectoryAsync("10:0:"));
    }

    private static OverlayEntry Written(string name, long size = 4096, string[]? holders = null, byte persistence = 1, string? error = null) =>
        new(name, EntryKind.File, size, new DateTime(2026, 3, 4, 5, 6, 7, DateTimeKind.Utc).Ticks + size, $"gfs:{size:x16}", 0x1A4, 1000, 100,
            holders ?? ["silo-a:11111", "silo-b:22222"], persistence, error, Deleted: false);

    // Records compare arrays by reference, so the holders are compared by content here.
    private static void AssertSameOverlay(OverlayEntry expected, OverlayEntry actual)
    {
        Assert.Equal(expected with { Holders = [] }, actual with { Holders = [] });
        Assert.Equal(expected.Holders, actual.Holders);
    }

    private static async Task<List<OverlayEntry>> OverlayByNameAsync(IMetadataStore store, string key) =>
        [.. (await store.LoadOverlayAsync(key)).OrderBy(e => e.Name, StringComparer.Ordinal)];

    [Fact]
    public async Task Overlay_entries_round_trip_with_every_field()
    {
        var store = await CreateStoreAsync();
        OverlayEntry[] entries =
        [
            Written("failed.bin", 123_456_789_012, persistence: 2, error: "upload failed: s3 answered 503 SlowDown"),
            new("gone", EntryKind.Directory, 0, 42, string.Empty, 0, -1, -1, [], 0, null, Deleted: true),
            new(".", EntryKind.Directory, 0, 7, string.Empty, 0x1ED, 0, 0, [], 3, null, Deleted: false),
            Written("naïve 日本語 'q\"\\ \t\n%*?.txt", 1, holders: ["silo-c:33333"], persistence: 0),
        ];
        foreach (var entry in entries)
        {
            await store.PutOverlayAsync("30:0:a/b", 30, entry);
        }

        var loaded = await OverlayByNameAsync(store, "30:0:a/b");
        var expected = entries.OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
        Assert.Equal(expected.Count, loaded.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            AssertSameOverlay(expected[i], loaded[i]);
        }

        Assert.Equal(2, loaded.Single(e => e.Name == "failed.bin").Holders.Length);
        Assert.Empty(loaded.Single(e => e.Name == "gone").Holders);
        Assert.Null(loaded.Single(e => e.Name == "gone").Error);
        Assert.True(loaded.Single(e => e.Name == "gone").Deleted);
    }

    [Fact]
    public async Task Putting_an_overlay_entry_again_replaces_the_one_of_that_name()
    {
        var store = await CreateStoreAsync();
        await store.PutOverlayAsync("31:0:d", 31, Written("f", 10, holders: ["silo-a:1"], persistence: 2, error: "disk full"));
        await store.PutOverlayAsync("31:0:d", 31, Written("other", 5));
        var replacement = Written("f", 20, holders: [], persistence: 0) with { Mode = 0x180, Uid = 7, Gid = 8 };
        await store.PutOverlayAsync("31:0:d", 31, replacement);

        var loaded = await OverlayByNameAsync(store, "31:0:d");
        Assert.Equal(["f", "other"], loaded.Select(e => e.Name));
        AssertSameOverlay(replacement, loaded[0]);
        AssertSameOverlay(Written("other", 5), loaded[1]);

        // A tombstone replaces the written file of its name.
        await store.PutOverlayAsync("31:0:d", 31, replacement with { Deleted = true });
        Assert.True((await OverlayByNameAsync(store, "31:0:d"))[0].Deleted);
    }

    [Fact]
    public async Task Removing_an_overlay_entry_is_true_once_then_false()
    {
        var store = await CreateStoreAsync();
        await store.PutOverlayAsync("32:0:d", 32, Written("a"));
        await store.PutOverlayAsync("32:0:d", 32, Written("b"));
        Assert.True(await store.RemoveOverlayAsync("32:0:d", "a"));
        Assert.False(await store.RemoveOverlayAsync("32:0:d", "a"));
        Assert.False(await store.RemoveOverlayAsync("32:0:d", "never-there"));
        Assert.False(await store.RemoveOverlayAsync("32:0:never-used", "b"));
        Assert.Equal(["b"], (await OverlayByNameAsync(store, "32:0:d")).Select(e => e.Name));
        Assert.True(await store.RemoveOverlayAsync("32:0:d", "b"));
        Assert.Empty(await store.LoadOverlayAsync("32:0:d"));
    }

    [Fact]
    public async Task Overlay_keys_are_independent_of_each_other_and_of_listings()
    {
        var store = await CreateStoreAsync();
        await store.SaveDirectoryAsync("33:0:a", 33, new DirectorySnapshot(DirectoryState.Listed, DirectoryTable.Build([File("f", 1)]), DateTime.UtcNow, 1, 1));
        await store.PutOverlayAsync("33:0:a", 33, Written("f", 111));
        await store.PutOverlayAsync("33:0:b", 33, Written("f", 222));
        await store.PutOverlayAsync("33:1:a", 33, Written("f", 333));

        Assert.True(await store.RemoveOverlayAsync("33:0:a", "f"));
        Assert.Empty(await store.LoadOverlayAsync("33:0:a"));
        Assert.Equal(222, Assert.Single(await store.LoadOverlayAsync("33:0:b")).Size);
        Assert.Equal(333, Assert.Single(await store.LoadOverlayAsync("33:1:a")).Size);
        Assert.Empty(await store.LoadOverlayAsync("33:0:never-used"));

        // The overlay is not the listing: neither changes the other.
        var listing = (await store.LoadDirectoryAsync("33:0:a"))!;
        Assert.Equal(File("f", 1), listing.Table[listing.Table.IndexOf("f")]);
        await store.SaveDirectoryAsync("33:0:b", 33, new DirectorySnapshot(DirectoryState.Listed, DirectoryTable.Empty, DateTime.UtcNow, 2, 1));
        Assert.Single(await store.LoadOverlayAsync("33:0:b"));
    }

    [Fact]
    public async Task The_usage_of_a_mount_never_added_to_is_zero()
    {
        var store = await CreateStoreAsync();
        Assert.Equal(new MountUsage(0, 0), await store.LoadUsageAsync(34));
    }

    [Fact]
    public async Task Usage_adds_either_sign_returns_the_new_value_and_stops_at_zero()
    {
        var store = await CreateStoreAsync();
        Assert.Equal(new MountUsage(100, 2), await store.AddUsageAsync(35, new MountUsage(100, 2)));
        Assert.Equal(new MountUsage(150, 3), await store.AddUsageAsync(35, new MountUsage(50, 1)));
        Assert.Equal(new MountUsage(120, 2), await store.AddUsageAsync(35, new MountUsage(-30, -1)));
        Assert.Equal(new MountUsage(120, 2), await store.LoadUsageAsync(35));

        // Each field is clamped on its own, and a clamp leaves no debt behind.
        Assert.Equal(new MountUsage(0, 5), await store.AddUsageAsync(35, new MountUsage(-1_000, 3)));
        Assert.Equal(new MountUsage(10, 0), await store.AddUsageAsync(35, new MountUsage(10, -9)));
        Assert.Equal(new MountUsage(10, 0), await store.LoadUsageAsync(35));

        // A first add below zero starts at zero too; other mounts are untouched.
        Assert.Equal(new MountUsage(0, 4), await store.AddUsageAsync(36, new MountUsage(-5, 4)));
        Assert.Equal(new MountUsage(10, 0), await store.LoadUsageAsync(35));
        Assert.Equal(new MountUsage(0, 0), await store.LoadUsageAsync(37));
    }

    [Fact]
    public async Task Concurrent_usage_adds_are_all_counted()
    {
        var store = await CreateStoreAsync();
        await Task.WhenAll(Enumerable.Range(0, 40).Select(_ => store.AddUsageAsync(38, new MountUsage(4096, 1)).AsTask()));
        Assert.Equal(new MountUsage(40 * 4096, 40), await store.LoadUsageAsync(38));
    }

    [Fact]
    public async Task Deleting_a_mount_forgets_its_overlay_entries_and_usage_only()
    {
        var store = await CreateStoreAsync();
        await store.PutOverlayAsync("39:0:", 39, Written("a"));
        await store.PutOverlayAsync("39:2:big", 39, Written("b"));
        await store.PutOverlayAsync("40:0:", 40, Written("c", 77));
        await store.AddUsageAsync(39, new MountUsage(1_000, 2));
        await store.AddUsageAsync(40, new MountUsage(77, 1));

        await store.DeleteMountDataAsync(39);

        Assert.Empty(await store.LoadOverlayAsync("39:0:"));
        Assert.Empty(await store.LoadOverlayAsync("39:2:big"));
        Assert.Equal(new MountUsage(0, 0), await store.LoadUsageAsync(39));
        AssertSameOverlay(Written("c", 77), Assert.Single(await store.LoadOverlayAsync("40:0:")));
        Assert.Equal(new MountUsage(77, 1), await store.LoadUsageAsync(40));

        // Usage of the deleted mount starts again from zero.
        Assert.Equal(new MountUsage(5, 1), await store.AddUsageAsync(39, new MountUsage(5, 1)));
    }

    [Fact]
    public async Task A_large_directory_is_stored_and_loaded_whole()
    {
        var store = await CreateStoreAsync();
        var entries = Enumerable.Range(0, 100_000).Select(i => File($"n{i:D7}.JPEG", 1000 + i)).ToList();
        await store.SaveDirectoryAsync("11:1:train", 11, new DirectorySnapshot(DirectoryState.Listed, DirectoryTable.Build(entries), DateTime.UtcNow, 1, 4));
        var loaded = await store.LoadDirectoryAsync("11:1:train");
        Assert.Equal(100_000, loaded!.Table.Count);
        Assert.Equal(4, loaded.ShardCount);
        Assert.Equal(entries[77_777], loaded.Table[loaded.Table.IndexOf(entries[77_777].Name)]);
    }
}

public sealed class InMemoryMetadataStoreTests : MetadataStoreContract
{
    protected override Task<IMetadataStore> CreateStoreAsync() => Task.FromResult<IMetadataStore>(new InMemoryMetadataStore());
}

public sealed class PostgresMetadataStoreTests : MetadataStoreContract
{
    protected override async Task<IMetadataStore> CreateStoreAsync()
    {
        var server = await Infrastructure.PostgresServer.Shared;
        var store = new PostgresMetadataStore(await server.CreateDatabaseAsync("contract"));
        await store.InitializeAsync();
        return store;
    }

    [Fact]
    public async Task A_sharded_save_that_fails_part_way_leaves_the_previous_generation_whole()
    {
        var store = await CreateStoreAsync();
        KeyValuePair<string, DirectorySnapshot> Listing(int shard, long generation, string name) =>
            new($"5:{shard}:d", new DirectorySnapshot(DirectoryState.Listed, shard == 0 ? DirectoryTable.Empty : DirectoryTable.Build([File(name)]), DateTime.UtcNow, generation, 2));
        await store.SaveDirectoriesAsync(5, [Listing(1, 1, "one"), Listing(2, 1, "two"), Listing(0, 1, string.Empty)]);

        // Generation 2: the first shard is written, then PostgreSQL refuses the second (a name with a NUL byte, which a
        // text column cannot hold), before the head. Nothing of generation 2 may remain (before, each save was its own
        // transaction: shard 1 of generation 2 stayed beside a head of generation 1, and that shard was "missing").
        var refused = await Assert.ThrowsAnyAsync<Exception>(async () => await store.SaveDirectoriesAsync(5, [Listing(1, 2, "uno"), Listing(2, 2, "d\0s"), Listing(0, 2, string.Empty)]));
        Assert.IsAssignableFrom<System.Data.Common.DbException>(refused);
        Assert.Equal(["one"], Names((await store.LoadDirectoryAsync("5:1:d"))!.Table));
        Assert.Equal(1, (await store.LoadDirectoryAsync("5:1:d"))!.Generation);
        Assert.Equal(["two"], Names((await store.LoadDirectoryAsync("5:2:d"))!.Table));
        Assert.Equal(1, (await store.LoadDirectoryAsync("5:0:d"))!.Generation);
    }

    [Fact]
    public async Task After_the_server_is_killed_and_started_again_the_next_operations_succeed_on_new_connections()
    {
        // A server of its own, killed as a crashed database host is (SIGKILL of the postmaster and every backend).
        await using var server = await Infrastructure.PostgresServer.StartNewAsync();
        await using var store = new PostgresMetadataStore(await server.CreateDatabaseAsync("restarted"));
        await store.InitializeAsync();
        var table = new StoredMountTable(1, 2, [new StoredMount(1, "/m", "file:///m", "{}", DateTime.UtcNow)]);
        await store.SaveMountTableAsync(table, 0);

        // Several pooled connections, each left open to the server about to die.
        await Task.WhenAll(Enumerable.Range(0, 8).Select(async i => await store.LoadDirectoryAsync($"1:0:d{i}")));
        foreach (var pid in server.ServerProcesses())
        {
            Assert.Equal(0, Kill(pid, 9));
        }

        // While it is down: a driver error the caller can name (not a hang).
        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(async () => await store.LoadMountTableAsync());
        await server.StartAgainAsync();

        // Every pooled connection is broken; none of them fails an operation now.
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal("/m", Assert.Single((await store.LoadMountTableAsync()).Mounts).Path);
            Assert.Null(await store.LoadDirectoryAsync($"1:0:d{i}"));
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);

    [Fact]
    public async Task A_database_without_the_schema_is_refused_with_the_fix()
    {
        var server = await Infrastructure.PostgresServer.Shared;
        await using (var connection = new Npgsql.NpgsqlConnection(server.ConnectionString("postgres")))
        {
            await connection.OpenAsync();
            await using var command = new Npgsql.NpgsqlCommand("create database noschema_db", connection);
            await command.ExecuteNonQueryAsync();
        }

        var store = new PostgresMetadataStore(server.ConnectionString("noschema_db") + ";Password=hunter2");
        var error = await Assert.ThrowsAsync<InvalidOperationException>(async () => await store.InitializeAsync());
        Assert.Contains("infra/db/apply.sh", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_database_at_an_older_schema_version_is_refused_with_the_fix()
    {
        var server = await Infrastructure.PostgresServer.Shared;
        var connectionString = await server.CreateDatabaseAsync("oldschema");
        await using (var connection = new Npgsql.NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync();
            await using var command = new Npgsql.NpgsqlCommand($"update grainfs_schema set version = {PostgresMetadataStore.SchemaVersion - 1}", connection);
            Assert.Equal(1, await command.ExecuteNonQueryAsync());
        }

        var store = new PostgresMetadataStore(connectionString);
        var error = await Assert.ThrowsAsync<InvalidOperationException>(async () => await store.InitializeAsync());
        Assert.Contains($"version {PostgresMetadataStore.SchemaVersion - 1}, this build needs {PostgresMetadataStore.SchemaVersion}", error.Message, StringComparison.Ordinal);
        Assert.Contains("infra/db/apply.sh", error.Message, StringComparison.Ordinal);
    }
}
