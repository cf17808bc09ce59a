using System.Collections.Concurrent;

namespace GrainFs.Storage.Metadata;

/// <summary>
/// The embedded default: metadata in this process. Snapshots are immutable, so the store keeps the very
/// table a directory grain holds (no copy): a deactivated grain's entries stay here for its next activation.
/// Lost when the silo stops; a cluster that must remember uses <see cref="PostgresMetadataStore"/>.
/// </summary>
public sealed class InMemoryMetadataStore : IMetadataStore
{
    private readonly ConcurrentDictionary<string, (long MountId, DirectorySnapshot Snapshot)> _directories = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (long MountId, ConcurrentDictionary<string, OverlayEntry> Entries)> _overlays = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<long, MountUsage> _usage = new();
    private readonly Lock _mountLock = new();
    private StoredMountTable _mounts = StoredMountTable.Empty;

    /// <inheritdoc />
    public string Kind => "memory";

    /// <summary>Directory listings held.</summary>
    public int DirectoryCount => _directories.Count;

    /// <inheritdoc />
    public ValueTask InitializeAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    /// <inheritdoc />
    public ValueTask<StoredMountTable> LoadMountTableAsync(CancellationToken cancellationToken = default)
    {
        lock (_mountLock)
        {
            return ValueTask.FromResult(_mounts);
        }
    }

    /// <inheritdoc />
    public ValueTask SaveMountTableAsync(StoredMountTable table, long expectedVersion, CancellationToken cancellationToken = default)
    {
        lock (_mountLock)
        {
            if (_mounts.Version != expectedVersion)
            {
                throw new MetadataConflictException($"mount table is at version {_mounts.Version}, expected {expectedVersion}");
            }

            _mounts = table;
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<DirectorySnapshot?> LoadDirectoryAsync(string key, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(_directories.TryGetValue(key, out var found) ? found.Snapshot : null);

    /// <inheritdoc />
    public ValueTask SaveDirectoryAsync(string key, long mountId, DirectorySnapshot snapshot, CancellationToken cancellationToken = default)
    {
        _directories[key] = (mountId, snapshot);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask SaveDirectoriesAsync(long mountId, IReadOnlyList<KeyValuePair<string, DirectorySnapshot>> listings, CancellationToken cancellationToken = default)
    {
        // Nothing here outlives the process, so a crash cannot leave half of them; the last (the head) goes in last.
        foreach (var (key, snapshot) in listings)
        {
            _directories[key] = (mountId, snapshot);
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<bool> UpsertEntryAsync(string key, EntryRecord entry, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(Update(key, table => table.With(entry)));

    /// <inheritdoc />
    public ValueTask<bool> DeleteEntryAsync(string key, string name, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(Update(key, table => table.IndexOf(name) < 0 ? null : table.Without(name)));

    /// <summary>Swaps in a changed table (snapshots are immutable, so a racing save or edit is retried, never lost).</summary>
    private bool Update(string key, Func<DirectoryTable, DirectoryTable?> change)
    {
        while (_directories.TryGetValue(key, out var current))
        {
            if (change(current.Snapshot.Table) is not { } table)
            {
                return false;
            }

            if (_directories.TryUpdate(key, (current.MountId, current.Snapshot with { Table = table }), current))
            {
                return true;
            }
        }

        return false;
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<OverlayEntry>> LoadOverlayAsync(string key, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult<IReadOnlyList<OverlayEntry>>(_overlays.TryGetValue(key, out var found) ? [.. found.Entries.Values] : []);

    /// <inheritdoc />
    public ValueTask PutOverlayAsync(string key, long mountId, OverlayEntry entry, CancellationToken cancellationToken = default)
    {
        _overlays.GetOrAdd(key, _ => (mountId, new ConcurrentDictionary<string, OverlayEntry>(StringComparer.Ordinal))).Entries[entry.Name] = entry;
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<bool> RemoveOverlayAsync(string key, string name, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(_overlays.TryGetValue(key, out var found) && found.Entries.TryRemove(name, out _));

    /// <inheritdoc />
    public ValueTask<MountUsage> LoadUsageAsync(long mountId, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(_usage.TryGetValue(mountId, out var usage) ? usage : default);

    /// <inheritdoc />
    public ValueTask<MountUsage> AddUsageAsync(long mountId, MountUsage delta, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(_usage.AddOrUpdate(
            mountId,
            _ => new MountUsage(Math.Max(0, delta.Bytes), Math.Max(0, delta.Files)),
            (_, old) => new MountUsage(Math.Max(0, old.Bytes + delta.Bytes), Math.Max(0, old.Files + delta.Files))));

    /// <inheritdoc />
    public ValueTask DeleteMountDataAsync(long mountId, CancellationToken cancellationToken = default)
    {
        _usage.TryRemove(mountId, out _);
        foreach (var (key, value) in _overlays)
        {
            if (value.MountId == mountId)
            {
                _overlays.TryRemove(key, out _);
            }
        }

        foreach (var (key, value) in _directories)
        {
            if (value.MountId == mountId)
            {
                _directories.TryRemove(key, out _);
            }
        }

        return ValueTask.CompletedTask;
    }
}
