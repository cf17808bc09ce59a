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

    /// <summary>Retries of under-storage requests after throttling or transient faults.</summary>
    public static readonly Counter<long> UnderStorageRetries =
        Meter.CreateCounter<long>("grainfs.understorage.retries", "{retry}", "Under-storage retries after throttling or transient errors");

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

    /// <summary>Client metadata cache lookups, tagged hit/miss.</summary>
    public static readonly Counter<long> ClientCacheLookups =
        Meter.CreateCounter<long>("grainfs.client.metadata_cache", "{lookup}", "Client metadata cache lookups");
}
