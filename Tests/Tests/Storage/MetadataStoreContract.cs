using GrainFs.Storage.Metadata;

namespace GrainFs.Tests.Storage;

/// <summary>The contract every metadata store keeps; run against each engine by a subclass.</summary>
public abstract class MetadataStoreContract
{
    protected abstract Task<IMetadataStore> CreateStoreAsync();

    private static EntryRecord File(string name, long size = 100) =>
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

    private static List<string> Names(DirectoryTable table) => [.. Enumerable.Range(0, table.Count).Select(i => table[i].Name)];

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
}
