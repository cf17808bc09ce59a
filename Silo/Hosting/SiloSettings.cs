using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;

namespace GrainFs.Silo.Hosting;

/// <summary>
/// Everything a silo is told, from appsettings.json (next to the program), environment variables and flags,
/// in rising precedence. <see cref="Load"/> checks every value and reports problems by key, so a bad value
/// stops the silo before it starts.
/// </summary>
public sealed class SiloSettings
{
    /// <summary>Default silo-to-silo port.</summary>
    public const int DEFAULT_SILO_PORT = 11111;

    /// <summary>Default gateway port.</summary>
    public const int DEFAULT_GATEWAY_PORT = 30000;

    /// <summary>Default dashboard port.</summary>
    public const int DEFAULT_DASHBOARD_PORT = 8080;

    /// <summary>Default Prometheus port.</summary>
    public const int DEFAULT_METRICS_PORT = 9464;

    /// <summary>Default data port: 0, a free port picked at start and published in the silo metadata (several silos per host work unconfigured).</summary>
    public const int DEFAULT_DATA_PORT = 0;

    /// <summary>The most a default MEM tier takes: the cache must not starve the training job.</summary>
    public const long DEFAULT_MEM_TIER_MAX = 1L << 30;

    /// <summary>The most a default SSD tier takes.</summary>
    public const long DEFAULT_SSD_TIER_MAX = 20L << 30;

    /// <summary>Default cluster and service id.</summary>
    public const string DEFAULT_CLUSTER_ID = "grainfs";

    /// <summary>Roles a silo may carry.</summary>
    public static readonly IReadOnlyList<string> KnownRoles = ["gpu", "read", "write"];

    /// <summary>Telemetry exporters.</summary>
    public static readonly IReadOnlyList<string> KnownExporters = ["prometheus", "otlp", "console", "none"];

    /// <summary>The PostgreSQL connection string, or null for the embedded localhost silo.</summary>
    public string? Cluster { get; init; }

    /// <summary>True when the silo joins a PostgreSQL cluster.</summary>
    public bool IsCluster => Cluster is not null;

    /// <summary>Cluster id (and service id).</summary>
    public string ClusterId { get; init; } = DEFAULT_CLUSTER_ID;

    /// <summary>State folder.</summary>
    public string Data { get; init; } = DefaultDataFolder();

    /// <summary>Silo-to-silo port.</summary>
    public int SiloPort { get; init; } = DEFAULT_SILO_PORT;

    /// <summary>Gateway port.</summary>
    public int GatewayPort { get; init; } = DEFAULT_GATEWAY_PORT;

    /// <summary>Dashboard port, 0 for none.</summary>
    public int DashboardPort { get; init; } = DEFAULT_DASHBOARD_PORT;

    /// <summary>Address the dashboard and metrics listen on.</summary>
    public string ListenAddress { get; init; } = "127.0.0.1";

    /// <summary>Prometheus port, 0 for none.</summary>
    public int MetricsPort { get; init; } = DEFAULT_METRICS_PORT;

    /// <summary>The host this silo runs on, for placement.</summary>
    public string Host { get; init; } = Environment.MachineName;

    /// <summary>This silo's roles.</summary>
    public IReadOnlyList<string> Roles { get; init; } = KnownRoles;

    /// <summary>The IP other silos and clients reach this silo at.</summary>
    public IPAddress AdvertisedAddress { get; init; } = IPAddress.Loopback;

    /// <summary>The silo's name.</summary>
    public string SiloName { get; init; } = string.Empty;

    /// <summary>The telemetry exporter: prometheus, otlp, console or none.</summary>
    public string TelemetryExporter { get; init; } = "prometheus";

    /// <summary>The OTLP endpoint when the exporter is otlp (null: the OTEL_EXPORTER_OTLP_ENDPOINT default).</summary>
    public Uri? OtlpEndpoint { get; init; }

    /// <summary>The data port (0: a free port picked at start).</summary>
    public int DataPort { get; init; } = DEFAULT_DATA_PORT;

    /// <summary>The cache: tiers, policy, watermarks.</summary>
    public GrainFs.Storage.Cache.CacheOptions Cache { get; init; } = new();

