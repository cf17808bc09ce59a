using System.Collections.Concurrent;
using GrainFs.Storage.Metadata;

namespace GrainFs.Tests.Cluster;

/// <summary>
/// A metadata store that, when armed, commits a mount-table save and then throws as if its acknowledgement had been
/// lost (a connection dropped after COMMIT): a fault no real part produces on demand. Everything else goes to the
/// real store underneath. Armed per cluster by name (TestingHost passes only strings to silos).
/// </summary>
public sealed class LostAckStore(IMetadataStore inner, string name) : IMetadataStore
{
    private static readonly ConcurrentDictionary<string, int> Armed = new(StringComparer.Ordinal);

    /// <summary>The next <paramref name="saves"/> mount-table saves of the cluster named <paramref name="name"/> lose their acknowledgement.</summary>
    public static void Arm(string name, int saves) => Armed[name] = saves;

    /// <inheritdoc />
    public string Kind => inner.Kind;

    /// <inheritdoc />
    public ValueTask InitializeAsync(CancellationToken cancellationToken = default) => inner.InitializeAsync(cancellationToken);

    /// <inheritdoc />
    public ValueTask<StoredMountTable> LoadMountTableAsync(CancellationToken cancellationToken = default) => inner.LoadMountTableAsync(cancellationToken);

    /// <inheritdoc />
    public async ValueTask SaveMountTableAsync(StoredMountTable table, long expectedVersion, CancellationToken cancellationToken = default)
    {
        await inner.SaveMountTableAsync(table, expectedVersion, cancellationToken);
        if (Armed.TryGetValue(name, out var left) && left > 0 && Armed.TryUpdate(name, left - 1, left))
        {
            throw new TimeoutException("the store committed, then the connection dropped before its acknowledgement");
        }
    }

    /// <inheritdoc />
    public ValueTask<DirectorySnapshot?> LoadDirectoryAsync(string key, CancellationToken cancellationToken = default) => inner.LoadDirectoryAsync(key, cancellationToken);

    /// <inheritdoc />
    public ValueTask SaveDirectoryAsync(string key, long mountId, DirectorySnapshot snapshot, CancellationToken cancellationToken = default) => inner.SaveDirectoryAsync(key, mountId, snapshot, cancellationToken);

    /// <inheritdoc />
    public ValueTask SaveDirectoriesAsync(long mountId, IReadOnlyList<KeyValuePair<string, DirectorySnapshot>> listings, CancellationToken cancellationToken = default) => inner.SaveDirectoriesAsync(mountId, listings, cancellationToken);

    /// <inheritdoc />
    public ValueTask<bool> UpsertEntryAsync(string key, EntryRecord entry, CancellationToken cancellationToken = default) => inner.UpsertEntryAsync(key, entry, cancellationToken);

    /// <inheritdoc />
    public ValueTask<bool> DeleteEntryAsync(string key, string name, CancellationToken cancellationToken = default) => inner.DeleteEntryAsync(key, name, cancellationToken);

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<OverlayEntry>> LoadOverlayAsync(string key, CancellationToken cancellationToken = default) => inner.LoadOverlayAsync(key, cancellationToken);

    /// <inheritdoc />
    public ValueTask PutOverlayAsync(string key, long mountId, OverlayEntry entry, CancellationToken cancellationToken = default) => inner.PutOverlayAsync(key, mountId, entry, cancellationToken);

    /// <inheritdoc />
    public ValueTask<bool> RemoveOverlayAsync(string key, string name, CancellationToken cancellationToken = default) => inner.RemoveOverlayAsync(key, name, cancellationToken);

    /// <inheritdoc />
    public ValueTask<MountUsage> LoadUsageAsync(long mountId, CancellationToken cancellationToken = default) => inner.LoadUsageAsync(mountId, cancellationToken);

    /// <inheritdoc />
    public ValueTask<MountUsage> AddUsageAsync(long mountId, MountUsage delta, CancellationToken cancellationToken = default) => inner.AddUsageAsync(mountId, delta, cancellationToken);

    /// <inheritdoc />
    public ValueTask DeleteMountDataAsync(long mountId, CancellationToken cancellationToken = default) => inner.DeleteMountDataAsync(mountId, cancellationToken);
}
