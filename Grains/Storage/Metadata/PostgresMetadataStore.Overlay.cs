using Npgsql;
using NpgsqlTypes;

namespace GrainFs.Storage.Metadata;

/// <summary>Overlay entries (one row per name of a key, few per directory) and mount usage (one row per mount), schema version 3.</summary>
public sealed partial class PostgresMetadataStore
{
    /// <inheritdoc />
    public ValueTask<IReadOnlyList<OverlayEntry>> LoadOverlayAsync(string key, CancellationToken cancellationToken = default) =>
        RetryAsync(ct => LoadOverlayOnceAsync(key, ct), cancellationToken);

    private async ValueTask<IReadOnlyList<OverlayEntry>> LoadOverlayOnceAsync(string key, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand(
            "select name, kind, size, mtime_ticks, etag, mode, uid, gid, holders, persistence, error, deleted from grainfs_overlay where dir_key = @key");
        command.Parameters.AddWithValue("key", DbKey(key));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var entries = new List<OverlayEntry>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            entries.Add(new OverlayEntry(
                reader.GetString(0),
                (EntryKind)reader.GetInt16(1),
                reader.GetInt64(2),
                reader.GetInt64(3),
                reader.GetString(4),
                reader.GetInt32(5),
                reader.GetInt32(6),
                reader.GetInt32(7),
                reader.GetFieldValue<string[]>(8),
                (byte)reader.GetInt16(9),
                reader.IsDBNull(10) ? null : reader.GetString(10),
                reader.GetBoolean(11)));
        }

        return entries;
    }

    /// <inheritdoc />
    public ValueTask PutOverlayAsync(string key, long mountId, OverlayEntry entry, CancellationToken cancellationToken = default) =>
        RetryAsync(ct => PutOverlayOnceAsync(key, mountId, entry, ct), cancellationToken);

    private async ValueTask PutOverlayOnceAsync(string key, long mountId, OverlayEntry entry, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand(
            """
            insert into grainfs_overlay (dir_key, mount_id, name, kind, size, mtime_ticks, etag, mode, uid, gid, holders, persistence, error, deleted)
            values (@key, @mount, @name, @kind, @size, @mtime, @etag, @mode, @uid, @gid, @holders, @persistence, @error, @deleted)
            on conflict (dir_key, name) do update set mount_id = excluded.mount_id, kind = excluded.kind, size = excluded.size,
              mtime_ticks = excluded.mtime_ticks, etag = excluded.etag, mode = excluded.mode, uid = excluded.uid, gid = excluded.gid,
              holders = excluded.holders, persistence = excluded.persistence, error = excluded.error, deleted = excluded.deleted
            """);
        command.Parameters.AddWithValue("key", DbKey(key));
        command.Parameters.AddWithValue("mount", mountId);
        command.Parameters.AddWithValue("name", entry.Name);
        command.Parameters.AddWithValue("kind", (short)entry.Kind);
        command.Parameters.AddWithValue("size", entry.Size);
        command.Parameters.AddWithValue("mtime", entry.MtimeTicks);
        command.Parameters.AddWithValue("etag", entry.ETag);
        command.Parameters.AddWithValue("mode", entry.Mode);
        command.Parameters.AddWithValue("uid", entry.Uid);
        command.Parameters.AddWithValue("gid", entry.Gid);
        command.Parameters.AddWithValue("holders", NpgsqlDbType.Array | NpgsqlDbType.Text, entry.Holders);
        command.Parameters.AddWithValue("persistence", (short)entry.Persistence);
        command.Parameters.AddWithValue("error", NpgsqlDbType.Text, (object?)entry.Error ?? DBNull.Value);
        command.Parameters.AddWithValue("deleted", entry.Deleted);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask<bool> RemoveOverlayAsync(string key, string name, CancellationToken cancellationToken = default) =>
        RetryAsync(ct => RemoveOverlayOnceAsync(key, name, ct), cancellationToken);

    private async ValueTask<bool> RemoveOverlayOnceAsync(string key, string name, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("delete from grainfs_overlay where dir_key = @key and name = @name");
        command.Parameters.AddWithValue("key", DbKey(key));
        command.Parameters.AddWithValue("name", name);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <inheritdoc />
    public ValueTask<MountUsage> LoadUsageAsync(long mountId, CancellationToken cancellationToken = default) =>
        RetryAsync(ct => LoadUsageOnceAsync(mountId, ct), cancellationToken);

    private async ValueTask<MountUsage> LoadUsageOnceAsync(long mountId, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("select bytes, files from grainfs_mount_usage where mount_id = @mount");
        command.Parameters.AddWithValue("mount", mountId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? new MountUsage(reader.GetInt64(0), reader.GetInt64(1)) : default;
    }

    /// <inheritdoc />
    public async ValueTask<MountUsage> AddUsageAsync(long mountId, MountUsage delta, CancellationToken cancellationToken = default)
    {
        // One statement, so concurrent adds of several silos never lose one. The update adds the raw delta
        // (not excluded.*, which is the clamped first value) and clamps the sum.
        await using var command = _dataSource.CreateCommand(
            """
            insert into grainfs_mount_usage (mount_id, bytes, files) values (@mount, greatest(0, @bytes), greatest(0, @files))
            on conflict (mount_id) do update set bytes = greatest(0, grainfs_mount_usage.bytes + @bytes),
              files = greatest(0, grainfs_mount_usage.files + @files)
            returning bytes, files
            """);
        command.Parameters.AddWithValue("mount", mountId);
        command.Parameters.AddWithValue("bytes", delta.Bytes);
        command.Parameters.AddWithValue("files", delta.Files);
        try
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            return new MountUsage(reader.GetInt64(0), reader.GetInt64(1));
        }
        catch (NpgsqlException e) when (e.IsTransient)
        {
            // Not tried again (an add whose answer was lost would count twice); the pool's broken connections go.
            _dataSource.Clear();
            throw;
        }
    }
}