    /// <summary>How long an idle directory grain stays in memory before it deactivates.</summary>
    public TimeSpan DirectoryIdleTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>The default state folder: ~/.grainfs/data.</summary>
    public static string DefaultDataFolder() =>
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".grainfs", "data");

    /// <summary>Reads and checks the settings; false with one message per bad key.</summary>
    public static bool Load(IConfiguration configuration, out SiloSettings settings, out List<string> errors)
    {
        var problems = new List<string>();
        var section = configuration.GetSection("GrainFs");
        string? Text(string key) => section[key] is { } v && v.Trim().Length > 0 ? v.Trim() : null;

        int Port(string key, int fallback, bool allowZero)
        {
            var text = Text(key);
            if (text is null)
            {
                return fallback;
            }

            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535 || (port == 0 && !allowZero))
            {
                problems.Add($"GrainFs:{key} = '{text}': not a port number ({(allowZero ? "0 to turn off, or " : string.Empty)}1-65535)");
                return fallback;
            }

            return port;
        }

        var cluster = Text("Cluster");
        if (cluster is not null)
        {
            try
            {
                _ = new Npgsql.NpgsqlConnectionStringBuilder(cluster);
            }
            catch (ArgumentException e)
            {
                // The message names the bad keyword, never the value (which may hold a password).
                problems.Add($"GrainFs:Cluster: not an Npgsql connection string ({e.Message})");
                cluster = null;
            }
        }

        var siloPort = Port("SiloPort", DEFAULT_SILO_PORT, false);
        var gatewayPort = Port("GatewayPort", DEFAULT_GATEWAY_PORT, false);
        var dashboardPort = Port("DashboardPort", DEFAULT_DASHBOARD_PORT, true);
        var metricsPort = Port("MetricsPort", DEFAULT_METRICS_PORT, true);
        var dataPort = Port("DataPort", DEFAULT_DATA_PORT, true);
        var used = new Dictionary<int, string>();
        foreach (var (name, port) in new[] { ("SiloPort", siloPort), ("GatewayPort", gatewayPort), ("DashboardPort", dashboardPort), ("MetricsPort", metricsPort), ("DataPort", dataPort) })
        {
            if (port == 0)
            {
                continue;
            }

            if (used.TryGetValue(port, out var other))
            {
                problems.Add($"GrainFs:{name} = {port}: the same port as GrainFs:{other}");
            }

            used[port] = name;
        }

        var host = Text("Host") ?? Environment.MachineName;
        if (host.Length > 150 || host.Any(c => char.IsWhiteSpace(c) || c == ','))
        {
            problems.Add($"GrainFs:Host = '{host}': a host name has no spaces or commas and at most 150 characters");
        }

        var roles = new List<string>();
        var rolesText = Text("Roles");
        if (rolesText is null)
        {
            roles.AddRange(KnownRoles);
        }
        else
        {
            foreach (var role in rolesText.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                var lower = role.ToLowerInvariant();
                if (!KnownRoles.Contains(lower))
                {
                    problems.Add($"GrainFs:Roles: unknown role '{role}' (known: {string.Join(", ", KnownRoles)})");
                }
                else if (!roles.Contains(lower))
                {
                    roles.Add(lower);
                }
            }

            if (roles.Count == 0 && problems.Count == 0)
            {
                problems.Add($"GrainFs:Roles = '{rolesText}': give at least one of {string.Join(", ", KnownRoles)}");
            }
        }

        IPAddress advertised;
        var advertiseText = Text("AdvertisedAddress");
        if (advertiseText is null)
        {
            advertised = cluster is null ? IPAddress.Loopback : FirstNonLoopbackAddress() ?? IPAddress.Loopback;
        }
        else if (!IPAddress.TryParse(advertiseText, out advertised!))
        {
            problems.Add($"GrainFs:AdvertisedAddress = '{advertiseText}': not an IP address");
            advertised = IPAddress.Loopback;
        }

        var listenText = Text("ListenAddress") ?? "127.0.0.1";
        if (!IPAddress.TryParse(listenText, out _))
        {
            problems.Add($"GrainFs:ListenAddress = '{listenText}': not an IP address");
        }

        var exporter = (Text("Telemetry:Exporter") ?? "prometheus").ToLowerInvariant();
        if (!KnownExporters.Contains(exporter))
        {
            problems.Add($"GrainFs:Telemetry:Exporter = '{exporter}': use one of {string.Join(", ", KnownExporters)}");
        }

        Uri? otlp = null;
        if (Text("Telemetry:OtlpEndpoint") is { } otlpText && !Uri.TryCreate(otlpText, UriKind.Absolute, out otlp))
        {
            problems.Add($"GrainFs:Telemetry:OtlpEndpoint = '{otlpText}': not an absolute URL");
        }

        var idle = TimeSpan.FromMinutes(10);
        if (Text("DirectoryIdleTimeout") is { } idleText && (!TimeSpan.TryParse(idleText, CultureInfo.InvariantCulture, out idle) || idle <= TimeSpan.FromMinutes(1)))
        {
            // Orleans collects idle activations once a minute, and refuses a shorter age.
            problems.Add($"GrainFs:DirectoryIdleTimeout = '{idleText}': a duration longer than 00:01:00 (hh:mm:ss)");
        }

        var clusterId = Text("ClusterId") ?? DEFAULT_CLUSTER_ID;
        if (clusterId.Length > 150)
        {
            problems.Add("GrainFs:ClusterId: at most 150 characters");
        }

        var data = Text("Data") ?? DefaultDataFolder();
        data = Path.GetFullPath(data.StartsWith("~/", StringComparison.Ordinal)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), data[2..])
            : data);

        var siloName = Text("SiloName") ?? $"{host}-{siloPort}";
        var cache = LoadCache(section.GetSection("Cache"), data, siloName, problems);

        settings = new SiloSettings
        {
            Cluster = cluster,
            ClusterId = clusterId,
            Data = data,
            SiloPort = siloPort,
            GatewayPort = gatewayPort,
            DashboardPort = dashboardPort,
            MetricsPort = metricsPort,
            ListenAddress = listenText,
            Host = host,
            Roles = roles,
            AdvertisedAddress = advertised,
            SiloName = siloName,
            DataPort = dataPort,
            Cache = cache,
            TelemetryExporter = exporter,
            OtlpEndpoint = otlp,
            DirectoryIdleTimeout = idle,
        };
        errors = problems;
        return problems.Count == 0;
    }

    private static GrainFs.Storage.Cache.CacheOptions LoadCache(IConfigurationSection section, string data, string siloName, List<string> problems)
    {
        var cache = new GrainFs.Storage.Cache.CacheOptions();
        foreach (var child in section.GetSection("Tiers").GetChildren())
        {
            if (child.Value is not { Length: > 0 } text)
            {
                continue;
            }

            if (GrainFs.Storage.Cache.TierSpec.TryParse(text, out var tier, out var error))
            {
                cache.Tiers.Add(tier);
            }
            else
            {
                problems.Add($"GrainFs:Cache:Tiers: {error}");
            }
        }

        if (cache.Tiers.Count == 0 && !section.GetSection("Tiers").GetChildren().Any())
        {
            cache.Tiers.AddRange(DefaultTiers(data, siloName));
        }

        cache.Tiers.Sort((a, b) => a.Kind.CompareTo(b.Kind));
        if (section["Policy"] is { Length: > 0 } policy)
        {
            cache.Policy = policy.Trim().ToLowerInvariant();
        }

        double Share(string key, double fallback)
        {
            var text = section[key];
            if (text is null)
            {
                return fallback;
            }

            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            {
                problems.Add($"GrainFs:Cache:{key} = '{text}': not a number between 0 and 1");
                return fallback;
            }

            return value;
        }

        cache.HighWatermark = Share("HighWatermark", cache.HighWatermark);
        cache.LowWatermark = Share("LowWatermark", cache.LowWatermark);
        problems.AddRange(cache.Validate());
        return cache;
    }

    /// <summary>
    /// The tiers a silo gets when none are configured: a modest MEM tier on /dev/shm (at most 1 GiB and 5% of the
    /// machine's memory, so the training job keeps its RAM) and an SSD tier under the data folder (at most 20 GiB and
    /// half of the free space).
    /// </summary>
    public static IEnumerable<GrainFs.Storage.Cache.TierSpec> DefaultTiers(string data, string siloName)
    {
        var memory = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (Directory.Exists("/dev/shm") && memory > 0)
        {
            var safeName = string.Concat(siloName.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_'));
            yield return new GrainFs.Storage.Cache.TierSpec(GrainFs.DataPlane.Blocks.TierKind.Mem, $"/dev/shm/grainfs-{safeName}", Math.Max(64L << 20, Math.Min(DEFAULT_MEM_TIER_MAX, memory / 20)));
        }

        long free;
        try
        {
            Directory.CreateDirectory(data);
            free = new DriveInfo(data).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            free = 2L << 30;
        }

        yield return new GrainFs.Storage.Cache.TierSpec(GrainFs.DataPlane.Blocks.TierKind.Ssd, Path.Combine(data, "cache"), Math.Max(64L << 20, Math.Min(DEFAULT_SSD_TIER_MAX, free / 2)));
    }

    private static IPAddress? FirstNonLoopbackAddress()
    {
        foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
        {
            if (nic.OperationalStatus != OperationalStatus.Up || nic.NetworkInterfaceType == NetworkInterfaceType.Loopback)
            {
                continue;
            }

            foreach (var address in nic.GetIPProperties().UnicastAddresses)
            {
                if (address.Address.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(address.Address))
                {
                    return address.Address;
                }
            }
        }

        return null;
    }

    /// <summary>A one-line description for the start-up log (no credentials).</summary>
    public override string ToString() =>
        $"{SiloName} on {Host} roles={string.Join(',', Roles)} cluster={(Cluster is null ? "embedded localhost" : Storage.Metadata.PostgresMetadataStore.Describe(Cluster))} " +
        $"silo={AdvertisedAddress}:{SiloPort} gateway={GatewayPort} dashboard={(DashboardPort == 0 ? "off" : DashboardPort.ToString(CultureInfo.InvariantCulture))} " +
        $"metrics={(MetricsPort == 0 ? "off" : MetricsPort.ToString(CultureInfo.InvariantCulture))} data={Data} " +
        $"tiers={string.Join(' ', Cache.Tiers)} policy={Cache.Policy}";
}
