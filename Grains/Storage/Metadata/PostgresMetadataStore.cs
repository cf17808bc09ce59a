using Npgsql;
using NpgsqlTypes;

namespace GrainFs.Storage.Metadata;

/// <summary>
/// Metadata in PostgreSQL (the schema of infra/db, applied by infra/db/apply.sh): the mount table, and one
/// row per cached entry written in bulk with binary COPY. Silo memory then holds only active directories.
/// Overlay entries and mount usage are in PostgresMetadataStore.Overlay.cs.
/// </summary>
public sealed partial class PostgresMetadataStore : IMetadataStore, IAsyncDisposable
{
    /// <summary>Directory keys longer than this (UTF-8 bytes) are stored by their digest.</summary>
    public const int MaxStoredKeyBytes = 2000;

    /// <summary>
    /// The key a directory is stored under: itself, or for a very deep path "#" and the SHA-256 of the key in hex. A
    /// b-tree index entry holds at most ~2.7 KB, so a directory path past that failed every save; keys start with the
    /// mount id, never with "#", so a digest cannot meet a plain key.
    /// </summary>
    public static string DbKey(string key) =>
        System.Text.Encoding.UTF8.GetByteCount(key) <= MaxStoredKeyBytes
            ? key
            : "#" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key)));

    /// <summary>The schema version this code expects (grainfs_schema.version).</summary>
    public const int SchemaVersion = 3;

    private readonly NpgsqlDataSource _dataSource;
    private readonly string _safeConnection;

    /// <summary>Creates the store for an Npgsql connection string.</summary>
    public PostgresMetadataStore(string connectionString)
    {
        _dataSource = NpgsqlDataSource.Create(connectionString);
        _safeConnection = Describe(connectionString);
    }

    /// <inheritdoc />
    public string Kind => "postgres";

    /// <summary>A connection string as safe to print: the password removed.</summary>
    public static string Describe(string connectionString)
    {
        try
        {
            var builder = new NpgsqlConnectionStringBuilder(connectionString);
            return $"Host={builder.Host};Port={builder.Port};Database={builder.Database};Username={builder.Username}";
        }
        catch (ArgumentException)
        {
            return "(unparsable connection string)";
        }
    }

    /// <inheritdoc />
    public async ValueTask InitializeAsync(CancellationToken cancellationToken = default)
    {
        int? version;
        try
        {
            await using var command = _dataSource.CreateCommand("select version from grainfs_schema where id = 1");
            version = (int?)await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            version = null;
        }
        catch (NpgsqlException e)
        {
            throw new InvalidOperationException($"cannot reach the PostgreSQL metadata store at {_safeConnection}: {e.Message}", e);
        }

        if (version is null)
        {
            throw new InvalidOperationException($"the GrainFS schema is missing in {_safeConnection}: run infra/db/apply.sh with this connection string");
        }

        if (version != SchemaVersion)
        {
            throw new InvalidOperationException($"the GrainFS schema in {_safeConnection} is at version {version}, this build needs {SchemaVersion}: run infra/db/apply.sh");
        }
    }

    /// <inheritdoc />
    public ValueTask<StoredMountTable> LoadMountTableAsync(CancellationToken cancellationToken = default) =>
        RetryAsync(ct => LoadMountTableOnceAsync(ct), cancellationToken);

    private async ValueTask<StoredMountTable> LoadMountTableOnceAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        long version = 0, nextId = 1;
        await using (var command = new NpgsqlCommand("select version, next_id from grainfs_mount_table where id = 1", connection))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                version = reader.GetInt64(0);
                nextId = reader.GetInt64(1);
            }
        }

        var mounts = new List<StoredMount>();
        await using (var command = new NpgsqlCommand("select mount_id, path, uri, options::text, created_at from grainfs_mounts order by path", connection))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                mounts.Add(new StoredMount(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetDateTime(4)));
            }
        }

        return new StoredMountTable(version, nextId, mounts);
    }

    /// <inheritdoc />
    public ValueTask SaveMountTableAsync(StoredMountTable table, long expectedVersion, CancellationToken cancellationToken = default) =>
        RetryAsync(ct => SaveMountTableOnceAsync(table, expectedVersion, ct), cancellationToken);

    private async ValueTask SaveMountTableOnceAsync(StoredMountTable table, long expectedVersion, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var command = new NpgsqlCommand(
            """
            insert into grainfs_mount_table (id, version, next_id) values (1, @version, @next)
            on conflict (id) do update set version = excluded.version, next_id = excluded.next_id
            where grainfs_mount_table.version = @expected
            """, connection, transaction))
        {
            command.Parameters.AddWithValue("version", table.Version);
            command.Parameters.AddWithValue("next", table.NextId);
            command.Parameters.AddWithValue("expected", expectedVersion);
            var changed = await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            if (changed != 1)
            {
                throw new MetadataConflictException($"mount table changed concurrently (expected version {expectedVersion})");
            }
        }

        await using (var command = new NpgsqlCommand("delete from grainfs_mounts", connection, transaction))
        {
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        foreach (var mount in table.Mounts)
        {
            await using var command = new NpgsqlCommand(
                "insert into grainfs_mounts (mount_id, path, uri, options, created_at) values (@id, @path, @uri, @options::jsonb, @created)", connection, transaction);
            command.Parameters.AddWithValue("id", mount.Id);
            command.Parameters.AddWithValue("path", mount.Path);
            command.Parameters.AddWithValue("uri", mount.Uri);
            command.Parameters.AddWithValue("options", mount.OptionsJson);
            command.Parameters.AddWithValue("created", DateTime.SpecifyKind(mount.CreatedUtc, DateTimeKind.Utc));
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask<DirectorySnapshot?> LoadDirectoryAsync(string key, CancellationToken cancellationToken = default) =>
        RetryAsync(ct => LoadDirectoryOnceAsync(key, ct), cancellationToken);

    private async ValueTask<DirectorySnapshot?> LoadDirectoryOnceAsync(string key, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        long dirId;
        DirectoryState state;
        DateTime synced;
        long generation;
        int shards, count;
        await using (var command = new NpgsqlCommand(
            "select dir_id, state, synced_at, generation, shard_count, entry_count from grainfs_directories where dir_key = @key", connection))
        {
            command.Parameters.AddWithValue("key", DbKey(key));
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                return null;
            }

            dirId = reader.GetInt64(0);
            state = (DirectoryState)reader.GetInt16(1);
            synced = reader.GetDateTime(2);
            generation = reader.GetInt64(3);
            shards = reader.GetInt32(4);
            count = reader.GetInt32(5);
        }

        var entries = new List<EntryRecord>(count);
        await using (var command = new NpgsqlCommand(
            "select name, kind, size, mtime_ticks, etag, mode from grainfs_entries where dir_id = @id", connection))
        {
            command.Parameters.AddWithValue("id", dirId);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                entries.Add(new EntryRecord(reader.GetString(0), (EntryKind)reader.GetInt16(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetString(4), reader.GetInt32(5)));
            }
        }

        return new DirectorySnapshot(state, DirectoryTable.Build(entries), DateTime.SpecifyKind(synced, DateTimeKind.Utc), generation, shards);
    }

    /// <inheritdoc />
    public ValueTask SaveDirectoryAsync(string key, long mountId, DirectorySnapshot snapshot, CancellationToken cancellationToken = default) =>
        SaveDirectoriesAsync(mountId, [new KeyValuePair<string, DirectorySnapshot>(key, snapshot)], cancellationToken);

    /// <inheritdoc />
    public ValueTask SaveDirectoriesAsync(long mountId, IReadOnlyList<KeyValuePair<string, DirectorySnapshot>> listings, CancellationToken cancellationToken = default) =>
        RetryAsync(ct => SaveDirectoriesOnceAsync(mountId, listings, ct), cancellationToken);

    private async ValueTask SaveDirectoriesOnceAsync(long mountId, IReadOnlyList<KeyValuePair<string, DirectorySnapshot>> listings, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        foreach (var (key, snapshot) in listings)
        {
            await SaveDirectoryAsync(connection, transaction, key, mountId, snapshot, cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async ValueTask SaveDirectoryAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string key, long mountId, DirectorySnapshot snapshot, CancellationToken cancellationToken)
    {
        long dirId;
        await using (var command = new NpgsqlCommand(
            """
            insert into grainfs_directories (dir_key, mount_id, state, synced_at, generation, shard_count, entry_count)
            values (@key, @mount, @state, @synced, @generation, @shards, @count)
            on conflict (dir_key) do update set mount_id = excluded.mount_id, state = excluded.state, synced_at = excluded.synced_at,
              generation = excluded.generation, shard_count = excluded.shard_count, entry_count = excluded.entry_count
            returning dir_id
            """, connection, transaction))
        {
            command.Parameters.AddWithValue("key", DbKey(key));
            command.Parameters.AddWithValue("mount", mountId);
            command.Parameters.AddWithValue("state", (short)snapshot.State);
            command.Parameters.AddWithValue("synced", DateTime.SpecifyKind(snapshot.SyncedUtc, DateTimeKind.Utc));
            command.Parameters.AddWithValue("generation", snapshot.Generation);
            command.Parameters.AddWithValue("shards", snapshot.ShardCount);
            command.Parameters.AddWithValue("count", snapshot.Table.Count);
            dirId = (long)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }

        await using (var command = new NpgsqlCommand("delete from grainfs_entries where dir_id = @id", connection, transaction))
        {
            command.Parameters.AddWithValue("id", dirId);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        if (snapshot.Table.Count > 0)
        {
            await using var writer = await connection.BeginBinaryImportAsync(
                "copy grainfs_entries (dir_id, name, kind, size, mtime_ticks, etag, mode) from stdin (format binary)", cancellationToken).ConfigureAwait(false);
            var table = snapshot.Table;
            for (var i = 0; i < table.Count; i++)
            {
                var entry = table[i];
                await writer.StartRowAsync(cancellationToken).ConfigureAwait(false);
                await writer.WriteAsync(dirId, NpgsqlDbType.Bigint, cancellationToken).ConfigureAwait(false);
                await writer.WriteAsync(entry.Name, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await writer.WriteAsync((short)entry.Kind, NpgsqlDbType.Smallint, cancellationToken).ConfigureAwait(false);
                await writer.WriteAsync(entry.Size, NpgsqlDbType.Bigint, cancellationToken).ConfigureAwait(false);
                await writer.WriteAsync(entry.MtimeTicks, NpgsqlDbType.Bigint, cancellationToken).ConfigureAwait(false);
                await writer.WriteAsync(entry.ETag, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await writer.WriteAsync(entry.Mode, NpgsqlDbType.Integer, cancellationToken).ConfigureAwait(false);
            }

            await writer.CompleteAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> UpsertEntryAsync(string key, EntryRecord entry, CancellationToken cancellationToken = default) =>
        RetryAsync(ct => UpsertEntryOnceAsync(key, entry, ct), cancellationToken);

    private async ValueTask<bool> UpsertEntryOnceAsync(string key, EntryRecord entry, CancellationToken cancellationToken)
    {
        // One statement: the entry goes in only if the listing is stored, and the count follows (xmax = 0: inserted, not updated).
        await using var command = _dataSource.CreateCommand(
            """
            with d as (select dir_id from grainfs_directories where dir_key = @key),
            up as (
              insert into grainfs_entries (dir_id, name, kind, size, mtime_ticks, etag, mode)
              select dir_id, @name, @kind, @size, @mtime, @etag, @mode from d
              on conflict (dir_id, name) do update set kind = excluded.kind, size = excluded.size,
                mtime_ticks = excluded.mtime_ticks, etag = excluded.etag, mode = excluded.mode
              returning (xmax = 0) as inserted)
            update grainfs_directories set entry_count = entry_count + (select count(*) from up where inserted)
            where dir_key = @key and exists (select 1 from up)
            """);
        command.Parameters.AddWithValue("key", DbKey(key));
        command.Parameters.AddWithValue("name", entry.Name);
        command.Parameters.AddWithValue("kind", (short)entry.Kind);
        command.Parameters.AddWithValue("size", entry.Size);
        command.Parameters.AddWithValue("mtime", entry.MtimeTicks);
        command.Parameters.AddWithValue("etag", entry.ETag);
        command.Parameters.AddWithValue("mode", entry.Mode);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <inheritdoc />
    public ValueTask<bool> DeleteEntryAsync(string key, string name, CancellationToken cancellationToken = default) =>
        RetryAsync(ct => DeleteEntryOnceAsync(key, name, ct), cancellationToken);

    private async ValueTask<bool> DeleteEntryOnceAsync(string key, string name, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand(
            """
            with gone as (
              delete from grainfs_entries e using grainfs_directories d
              where d.dir_key = @key and e.dir_id = d.dir_id and e.name = @name
              returning 1)
            update grainfs_directories set entry_count = entry_count - 1
            where dir_key = @key and exists (select 1 from gone)
            """);
        command.Parameters.AddWithValue("key", DbKey(key));
        command.Parameters.AddWithValue("name", name);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <inheritdoc />
    public ValueTask DeleteMountDataAsync(long mountId, CancellationToken cancellationToken = default) =>
        RetryAsync(ct => DeleteMountDataOnceAsync(mountId, ct), cancellationToken);

    private async ValueTask DeleteMountDataOnceAsync(long mountId, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var command = new NpgsqlCommand(
            "delete from grainfs_entries where dir_id in (select dir_id from grainfs_directories where mount_id = @mount)", connection, transaction))
        {
            command.Parameters.AddWithValue("mount", mountId);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await using (var command = new NpgsqlCommand("delete from grainfs_directories where mount_id = @mount", connection, transaction))
        {
            command.Parameters.AddWithValue("mount", mountId);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await using (var command = new NpgsqlCommand("delete from grainfs_overlay where mount_id = @mount", connection, transaction))
        {
            command.Parameters.AddWithValue("mount", mountId);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await using (var command = new NpgsqlCommand("delete from grainfs_mount_usage where mount_id = @mount", connection, transaction))
        {
            command.Parameters.AddWithValue("mount", mountId);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask PingAsync(CancellationToken cancellationToken = default)
    {
        await using var command = _dataSource.CreateCommand("select 1");
        await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _dataSource.DisposeAsync();

    /// <summary>Attempts of an operation that failed on a transient error (a broken connection, a server restarting), 0.2 s, 0.5 s and 1 s apart.</summary>
    public const int Attempts = 4;

    private static readonly TimeSpan[] RetryDelays = [TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(1)];

    // A server that restarted leaves every pooled connection broken, and each would fail its next operation: on a
    // transient failure the pool is emptied and the operation (idempotent: each is one statement or one transaction that
    // writes the same rows again) tried again on a new connection, a few times over about 2 s.
    private async ValueTask<T> RetryAsync<T>(Func<CancellationToken, ValueTask<T>> operation, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await operation(cancellationToken).ConfigureAwait(false);
            }
            catch (NpgsqlException e) when (e.IsTransient && !cancellationToken.IsCancellationRequested)
            {
                _dataSource.Clear();
                if (attempt >= Attempts)
                {
                    throw;
                }

                await Task.Delay(RetryDelays[attempt - 1], cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async ValueTask RetryAsync(Func<CancellationToken, ValueTask> operation, CancellationToken cancellationToken) =>
        await RetryAsync(async ct =>
        {
            await operation(ct).ConfigureAwait(false);
            return true;
        }, cancellationToken).ConfigureAwait(false);
}
