using System.Collections.Concurrent;
using GrainFs.Client;
using GrainFs.Grains;
using GrainFs.Silo.Hosting;
using GrainFs.Storage.Cache;
using GrainFs.Storage.Metadata;
using GrainFs.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.TestingHost;

namespace GrainFs.Tests.Cluster;

/// <summary>
/// A real 3-silo Orleans cluster (TestingHost) whose metadata store is a real PostgreSQL database with the
/// schema applied by infra/db/apply.sh. Silos are named Primary, Secondary_1, … and report that name as
/// their host. Directories over 200 entries are sharded, so sharding is exercised with small data. GrainFS in every
/// silo reads <see cref="Clock"/>, which a test moves forward instead of sleeping; Orleans keeps the system clock.
/// </summary>
public class ClusterFixture : IAsyncLifetime
{
    /// <summary>Shard threshold the fixture's silos use.</summary>
    public const int ShardThreshold = 200;

    public TestCluster Cluster { get; private set; } = null!;

    public string MetadataConnection { get; private set; } = null!;

    public MotoServer Moto { get; private set; } = null!;

    /// <summary>The clock GrainFS reads in every silo of the cluster (sync intervals, TTLs, retry delays).</summary>
    public TestClock Clock { get; } = new();

    /// <summary>Roles by silo name; unnamed silos carry gpu,read,write.</summary>
    protected virtual IReadOnlyDictionary<string, string>? Roles => null;

    /// <summary>More silo settings (configuration keys such as GrainFs:Persist:Rate), for every silo.</summary>
    protected virtual IReadOnlyDictionary<string, string>? Settings => null;

    public virtual async Task InitializeAsync()
    {
        Moto = await MotoServer.Shared;
        var pg = await PostgresServer.Shared;
        MetadataConnection = await pg.CreateDatabaseAsync("cluster");
        Cluster = await StartClusterAsync(MetadataConnection, roles: Roles, clock: Clock, settings: Settings);
    }

    /// <summary>Starts a 3-silo cluster on a metadata database; GrainFS in its silos reads <paramref name="clock"/> (null: the system clock).</summary>
    public static async Task<TestCluster> StartClusterAsync(string metadataConnection, int silos = 3, IReadOnlyDictionary<string, string>? roles = null, TimeProvider? clock = null, IReadOnlyDictionary<string, string>? settings = null)
    {
        var builder = new TestClusterBuilder((short)silos);
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
        {
            builder.Properties[key] = value;
        }

        foreach (var (silo, list) in roles ?? new Dictionary<string, string>())
        {
            builder.Properties[$"GrainFsTest:Roles:{silo}"] = list;
        }

        builder.Properties["GrainFsTest:Metadata"] = metadataConnection;
        builder.Properties["GrainFs:Namespace:ShardThreshold"] = ShardThreshold.ToString(System.Globalization.CultureInfo.InvariantCulture);
        builder.Properties["GrainFs:Namespace:TargetShardEntries"] = "100";
        builder.Properties["GrainFs:Namespace:SyncRetryDelay"] = "00:00:00.500";
        if (clock is not null)
        {
            builder.Properties[GrainFsTestSiloConfigurator.ClockProperty] = GrainFsTestSiloConfigurator.ShareClock(clock);
        }

        builder.AddSiloBuilderConfigurator<GrainFsTestSiloConfigurator>();
        builder.AddClientBuilderConfigurator<GrainFsTestClientConfigurator>();
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }

    /// <summary>The services of each running silo, by silo name (Primary, Secondary_1, …).</summary>
    public IReadOnlyDictionary<string, IServiceProvider> SiloServices =>
        Cluster.Silos.OfType<InProcessSiloHandle>().ToDictionary(h => h.Name, h => h.ServiceProvider, StringComparer.Ordinal);

    /// <summary>The GrainFS log events of a silo.</summary>
    public SiloLog LogOf(string silo) => SiloServices[silo].GetRequiredService<SiloLog>();

    /// <summary>Runs a tier maintenance pass (TTL expiry, eviction, promotion) on every silo's worker and waits for them all.</summary>
    public Task MaintainAllAsync() =>
        Task.WhenAll(SiloServices.Values.Select(s => s.GetRequiredService<TierStore>().Maintenance.RequestPassAsync())).WaitAsync(TimeSpan.FromSeconds(30));

