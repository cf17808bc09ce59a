using System.Collections.Concurrent;
using GrainFs.Storage.UnderStorage;

namespace GrainFs.Grains.Namespace;

/// <summary>
/// One under-storage adapter per mount per silo, shared by every grain of that mount (an S3 client
/// keeps its connection pool). Dropped when the mount goes away. A mount whose credentials are still sealed (the
/// mount table could not open them: another cluster key) is refused with the reason, never handed sealed text as a key.
/// </summary>
/// <param name="factory">Makes the adapters.</param>
/// <param name="secrets">The cluster's secret box, to say why a sealed credential did not open; null in tests without one.</param>
public sealed class UnderStorageRegistry(UnderStorageFactory factory, GrainFs.DataPlane.Security.SecretBox? secrets = null) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<long, Lazy<IUnderStorage>> _byMount = new();

    /// <summary>The factory adapters are made with.</summary>
    public UnderStorageFactory Factory => factory;

    /// <summary>
    /// The adapter for a mount (created on first use). Throws <see cref="UnderStorageException"/> on a bad URI or option,
    /// or when the mount's credentials are still sealed.
    /// </summary>
    public IUnderStorage Get(MountInfo mount)
    {
        if (MountSecrets.Unopened(secrets, mount) is { } problem)
        {
            throw new UnderStorageException(UnderStorageError.Other, mount.Uri, problem);
        }

        return _byMount.GetOrAdd(mount.Id, _ => new Lazy<IUnderStorage>(() => factory.Create(mount.Uri, mount.Options.Properties))).Value;
    }

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
