using GrainFs.DataPlane;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace GrainFs.Client;

/// <summary>
/// How a client reaches the cluster and caches metadata. <see cref="FromEnvironment"/> binds it from configuration
/// section <see cref="SECTION"/> (the keys the silo uses: GrainFs:Cluster, GrainFs:ClusterFile, GrainFs:ClusterId,
/// GrainFs:GatewayPort, GrainFs:Host; GrainFs:Gateways; and the other properties by name) and checks it with <see cref="GrainFsClientOptionsValidator"/>.
/// </summary>
public sealed class GrainFsClientOptions
{
    /// <summary>The configuration section these options are bound from.</summary>
    public const string SECTION = "GrainFs";

    /// <summary>Default gateway port of the embedded silo.</summary>
    public const int DEFAULT_GATEWAY_PORT = 30000;

    /// <summary>Default cluster id.</summary>
    public const string DEFAULT_CLUSTER_ID = "grainfs";

    /// <summary>Default client metadata cache size in entries.</summary>
    public const int DEFAULT_METADATA_CACHE_ENTRIES = 200_000;

    /// <summary>Default time-to-live of a cached entry (further bounded by the mount's sync interval).</summary>
    public static readonly TimeSpan DEFAULT_METADATA_TTL = TimeSpan.FromMinutes(5);

    /// <summary>Default interval between mount table version checks.</summary>
    public static readonly TimeSpan DEFAULT_MOUNT_TABLE_REFRESH = TimeSpan.FromSeconds(5);

    /// <summary>PostgreSQL cluster (Npgsql connection string), or null for the embedded localhost silo.</summary>
    public string? Cluster { get; set; }

    /// <summary>
    /// A file holding <see cref="Cluster"/>, readable by its owner only, so that no password is on a command line; read
    /// when <see cref="Cluster"/> is not given (see <see cref="ClusterConnectionString"/>).
    /// </summary>
    public string? ClusterFile { get; set; }

    /// <summary>
    /// The silo gateways to connect to, <c>host:port[,host:port…]</c>: found without the database (static clustering), so
    /// the client needs no database credentials. Null: the gateways are found in <see cref="Cluster"/>'s database, or the
    /// embedded silo is at <see cref="GatewayPort"/>.
    /// </summary>
    public string? Gateways { get; set; }

    /// <summary>The credentials folder (null: the cluster's default under ~/.grainfs/credentials, created on first use).</summary>
    public string? Credentials { get; set; }

    /// <summary>No TLS, logins or access checks (the silos must run with --insecure-no-auth too): only for measuring what the trust model costs.</summary>
    public bool InsecureNoAuth { get; set; }

    /// <summary>Cluster id.</summary>
    public string ClusterId { get; set; } = DEFAULT_CLUSTER_ID;

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

    /// <summary>Hear every namespace change in the cluster (<see cref="GrainFsClient.PathsChanged"/>) and drop cached entries at once; a FUSE daemon does.</summary>
    public bool WatchChanges { get; set; }

    /// <summary>How long a read keeps retrying while silos fail and the cluster re-homes blocks, before it returns EIO.</summary>
    public TimeSpan FailoverTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a read may wait for a block being filled from under-storage.</summary>
    public TimeSpan FillTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// How long a stat or listing waits for a directory that the cluster is still listing from under-storage (a
    /// directory of millions of objects takes minutes; the silo answers EBUSY and the SDK asks again) before it fails
    /// with ETIMEDOUT.
    /// </summary>
    public TimeSpan DirectorySyncTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Entries asked for per list page.</summary>
    public int ListPageSize { get; set; } = 1000;

    /// <summary>
    /// The connection string: <see cref="Cluster"/>, else the one in <see cref="ClusterFile"/>, else null. Throws
    /// <see cref="ArgumentException"/> naming the file when it cannot be used.
    /// </summary>
    public string? ClusterConnectionString()
    {
        if (Cluster is not null || ClusterFile is not { Length: > 0 } file)
        {
            return Cluster;
        }

        return GrainFs.DataPlane.ClusterFile.TryRead(file, out var connection, out var error)
            ? connection
            : throw new ArgumentException($"{SettingNames.ClusterFile.Flag} / {SettingNames.ClusterFile.Env} / {SettingNames.ClusterFile.Key}: {error}");
    }

