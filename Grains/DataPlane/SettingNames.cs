namespace GrainFs.DataPlane;

/// <summary>A setting every GrainFS program names the same way: a flag, a configuration key, an environment variable.</summary>
/// <param name="Flag">The command-line flag, e.g. --silo-port.</param>
/// <param name="Key">The configuration key, e.g. GrainFs:SiloPort (appsettings.json, or GrainFs__SiloPort in the environment).</param>
/// <param name="Env">The short environment variable, e.g. GRAINFS_SILO_PORT.</param>
/// <param name="Help">One line for --help.</param>
/// <param name="IsSwitch">A flag that takes no value (its presence means true).</param>
/// <param name="Repeatable">The flag may be given several times; values become Key:0, Key:1, ….</param>
/// <param name="EnvSeparator">What separates the values of a repeatable setting in its environment variable.</param>
public sealed record Setting(string Flag, string Key, string Env, string Help, bool IsSwitch = false, bool Repeatable = false, char EnvSeparator = ';');

/// <summary>The settings shared by the silo and the command line, and the parser that reads them.</summary>
public static class SettingNames
{
    /// <summary>The cluster: an Npgsql connection string; absent means the embedded localhost silo.</summary>
    public static readonly Setting Cluster = new("--cluster", "GrainFs:Cluster", "GRAINFS_CLUSTER",
        "PostgreSQL cluster as an Npgsql connection string (absent: the embedded localhost silo)");

    /// <summary>A file holding the cluster's connection string (so that no password is on a command line).</summary>
    public static readonly Setting ClusterFile = new("--cluster-file", "GrainFs:ClusterFile", "GRAINFS_CLUSTER_FILE",
        "file holding the --cluster connection string, readable by its owner only (chmod 600); a password may also stay in ~/.pgpass");

    /// <summary>The gateways a client connects to, found without the database.</summary>
    public static readonly Setting Gateways = new("--gateways", "GrainFs:Gateways", "GRAINFS_GATEWAYS",
        "silo gateways host:port[,host:port…] to connect to, instead of finding them in the --cluster database");

    /// <summary>The group that may read a silo's tier folders directly.</summary>
    public static readonly Setting ShortCircuitGroup = new("--short-circuit-group", "GrainFs:Cache:ShortCircuitGroup", "GRAINFS_SHORT_CIRCUIT_GROUP",
        "group whose members may read this silo's block files directly (tier folders 0750, blocks 0640); default: the silo's user only (0700, 0600)");

    /// <summary>The folder of this node's credentials (CA bundle, identity certificate and key, cluster key on silos).</summary>
    public static readonly Setting Credentials = new("--credentials", "GrainFs:Credentials", "GRAINFS_CREDENTIALS",
        "credentials folder made by 'grainfs certs' (default ~/.grainfs/credentials/<cluster-id>, created on first use)");

    /// <summary>Turns the trust model off: only for measuring its cost.</summary>
    public static readonly Setting InsecureNoAuth = new("--insecure-no-auth", "GrainFs:InsecureNoAuth", "GRAINFS_INSECURE_NO_AUTH",
        "turn TLS, logins and access checks off (only to measure what they cost; anyone who reaches a port owns the cluster)", IsSwitch: true);

    /// <summary>The cluster id shared by silos and clients of one cluster.</summary>
    public static readonly Setting ClusterId = new("--cluster-id", "GrainFs:ClusterId", "GRAINFS_CLUSTER_ID",
        "cluster id (default grainfs); silos and clients of one cluster share it");

    /// <summary>The gateway port clients use to reach the embedded silo.</summary>
    public static readonly Setting GatewayPort = new("--gateway-port", "GrainFs:GatewayPort", "GRAINFS_GATEWAY_PORT",
        "gateway (client) port (default 30000)");

    /// <summary>The silo's state folder.</summary>
    public static readonly Setting Data = new("--data", "GrainFs:Data", "GRAINFS_DATA",
        "state folder (default ~/.grainfs/data)");

    /// <summary>The silo-to-silo port.</summary>
    public static readonly Setting SiloPort = new("--silo-port", "GrainFs:SiloPort", "GRAINFS_SILO_PORT",
        "silo-to-silo port (default 11111)");

