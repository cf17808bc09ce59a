namespace GrainFs.Grains.Namespace;

/// <summary>Per-silo counts of what directory grains hold, for diagnostics and metrics.</summary>
public sealed class NamespaceStats
{
    private long _activeDirectories;
    private long _cachedEntries;
    private long _tableBytes;

    /// <summary>Directory grain activations on this silo.</summary>
    public long ActiveDirectories => Interlocked.Read(ref _activeDirectories);

    /// <summary>Entries held by this silo's active directory grains.</summary>
    public long CachedEntries => Interlocked.Read(ref _cachedEntries);

    /// <summary>Bytes of entry tables held by this silo's active directory grains.</summary>
    public long TableBytes => Interlocked.Read(ref _tableBytes);

    internal void Activated() => Interlocked.Increment(ref _activeDirectories);

    internal void Deactivated() => Interlocked.Decrement(ref _activeDirectories);

    internal void Hold(long entries, long bytes)
    {
        Interlocked.Add(ref _cachedEntries, entries);
        Interlocked.Add(ref _tableBytes, bytes);
    }
}