    /// <summary>
    /// <see cref="Gateways"/> resolved to addresses (empty when none are given). Throws <see cref="GrainFsConnectException"/>
    /// naming a host that does not resolve.
    /// </summary>
    public System.Net.IPEndPoint[] GatewayEndPoints()
    {
        if (Gateways is not { Length: > 0 } text)
        {
            return [];
        }

        if (!TryParseGateways(text, out var gateways, out var error))
        {
            throw new ArgumentException($"{SettingNames.Gateways.Flag} / {SettingNames.Gateways.Env} / {SettingNames.Gateways.Key}: {error}");
        }

        var endPoints = new List<System.Net.IPEndPoint>(gateways.Count);
        foreach (var (host, port) in gateways)
        {
            if (System.Net.IPAddress.TryParse(host, out var address))
            {
                endPoints.Add(new System.Net.IPEndPoint(address, port));
                continue;
            }

            System.Net.IPAddress[] addresses;
            try
            {
                addresses = System.Net.Dns.GetHostAddresses(host);
            }
            catch (System.Net.Sockets.SocketException e)
            {
                throw new GrainFsConnectException($"gateway '{host}:{port}' ({SettingNames.Gateways.Flag}): cannot resolve '{host}' ({e.SocketErrorCode})", e);
            }

            // One address per named gateway, IPv4 first (what silos advertise by default).
            var chosen = Array.Find(addresses, a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork) ?? addresses.FirstOrDefault()
                ?? throw new GrainFsConnectException($"gateway '{host}:{port}' ({SettingNames.Gateways.Flag}): '{host}' has no address", null);
            endPoints.Add(new System.Net.IPEndPoint(chosen, port));
        }

        return [.. endPoints];
    }

    /// <summary>Parses <c>host:port[,host:port…]</c> (an IPv6 address in brackets: <c>[::1]:30000</c>); false with a message naming the bad entry.</summary>
    public static bool TryParseGateways(string text, out IReadOnlyList<(string Host, int Port)> gateways, out string? error)
    {
        var list = new List<(string Host, int Port)>();
        gateways = list;
        foreach (var entry in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var colon = entry.LastIndexOf(':');
            var host = colon > 0 ? entry[..colon] : string.Empty;
            var bracketed = host.Length > 2 && host[0] == '[' && host[^1] == ']';
            if (bracketed)
            {
                host = host[1..^1];
            }

            // An IPv6 address goes in brackets: without them its last group would read as the port.
            if (host.Length == 0 || host.Any(c => char.IsWhiteSpace(c) || c is '/' or '[' or ']')
                || (host.Contains(':', StringComparison.Ordinal) && (!bracketed || !System.Net.IPAddress.TryParse(host, out _))))
            {
                error = $"'{entry}' is not host:port (e.g. 10.0.0.5:30000, silo-1:30000 or [fd00::5]:30000)";
                return false;
            }

            if (!int.TryParse(entry.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port) || port is < 1 or > System.Net.IPEndPoint.MaxPort)
            {
                error = $"'{entry}': '{entry[(colon + 1)..]}' is not a port number (1-65535)";
                return false;
            }

            list.Add((host, port));
        }

        error = list.Count == 0 ? $"'{text}' names no gateway (host:port[,host:port…])" : null;
        return list.Count > 0;
    }

    /// <summary>
    /// Options from configuration keys under <see cref="SECTION"/>: <c>GrainFs__Key</c> environment variables, then the
    /// short variables (GRAINFS_CLUSTER, GRAINFS_CLUSTER_FILE, GRAINFS_GATEWAYS, GRAINFS_CLUSTER_ID, GRAINFS_GATEWAY_PORT,
    /// GRAINFS_HOST), then
    /// <paramref name="overrides"/> (configuration keys from flags), in rising precedence, as the silo reads them.
    /// Throws <see cref="ArgumentException"/> naming the flag, variable and key of every bad value.
    /// </summary>
    public static GrainFsClientOptions FromEnvironment(IReadOnlyDictionary<string, string?>? overrides = null) =>
        FromConfiguration(new ConfigurationBuilder()
            .AddEnvironmentVariables()
            .AddInMemoryCollection(SettingNames.FromEnvironment(SettingNames.ClientSettings))
            .AddInMemoryCollection(overrides ?? new Dictionary<string, string?>())
            .Build());

