namespace GrainFs.Storage.Metadata;

// PLACEHOLDER, replaced by the PostgreSQL overlay implementation before this lands.
public sealed partial class PostgresMetadataStore
{
    /// <inheritdoc />
    public ValueTask<IReadOnlyList<OverlayEntry>> LoadOverlayAsync(string key, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    /// <inheritdoc />
    public ValueTask PutOverlayAsync(string key, long mountId, OverlayEntry entry, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    /// <inheritdoc />
    public ValueTask<bool> RemoveOverlayAsync(string key, string name, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    /// <inheritdoc />
    public ValueTask<MountUsage> LoadUsageAsync(long mountId, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    /// <inheritdoc />
    public ValueTask<MountUsage> AddUsageAsync(long mountId, MountUsage delta, CancellationToken cancellationToken = default) => throw new NotImplementedException();
}
