using System.Collections.Concurrent;
using GrainFs.Storage.UnderStorage;

namespace GrainFs.Grains.Namespace;

/// <summary>
/// One under-storage adapter per mount per silo, shared by every grain of that mount (an S3 client
/// keeps its connection pool). Dropped when the mount goes away.
/// </summary>
public sealed class UnderStorageRegistry(UnderStorageFactory factory) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<long, Lazy<IUnderStorage>> _byMount = new();

    /// <summary>The factory adapters are made with.</summary>
    public UnderStorageFactory Factory => factory;

    /// <summary>The adapter for a mount (created on first use). Throws <see cref="UnderStorageException"/> on a bad URI or option.</summary>
    public IUnderStorage Get(MountInfo mount) =>
        _byMount.GetOrAdd(mount.Id, _ => new Lazy<IUnderStorage>(() => factory.Create(mount.Uri, mount.Options.Properties))).Value;

    /// <summary>Forgets the adapter of a removed mount.</summary>
    public async ValueTask RemoveAsync(long mountId)
    {
        if (_byMount.TryRemove(mountId, out var lazy) && lazy.IsValueCreated)
        {
            await lazy.Value.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        foreach (var id in _byMount.Keys)
        {
            await RemoveAsync(id).ConfigureAwait(false);
        }
    }
}