    /// <summary>
    /// Options bound from section <see cref="SECTION"/> of <paramref name="configuration"/> and checked by
    /// <see cref="GrainFsClientOptionsValidator"/>; throws <see cref="ArgumentException"/> naming the flag, variable and
    /// key of every bad value.
    /// </summary>
    public static GrainFsClientOptions FromConfiguration(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var options = new GrainFsClientOptions();
        var failures = OptionsBinding.BindConvertible(configuration.GetSection(SECTION), options).ToList();
        if (options.Cluster is null && options.ClusterFile is { Length: > 0 } file && GrainFs.DataPlane.ClusterFile.TryRead(file, out var connection, out _))
        {
            // Read once here; the validator reports a file that cannot be used.
            options.Cluster = connection;
        }
        if (new GrainFsClientOptionsValidator().Validate(Options.DefaultName, options) is { Failed: true } result)
        {
            failures.AddRange(result.Failures);
        }

        if (failures.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", failures.Select(NameTheFlag)));
        }

        return options;
    }

    /// <summary>A failure that begins with the key of a client setting, told by its flag and variable too (a command-line user types those).</summary>
    private static string NameTheFlag(string failure)
    {
        foreach (var setting in SettingNames.ClientSettings)
        {
            if (failure.StartsWith(setting.Key, StringComparison.Ordinal) && failure.Length > setting.Key.Length && failure[setting.Key.Length] is ' ' or ':')
            {
                return $"{setting.Flag} / {setting.Env} / {failure}";
            }
        }

        return failure;
    }
}

/// <summary>Checks <see cref="GrainFsClientOptions"/> bound from configuration: one failure per bad value, naming its key.</summary>
public sealed class GrainFsClientOptionsValidator : IValidateOptions<GrainFsClientOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, GrainFsClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (options.GatewayPort is < 1 or > System.Net.IPEndPoint.MaxPort)
        {
            failures.Add($"{SettingNames.GatewayPort.Key} = '{options.GatewayPort}': not a port number (1-65535)");
        }

        if (options.Cluster is { } cluster)
        {
            try
            {
                _ = new Npgsql.NpgsqlConnectionStringBuilder(cluster);
            }
            catch (ArgumentException e)
            {
                // The message names the bad keyword, never the value (which may hold a password).
                failures.Add($"{SettingNames.Cluster.Key}: not an Npgsql connection string ({e.Message})");
            }
        }

        if (options.ClusterFile is { Length: > 0 } file)
        {
            if (!GrainFs.DataPlane.ClusterFile.TryRead(file, out var fromFile, out var fileError))
            {
                failures.Add($"{SettingNames.ClusterFile.Key}: {fileError}");
            }
            else if (options.Cluster is not null && options.Cluster != fromFile)
            {
                failures.Add($"{SettingNames.ClusterFile.Key}: give the connection string with {SettingNames.Cluster.Flag} or {SettingNames.ClusterFile.Flag}, not both");
            }
        }

        if (options.Gateways is { Length: > 0 } gateways && !GrainFsClientOptions.TryParseGateways(gateways, out _, out var gatewayError))
        {
            failures.Add($"{SettingNames.Gateways.Key}: {gatewayError}");
        }

        if (options.Host.Any(c => char.IsWhiteSpace(c) || c == ','))
        {
            failures.Add($"{SettingNames.Host.Key} = '{options.Host}': a host name has no spaces or commas");
        }

        foreach (var (key, value) in new[]
        {
            (nameof(options.MetadataCacheEntries), options.MetadataCacheEntries),
            (nameof(options.ReadAheadBlocks), options.ReadAheadBlocks),
            (nameof(options.ReplicateAfterReads), options.ReplicateAfterReads),
        })
        {
            if (value < 0)
            {
                failures.Add($"{GrainFsClientOptions.SECTION}:{key} = '{value}': must not be negative");
            }
        }

        if (options.ListPageSize < 1)
        {
            failures.Add($"{GrainFsClientOptions.SECTION}:{nameof(options.ListPageSize)} = '{options.ListPageSize}': at least 1");
        }

        foreach (var (key, value) in new[]
        {
            (nameof(options.ConnectTimeout), options.ConnectTimeout),
            (nameof(options.MetadataTtl), options.MetadataTtl),
            (nameof(options.MountTableRefresh), options.MountTableRefresh),
            (nameof(options.DataTimeout), options.DataTimeout),
            (nameof(options.FailoverTimeout), options.FailoverTimeout),
            (nameof(options.FillTimeout), options.FillTimeout),
            (nameof(options.DirectorySyncTimeout), options.DirectorySyncTimeout),
        })
        {
            if (value < TimeSpan.Zero)
            {
                failures.Add($"{GrainFsClientOptions.SECTION}:{key} = '{value}': must not be negative");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
