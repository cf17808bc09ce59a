using System.Net;

namespace GrainFs.Silo.Hosting;

/// <summary>
/// What a silo is told about itself and its cluster: configuration section <see cref="SECTION"/> (appsettings.json,
/// <c>GrainFs__Key</c> environment variables, and the flags and GRAINFS_* variables that
/// <see cref="GrainFs.DataPlane.SettingNames"/> maps onto the same keys). Defaults that depend on the machine are filled
/// in by <see cref="GrainFsSiloOptionsSetup"/>, and <see cref="GrainFsSiloOptionsValidator"/> checks the result before
/// the silo starts. Values that need more parsing than the configuration binder does (roles, addresses) are kept as
/// text and read through <see cref="RoleList"/> and <see cref="AdvertisedIPAddress"/> once validated.
/// </summary>
public sealed class GrainFsSiloOptions
{
    /// <summary>The configuration section these options are bound from.</summary>
    public const string SECTION = "GrainFs";

    /// <summary>Default <see cref="SiloPort"/>.</summary>
    public const int DEFAULT_SILO_PORT = 11111;

    /// <summary>Default <see cref="GatewayPort"/>.</summary>
    public const int DEFAULT_GATEWAY_PORT = 30000;

    /// <summary>Default <see cref="DashboardPort"/>.</summary>
    public const int DEFAULT_DASHBOARD_PORT = 8080;

    /// <summary>Default <see cref="MetricsPort"/>.</summary>
    public const int DEFAULT_METRICS_PORT = 9464;

    /// <summary>Default <see cref="DataPort"/>: 0, a free port picked at start and published in the silo metadata (several silos per host work unconfigured).</summary>
    public const int DEFAULT_DATA_PORT = 0;

    /// <summary>Default <see cref="ClusterId"/>.</summary>
    public const string DEFAULT_CLUSTER_ID = "grainfs";

    /// <summary>Default <see cref="ListenAddress"/>.</summary>
    public const string DEFAULT_LISTEN_ADDRESS = "127.0.0.1";

    /// <summary>Default <see cref="Roles"/>: every role.</summary>
    public const string DEFAULT_ROLES = "gpu,read,write";

    /// <summary>Default <see cref="Data"/>, under the user's home folder.</summary>
    public const string DEFAULT_DATA = "~/.grainfs/data";

    /// <summary>Default <see cref="DirectoryIdleTimeout"/>.</summary>
    public static readonly TimeSpan DEFAULT_DIRECTORY_IDLE_TIMEOUT = TimeSpan.FromMinutes(10);

    /// <summary>Roles a silo may carry.</summary>
    public static readonly IReadOnlyList<string> KnownRoles = ["gpu", "read", "write"];

    /// <summary>The PostgreSQL cluster as an Npgsql connection string, or null for the embedded localhost silo.</summary>
    public string? Cluster { get; set; }

    /// <summary>
    /// A file holding <see cref="Cluster"/> (--cluster-file), readable by its owner only, so that no password is on the
    /// command line; the setup reads it into <see cref="Cluster"/> when that is not given.
    /// </summary>
    public string? ClusterFile { get; set; }

    /// <summary>True when the silo joins a PostgreSQL cluster.</summary>
    public bool IsCluster => Cluster is not null;

    /// <summary>The credentials folder (null: the cluster's default under ~/.grainfs/credentials, created on first use).</summary>
    public string? Credentials { get; set; }

    /// <summary>No TLS, logins or access checks: only for measuring what the trust model costs.</summary>
    public bool InsecureNoAuth { get; set; }

    /// <summary>Cluster id (and service id).</summary>
    public string ClusterId { get; set; } = DEFAULT_CLUSTER_ID;

    /// <summary>State folder; <c>~/</c> is the user's home, and the setup makes it a full path.</summary>
    public string Data { get; set; } = DEFAULT_DATA;

    /// <summary>Silo-to-silo port.</summary>
    public int SiloPort { get; set; } = DEFAULT_SILO_PORT;

    /// <summary>Gateway (client) port.</summary>
    public int GatewayPort { get; set; } = DEFAULT_GATEWAY_PORT;

    /// <summary>Orleans Dashboard port, 0 for none.</summary>
    public int DashboardPort { get; set; } = DEFAULT_DASHBOARD_PORT;

    /// <summary>Prometheus port, 0 for none.</summary>
    public int MetricsPort { get; set; } = DEFAULT_METRICS_PORT;

    /// <summary>A port of its own for /healthz and /readyz (plain HTTP, no password), 0 for none; both are served on the dashboard port too.</summary>
    public int HealthPort { get; set; }

    /// <summary>The data port serving block bytes (0: a free port picked at start).</summary>
    public int DataPort { get; set; } = DEFAULT_DATA_PORT;

    /// <summary>
    /// The IP address the dashboard and metrics listen on. A loopback address serves them over plain HTTP to local
    /// users; any other serves them over HTTPS with the silo's certificate and asks for the <see cref="WebPasswordFile"/>
    /// password (unless <see cref="InsecureNoAuth"/>).
    /// </summary>
    public string ListenAddress { get; set; } = DEFAULT_LISTEN_ADDRESS;

    /// <summary>A file (owner-only) holding the password the dashboard and metrics ask for off loopback (HTTP Basic, user <c>grainfs</c>).</summary>
    public string? WebPasswordFile { get; set; }

    /// <summary>True when the dashboard and metrics listen off loopback with the trust model on: HTTPS and a password.</summary>
    public bool WebNeedsCredentials => !InsecureNoAuth && IPAddress.TryParse(ListenAddress, out var address) && !IPAddress.IsLoopback(address);

    /// <summary>The host this silo runs on, for placement.</summary>
    public string Host { get; set; } = Environment.MachineName;

    /// <summary>This silo's roles, comma-separated (gpu, read, write).</summary>
    public string Roles { get; set; } = DEFAULT_ROLES;

    /// <summary>The IP address other silos and clients reach this silo at (absent: 127.0.0.1 embedded, else the first non-loopback IPv4).</summary>
    public string? AdvertisedAddress { get; set; }

    /// <summary>The silo's name (empty: <c>&lt;host&gt;-&lt;silo-port&gt;</c>, filled in by the setup).</summary>
    public string SiloName { get; set; } = string.Empty;

    /// <summary>How long an idle directory grain stays in memory before it deactivates.</summary>
    public TimeSpan DirectoryIdleTimeout { get; set; } = DEFAULT_DIRECTORY_IDLE_TIMEOUT;

    /// <summary>
    /// The folders file:// mounts are confined to (--allow-local-root, repeatable): a mount's folder, symbolic links
    /// resolved, must be one of them or lie below one. Empty: any folder the silo's user can read may be mounted. The
    /// setup stores them as full paths with their links resolved.
    /// </summary>
    public List<string> AllowLocalRoots { get; set; } = [];

    /// <summary>The roles of <see cref="Roles"/>, lower case, each once; unknown names are left out (the validator refuses them).</summary>
    public IReadOnlyList<string> RoleList =>
        [.. SplitRoles(Roles).Select(r => r.ToLowerInvariant()).Where(KnownRoles.Contains).Distinct(StringComparer.Ordinal)];

    /// <summary><see cref="AdvertisedAddress"/> as an address, once validated.</summary>
    public IPAddress AdvertisedIPAddress => IPAddress.Parse(AdvertisedAddress ?? DEFAULT_LISTEN_ADDRESS);

    /// <summary>The names in a comma-separated roles list, trimmed.</summary>
    public static string[] SplitRoles(string roles) =>
        roles.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
}