    /// <summary>The dashboard port.</summary>
    public static readonly Setting DashboardPort = new("--dashboard-port", "GrainFs:DashboardPort", "GRAINFS_DASHBOARD_PORT",
        "Orleans Dashboard port on the --listen-address, served at /dashboard (default 8080, 0 turns it off)");

    /// <summary>The metrics port.</summary>
    public static readonly Setting MetricsPort = new("--metrics-port", "GrainFs:MetricsPort", "GRAINFS_METRICS_PORT",
        "Prometheus metrics port on the --listen-address, served at /metrics (default 9464, 0 turns it off)");

    /// <summary>The health port.</summary>
    public static readonly Setting HealthPort = new("--health-port", "GrainFs:HealthPort", "GRAINFS_HEALTH_PORT",
        "a port of its own for /healthz and /readyz on the --listen-address, plain HTTP, no password (for probes when the dashboard is off; default 0: none; both are on the dashboard port too)");

    /// <summary>The host name the silo reports.</summary>
    public static readonly Setting Host = new("--host", "GrainFs:Host", "GRAINFS_HOST",
        "host name this silo reports for placement (default: the machine's name)");

    /// <summary>The silo's roles.</summary>
    public static readonly Setting Roles = new("--roles", "GrainFs:Roles", "GRAINFS_ROLES",
        "comma-separated roles: gpu, read, write (default gpu,read,write)");

    /// <summary>The address other silos and clients reach this silo at.</summary>
    public static readonly Setting Advertise = new("--advertise", "GrainFs:AdvertisedAddress", "GRAINFS_ADVERTISE",
        "IP address announced to the cluster (default: 127.0.0.1 embedded, else the first non-loopback IPv4)");

    /// <summary>The silo's name.</summary>
    public static readonly Setting SiloName = new("--name", "GrainFs:SiloName", "GRAINFS_SILO_NAME",
        "silo name (default <host>-<silo-port>)");

    /// <summary>The telemetry exporter.</summary>
    public static readonly Setting Telemetry = new("--telemetry", "GrainFs:Telemetry:Exporter", "GRAINFS_TELEMETRY",
        "telemetry exporter: prometheus (default), otlp, console or none");

    /// <summary>The worker's data port.</summary>
    public static readonly Setting DataPort = new("--data-port", "GrainFs:DataPort", "GRAINFS_DATA_PORT",
        "TCP port serving cached block bytes to clients (default 0: a free port, published to clients)");

    /// <summary>A cache tier; repeatable.</summary>
    public static readonly Setting Tier = new("--tier", "GrainFs:Cache:Tiers", "GRAINFS_TIERS",
        "cache tier NAME=FOLDER:CAPACITY, repeatable, fastest first (e.g. MEM=/dev/shm/grainfs:4GiB); env: ';'-separated",
        Repeatable: true);

    /// <summary>The eviction policy.</summary>
    public static readonly Setting CachePolicy = new("--cache-policy", "GrainFs:Cache:Policy", "GRAINFS_CACHE_POLICY",
        "eviction policy: tinylfu (default; keeps a stable subset under epoch-random access) or lru");

    /// <summary>The tier written blocks go to.</summary>
    public static readonly Setting WriteTier = new("--write-tier", "GrainFs:Cache:WriteTier", "GRAINFS_WRITE_TIER",
        "tier that takes the blocks of files written through this silo: MEM, SSD or HDD (default SSD when configured, else the first tier)");

    /// <summary>The persist queue's rate.</summary>
    public static readonly Setting PersistRate = new("--persist-rate", "GrainFs:Persist:Rate", "GRAINFS_PERSIST_RATE",
        "bytes per second this silo uploads written files at most, e.g. 200MiB (default 0: unlimited)");

    /// <summary>The persist queue's parallelism.</summary>
    public static readonly Setting PersistParallel = new("--persist-parallel", "GrainFs:Persist:Parallel", "GRAINFS_PERSIST_PARALLEL",
        "written files uploaded at once (default 2; each large file also uploads several parts at once)");

    /// <summary>The address the dashboard and metrics listen on.</summary>
    public static readonly Setting ListenAddress = new("--listen-address", "GrainFs:ListenAddress", "GRAINFS_LISTEN_ADDRESS",
        "IP address the dashboard and metrics listen on (default 127.0.0.1; any other address serves them over HTTPS with the silo's certificate and needs --web-password-file)");

