namespace GrainFs;

/// <summary>
/// Diagnostics of the silo that serves the call (a stateless worker, so it runs where it is called from:
/// with one silo, that silo). Used by benchmarks and `grainfs report`.
/// </summary>
[Alias("grainfs.IDiagnosticsGrain")]
public interface IDiagnosticsGrain : IGrainWithIntegerKey
{
    /// <summary>Memory and namespace counts; <paramref name="collect"/> runs a full compacting GC first.</summary>
    [Alias("GetSilo"), Access(Access.Admin)]
    ValueTask<SiloDiagnostics> GetSiloAsync(bool collect);
}

/// <summary>What a silo holds.</summary>
/// <param name="Silo">The silo's address.</param>
/// <param name="ManagedHeapBytes">Bytes on the managed heap.</param>
/// <param name="WorkingSetBytes">Resident memory of the process.</param>
/// <param name="CachedEntries">Entries held by active directory grains.</param>
/// <param name="TableBytes">Bytes of those entries' tables.</param>
/// <param name="ActiveDirectories">Active directory grains.</param>
[GenerateSerializer, Immutable, Alias("grainfs.SiloDiagnostics")]
public sealed record SiloDiagnostics(
    [property: Id(0)] string Silo,
    [property: Id(1)] long ManagedHeapBytes,
    [property: Id(2)] long WorkingSetBytes,
    [property: Id(3)] long CachedEntries,
    [property: Id(4)] long TableBytes,
    [property: Id(5)] long ActiveDirectories);
