using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace GrainFs.DataPlane;

/// <summary>
/// GrainFS's own meter and activity source ("GrainFs"). Instruments are static so that libraries without
/// dependency injection (adapters, the data plane) can record; the silo and clients export them with OpenTelemetry.
/// </summary>
public static class GrainFsMetrics
{
    /// <summary>The meter and activity source name.</summary>
    public const string Name = "GrainFs";

    /// <summary>The meter.</summary>
    public static readonly Meter Meter = new(Name, "1.0");

    /// <summary>The activity source for traces.</summary>
    public static readonly ActivitySource Activity = new(Name, "1.0");

    /// <summary>Under-storage requests, tagged by scheme, op and outcome.</summary>
    public static readonly Counter<long> UnderStorageRequests =
        Meter.CreateCounter<long>("grainfs.understorage.requests", "{request}", "Requests sent to under-storage");

    /// <summary>Under-storage request latency.</summary>
    public static readonly Histogram<double> UnderStorageLatency =
        Meter.CreateHistogram<double>("grainfs.understorage.duration", "ms", "Latency of under-storage requests");

    /// <summary>Bytes read from under-storage.</summary>
    public static readonly Counter<long> UnderStorageBytesRead =
        Meter.CreateCounter<long>("grainfs.understorage.bytes_read", "By", "Bytes read from under-storage");

    /// <summary>Bytes written to under-storage.</summary>
    public static readonly Counter<long> UnderStorageBytesWritten =
        Meter.CreateCounter<long>("grainfs.understorage.bytes_written", "By", "Bytes written to under-storage");

    /// <summary>Retries of under-storage requests after throttling or transient faults.</summary>
    public static readonly Counter<long> UnderStorageRetries =
        Meter.CreateCounter<long>("grainfs.understorage.retries", "{retry}", "Under-storage retries after throttling or transient errors");

    /// <summary>Names in under-storage listings that could not be represented (not UTF-8) and were skipped.</summary>
    public static readonly Counter<long> UnderStorageSkippedNames =
        Meter.CreateCounter<long>("grainfs.understorage.skipped_names", "{name}", "Names in under-storage listings that are not UTF-8, skipped with a warning");

    /// <summary>Directory listings (syncs) from under-storage, tagged by outcome.</summary>
    public static readonly Counter<long> DirectorySyncs =
        Meter.CreateCounter<long>("grainfs.metadata.syncs", "{sync}", "Directory listings read from under-storage");

    /// <summary>Entries listed from under-storage.</summary>
    public static readonly Counter<long> EntriesListed =
        Meter.CreateCounter<long>("grainfs.metadata.entries_listed", "{entry}", "Entries listed from under-storage");

    /// <summary>Metadata operations served by directory grains, tagged by op and outcome.</summary>
    public static readonly Counter<long> MetadataOps =
        Meter.CreateCounter<long>("grainfs.metadata.ops", "{op}", "Lookups and list pages served by directory grains");

    /// <summary>Latency of metadata operations as clients see them.</summary>
    public static readonly Histogram<double> MetadataLatency =
        Meter.CreateHistogram<double>("grainfs.metadata.duration", "ms", "Latency of metadata operations (client side)");

    /// <summary>Reads served by data ports, tagged by source (MEM, SSD, HDD, under-storage).</summary>
    public static readonly Counter<long> DataPortReads =
        Meter.CreateCounter<long>("grainfs.dataport.reads", "{read}", "Block reads served by the data port");

    /// <summary>Latency of data-port reads on the worker.</summary>
    public static readonly Histogram<double> DataPortLatency =
        Meter.CreateHistogram<double>("grainfs.dataport.duration", "ms", "Latency of block reads served by the data port");

    /// <summary>Bytes clients read, tagged by path: short-circuit, remote, or fill.</summary>
    public static readonly Counter<long> ClientBytesRead =
        Meter.CreateCounter<long>("grainfs.client.bytes_read", "By", "Bytes read by clients, by path (short-circuit, remote, fill)");

    /// <summary>Cold block fills requested by clients.</summary>
    public static readonly Counter<long> ClientFills =
        Meter.CreateCounter<long>("grainfs.client.fills", "{block}", "Cold blocks clients asked block grains to fill");

    /// <summary>Client metadata cache lookups, tagged hit/miss.</summary>
    public static readonly Counter<long> ClientCacheLookups =
        Meter.CreateCounter<long>("grainfs.client.metadata_cache", "{lookup}", "Client metadata cache lookups");

    /// <summary>Bytes of written blocks stored by the data port (synced on the write tier).</summary>
    public static readonly Counter<long> BytesWritten =
        Meter.CreateCounter<long>("grainfs.write.bytes", "By", "Bytes of written blocks stored on write tiers");

    /// <summary>Data-port connections refused (TLS failure, over the connection cap), by reason.</summary>
    public static readonly Counter<long> DataPortRefused =
        Meter.CreateCounter<long>("grainfs.dataport.refused", "{connection}", "Data-port connections refused, by reason");

    /// <summary>Writes refused, tagged by reason (no-space, disk-full, quota).</summary>
    public static readonly Counter<long> WritesRefused =
        Meter.CreateCounter<long>("grainfs.write.refused", "{write}", "Writes refused, by reason (no-space, quota)");

    /// <summary>Files committed (closed) by writers.</summary>
    public static readonly Counter<long> FilesCommitted =
        Meter.CreateCounter<long>("grainfs.write.files", "{file}", "Files committed by writers, by write type");

    /// <summary>Bytes uploaded to under-storage by the persist queue.</summary>
    public static readonly Counter<long> PersistedBytes =
        Meter.CreateCounter<long>("grainfs.persist.bytes", "By", "Bytes persisted to under-storage");

    /// <summary>Files persisted to under-storage.</summary>
    public static readonly Counter<long> PersistedFiles =
        Meter.CreateCounter<long>("grainfs.persist.files", "{file}", "Files persisted to under-storage");

    /// <summary>Persist attempts that failed (retried with backoff).</summary>
    public static readonly Counter<long> PersistFailures =
        Meter.CreateCounter<long>("grainfs.persist.failures", "{attempt}", "Persist attempts that failed");

    /// <summary>
    /// Adds 0 to each counter of a rare event (refusals, persist failures) with each of its reasons, so that their series
    /// exist from the start: Prometheus' rate() and increase() see no counter that has never been written. Call once the
    /// meter's listeners (the exporter) are in place.
    /// </summary>
    public static void StartRareSeries()
    {
        foreach (var reason in (string[])["no-space", "disk-full", "quota"])
        {
            WritesRefused.Add(0, new KeyValuePair<string, object?>("reason", reason));
        }

        foreach (var reason in (string[])["connection-cap", "write-capability", "tls"])
        {
            DataPortRefused.Add(0, new KeyValuePair<string, object?>("reason", reason));
        }

        PersistFailures.Add(0);
    }
}