    /// <summary>The password the dashboard and metrics ask for when they listen off loopback.</summary>
    public static readonly Setting WebPasswordFile = new("--web-password-file", "GrainFs:WebPasswordFile", "GRAINFS_WEB_PASSWORD_FILE",
        "file (chmod 600) holding the password the dashboard and metrics ask for (HTTP Basic, user grainfs) when --listen-address is not a loopback address");

    /// <summary>A folder file:// mounts are confined to; repeatable.</summary>
    public static readonly Setting AllowLocalRoot = new("--allow-local-root", "GrainFs:AllowLocalRoots", "GRAINFS_ALLOW_LOCAL_ROOT",
        "folder that file:// mounts must be, or lie below, symlinks resolved; repeatable (default: any folder this silo's user can read); env: ':'-separated",
        Repeatable: true, EnvSeparator: ':');

    /// <summary>Settings the silo reads.</summary>
    public static readonly IReadOnlyList<Setting> SiloSettings =
        [Cluster, ClusterFile, ClusterId, Credentials, InsecureNoAuth, Data, SiloPort, GatewayPort, DashboardPort, MetricsPort, HealthPort, Host, Roles, Advertise, SiloName, Telemetry, DataPort, ListenAddress, WebPasswordFile, Tier, CachePolicy, WriteTier, ShortCircuitGroup, PersistRate, PersistParallel, AllowLocalRoot];

    /// <summary>Settings every client command reads.</summary>
    public static readonly IReadOnlyList<Setting> ClientSettings = [Cluster, ClusterFile, Gateways, ClusterId, Credentials, InsecureNoAuth, GatewayPort, Host];

    /// <summary>
    /// Reads <paramref name="allowed"/> flags out of <paramref name="args"/> ("--flag value" or "--flag=value") into
    /// configuration keys; other arguments are returned in <paramref name="rest"/> in order. An unknown --flag is left in
    /// <paramref name="rest"/> for the caller to judge. Returns false with an error for a flag missing its value.
    /// </summary>
    public static bool TryParse(IReadOnlyList<string> args, IReadOnlyList<Setting> allowed, out Dictionary<string, string?> values, out List<string> rest, out string? error)
    {
        values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        rest = [];
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            var eq = arg.IndexOf('=');
            var flag = arg.StartsWith("--", StringComparison.Ordinal) && eq > 0 ? arg[..eq] : arg;
            Setting? setting = null;
            foreach (var candidate in allowed)
            {
                if (string.Equals(candidate.Flag, flag, StringComparison.Ordinal))
                {
                    setting = candidate;
                    break;
                }
            }

            if (setting is null)
            {
                rest.Add(arg);
                continue;
            }

            string value;
            if (setting.IsSwitch)
            {
                value = eq > 0 ? arg[(eq + 1)..] : "true";
            }
            else if (eq > 0)
            {
                value = arg[(eq + 1)..];
            }
            else if (i + 1 < args.Count)
            {
                value = args[++i];
            }
            else
            {
                error = $"{setting.Flag} needs a value ({setting.Help})";
                return false;
            }

            if (setting.Repeatable)
            {
                counts.TryGetValue(setting.Key, out var n);
                values[$"{setting.Key}:{n}"] = value;
                counts[setting.Key] = n + 1;
            }
            else
            {
                values[setting.Key] = value;
            }
        }

        error = null;
        return true;
    }

    /// <summary>The short environment variables (GRAINFS_…) of <paramref name="allowed"/> that are set, as configuration keys.</summary>
    public static Dictionary<string, string?> FromEnvironment(IReadOnlyList<Setting> allowed, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var setting in allowed)
        {
            if (environment(setting.Env) is { Length: > 0 } value)
            {
                if (setting.Repeatable)
                {
                    var parts = value.Split(setting.EnvSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                    for (var i = 0; i < parts.Length; i++)
                    {
                        values[$"{setting.Key}:{i}"] = parts[i];
                    }
                }
                else
                {
                    values[setting.Key] = value;
                }
            }
        }

        return values;
    }
}
