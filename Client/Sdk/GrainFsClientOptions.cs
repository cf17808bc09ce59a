using System.Globalization;
using GrainFs.DataPlane;

namespace GrainFs.Client;

/// <summary>How a client reaches the cluster and caches metadata.</summary>
public sealed class GrainFsClientOptions
{
    /// <summary>Default gateway port of the embedded silo.</summary>
    public const int DEFAULT_GATEWAY_PORT = 30000;

    /// <summary>Default client metadata cache size in entries.</summary>
    public const int DEFAULT_METADATA_CACHE_ENTRIES = 200_000;

    /// <summary>Default time-to-live of a cached entry (further bounded by the mount's sync interval).</summary>
    public static readonly TimeSpan DEFAULT_METADATA_TTL = TimeSpan.FromMinutes(5);

    /// <summary>Default interval between mount table version checks.</summary>
    public static readonly TimeSpan DEFAULT_MOUNT_TABLE_REFRESH = TimeSpan.FromSeconds(5);

    /// <summary>PostgreSQL cluster (Npgsql connection string), or null for the embedded localhost silo.</summary>
    public string? Cluster { get; set; }

    /// <summary>Cluster id.</summary>
    public string ClusterId { get; set; } = "grainfs";

    /// <summary>Gateway port of the embedded localhost silo.</summary>
    public int GatewayPort { get; set; } = DEFAULT_GATEWAY_PORT;

    /// <summary>How long to keep trying to reach the cluster when connecting.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Entries (positive and negative) the client metadata cache holds; 0 turns the cache off.</summary>
    public int MetadataCacheEntries { get; set; } = DEFAULT_METADATA_CACHE_ENTRIES;

    /// <summary>How long a cached entry is trusted (never longer than the mount's sync interval).</summary>
    public TimeSpan MetadataTtl { get; set; } = DEFAULT_METADATA_TTL;

    /// <summary>How often the cached mount table's version is checked in the background.</summary>
    public TimeSpan MountTableRefresh { get; set; } = DEFAULT_MOUNT_TABLE_REFRESH;

    /// <summary>This client's host: blocks held by a worker on the same host are read from its tier folder (short-circuit).</summary>
    public string Host { get; set; } = Environment.MachineName;

    /// <summary>Read blocks held on this host straight from the tier folder when allowed.</summary>
    public bool ShortCircuit { get; set; } = true;

    /// <summary>Check short-circuit reads against the block checksums on every read, not only the first read of a block by this process.</summary>
    public bool VerifyShortCircuit { get; set; }

    /// <summary>Blocks a sequential reader asks to have filled ahead of it.</summary>
    public int ReadAheadBlocks { get; set; } = 4;

    /// <summary>After this many remote reads of a block, ask for a replica on this host's worker (0: never).</summary>
    public int ReplicateAfterReads { get; set; } = 3;

    /// <summary>How long a data-port read of a held block may take.</summary>
    public TimeSpan DataTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a read keeps retrying while silos fail and the cluster re-homes blocks, before it returns EIO.</summary>
    public TimeSpan FailoverTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a read may wait for a block being filled from under-storage.</summary>
    public TimeSpan FillTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>Entries asked for per list page.</summary>
    public int ListPageSize { get; set; } = 1000;

    /// <summary>Options from GRAINFS_CLUSTER, GRAINFS_CLUSTER_ID and GRAINFS_GATEWAY_PORT, then <paramref name="overrides"/> (configuration keys from flags).</summary>
    public static GrainFsClientOptions FromEnvironment(IReadOnlyDictionary<string, string?>? overrides = null)
    {
        var values = SettingNames.FromEnvironment(SettingNames.ClientSettings);
        foreach (var (key, value) in overrides ?? new Dictionary<string, string?>())
        {
            values[key] = value;
        }

        var options = new GrainFsClientOptions();
        if (values.TryGetValue(SettingNames.Cluster.Key, out var cluster) && !string.IsNullOrWhiteSpace(cluster))
        {
            options.Cluster = cluster;
        }

        if (values.TryGetValue(SettingNames.ClusterId.Key, out var id) && !string.IsNullOrWhiteSpace(id))
        {
            options.ClusterId = id;
        }

        if (values.TryGetValue(SettingNames.Host.Key, out var host) && !string.IsNullOrWhiteSpace(host))
        {
            options.Host = host;
        }

        if (values.TryGetValue(SettingNames.GatewayPort.Key, out var port) && !string.IsNullOrWhiteSpace(port))
        {
            if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number is < 1 or > 65535)
            {
                throw new ArgumentException($"{SettingNames.GatewayPort.Flag} / {SettingNames.GatewayPort.Env} = '{port}': not a port number (1-65535)");
            }

            options.GatewayPort = number;
        }

        return options;
    }
}
