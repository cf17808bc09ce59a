using System.Runtime;
using Orleans.Concurrency;

namespace GrainFs.Grains.Namespace;

/// <summary>Reports the local silo's memory and namespace counts.</summary>
[StatelessWorker(1)]
internal sealed class DiagnosticsGrain(NamespaceStats stats, ILocalSiloDetails silo) : Grain, IDiagnosticsGrain
{
    public ValueTask<SiloDiagnostics> GetSiloAsync(bool collect)
    {
        if (collect)
        {
            GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        }

        using var process = System.Diagnostics.Process.GetCurrentProcess();
        return ValueTask.FromResult(new SiloDiagnostics(
            silo.SiloAddress.ToString(),
            GC.GetTotalMemory(forceFullCollection: false),
            process.WorkingSet64,
            stats.CachedEntries,
            stats.TableBytes,
            stats.ActiveDirectories));
    }
}