    /// <summary>A new SDK client over the cluster's client, with or without a metadata cache.</summary>
    public GrainFsClient NewClient(bool cache = true) => GrainFsClient.Create(Cluster.Client, new GrainFsClientOptions { MetadataCacheEntries = cache ? 10_000 : 0 });

    public virtual async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
    }
}

/// <summary>The test cluster's client logs in as the tests' user does with the CLI: the default admin credentials of cluster id grainfs.</summary>
public sealed class GrainFsTestClientConfigurator : IClientBuilderConfigurator
{
    public void Configure(Microsoft.Extensions.Configuration.IConfiguration configuration, IClientBuilder clientBuilder) =>
        clientBuilder.UseGrainFsSecurity(null, GrainFsClientOptions.DEFAULT_CLUSTER_ID);
}

/// <summary>
/// Configures each test silo as the silo host would, with the fixture's PostgreSQL metadata store, the fixture's clock
/// for GrainFS (when it gives one) and a <see cref="SiloLog"/> of the silo's GrainFS log events in its services.
/// </summary>
public sealed class GrainFsTestSiloConfigurator : ISiloConfigurator
{
    /// <summary>The cluster property naming the clock shared through <see cref="ShareClock"/>.</summary>
    public const string ClockProperty = "GrainFsTest:Clock";

    /// <summary>The cluster property naming a <see cref="LostAckStore"/> over the silos' metadata store.</summary>
    public const string LostAcksProperty = "GrainFsTest:LostAcks";

    // TestingHost builds silos from configurator types and string properties, so an object shared with the fixture is
    // passed by name through this table.
    private static readonly ConcurrentDictionary<string, TimeProvider> Clocks = new(StringComparer.Ordinal);

    /// <summary>Makes <paramref name="clock"/> available to the silos of a cluster; returns the value of <see cref="ClockProperty"/>.</summary>
    public static string ShareClock(TimeProvider clock)
    {
        var name = Guid.NewGuid().ToString("N");
        Clocks[name] = clock;
        return name;
    }

    public void Configure(ISiloBuilder siloBuilder)
    {
        var configuration = siloBuilder.Configuration;
        var name = configuration["Orleans:Name"] ?? "silo";
        var roles = configuration[$"GrainFsTest:Roles:{name}"] ?? "gpu,read,write";
        var tiers = TestProcess.NewFolder($"tiers-{name}");
        // The fixture's GrainFs:Namespace properties come with the silo's configuration; the rest is per silo.
        var settings = SiloConfiguration.Load(new ConfigurationBuilder()
            .AddConfiguration(configuration)
            .AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["GrainFs:Host"] = name,
                ["GrainFs:SiloName"] = name,
                ["GrainFs:Roles"] = roles,
                ["GrainFs:DirectoryIdleTimeout"] = "00:02:00",
                ["GrainFs:DataPort"] = "0",
                ["GrainFs:AdvertisedAddress"] = "127.0.0.1",
                ["GrainFs:Cache:Tiers:0"] = $"MEM={Path.Combine(tiers, "mem")}:96MiB",
                ["GrainFs:Cache:Tiers:1"] = $"SSD={Path.Combine(tiers, "ssd")}:256MiB",
            })
            .Build());
        siloBuilder.UseFastFailureDetection();
        if (configuration[ClockProperty] is { } clock)
        {
            siloBuilder.Services.AddSingleton(new GrainFsClock(Clocks[clock]));
        }

        var log = new SiloLog();
        siloBuilder.Services.AddSingleton(log);
        siloBuilder.Services.AddLogging(logging => logging.AddProvider(log).AddFilter<SiloLog>("GrainFs", LogLevel.Debug));
        var connection = configuration["GrainFsTest:Metadata"] ?? throw new InvalidOperationException("GrainFsTest:Metadata not set");
        IMetadataStore store = new PostgresMetadataStore(connection);
        if (configuration[LostAcksProperty] is { } lostAcks)
        {
            store = new LostAckStore(store, lostAcks); // armed by a test: commits whose acknowledgement is lost
        }

        siloBuilder.AddGrainFs(settings, store);
    }
}
