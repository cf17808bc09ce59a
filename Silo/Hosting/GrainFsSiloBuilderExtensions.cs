using System.Diagnostics.Metrics;
using System.Net;
using GrainFs.DataPlane;
using GrainFs.Grains;
using GrainFs.Grains.Blocks;
using GrainFs.Grains.Namespace;
using GrainFs.Storage.Cache;
using GrainFs.Storage.Metadata;
using GrainFs.Storage.UnderStorage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Runtime.MembershipService.SiloMetadata;

namespace GrainFs.Silo.Hosting;

/// <summary>Registers GrainFS on an Orleans silo: its services, options, metadata and silo metadata (host, roles).</summary>
public static class GrainFsSiloBuilderExtensions
{
    /// <summary>
    /// Adds GrainFS to a silo with the options of <paramref name="settings"/> (bound and validated by
    /// <see cref="SiloConfiguration.Load"/>; these same instances are registered as <see cref="IOptions{TOptions}"/>).
    /// <paramref name="store"/> overrides the metadata store the settings imply (in-memory embedded, PostgreSQL in a
    /// cluster); tests pass one to share it. GrainFS's components read the <see cref="GrainFsClock"/> registered before
    /// this call, else the system clock; Orleans keeps its own <see cref="TimeProvider"/>.
    /// </summary>
    public static ISiloBuilder AddGrainFs(this ISiloBuilder builder, SiloConfiguration settings, IMetadataStore? store = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var services = builder.Services;
        var silo = settings.Silo;
        services.AddSingleton(Options.Create(silo));
        services.AddSingleton(Options.Create(settings.Cache));
        services.AddSingleton(Options.Create(settings.Namespace));
        services.AddSingleton(Options.Create(settings.Telemetry));
        services.AddSingleton(Options.Create(settings.Persist));
        services.AddSingleton<GrainFs.Grains.Security.MountAccess>();
        builder.AddIncomingGrainCallFilter<StoreErrorFilter>();
        services.AddSingleton(sp => new GrainFs.Grains.Security.CallerIdentity(sp.GetService<GrainFs.Grains.Security.SiloSecurity>()));
        GrainFs.DataPlane.Security.ClusterTrust? trust = null;
        if (!silo.InsecureNoAuth)
        {
            trust = GrainFs.DataPlane.Security.ClusterTrust.Open(silo.Credentials, silo.ClusterId, GrainFs.DataPlane.Security.IdentityKind.Silo);
            builder.AddGrainFsSecurity(trust, silo.ClusterId, Path.Combine(silo.Data, "audit.log"));
        }
        else
        {
            // No cluster key: mount credentials are stored as given.
            services.AddSingleton(new GrainFs.DataPlane.Security.SecretBox(Array.Empty<byte[]>()));
        }

        // The data port is bound now, so that its real port (0 picks one) is in the silo metadata from the start.
        var advertised = silo.AdvertisedIPAddress;
        var bind = IPAddress.IsLoopback(advertised) ? IPAddress.Loopback : IPAddress.Any;
        var listener = DataPortServer.Bind(bind, silo.DataPort);
        var dataEndpoint = $"{advertised}:{((IPEndPoint)listener.LocalEndpoint).Port}";
        var metadata = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Metadata:" + SiloMetadataKeys.Silo] = silo.SiloName,
                ["Metadata:" + SiloMetadataKeys.Host] = silo.Host,
                ["Metadata:" + SiloMetadataKeys.Roles] = string.Join(',', silo.RoleList),
                ["Metadata:" + SiloMetadataKeys.DataPort] = dataEndpoint,
                ["Metadata:" + SiloMetadataKeys.Tiers] = string.Join('|', settings.Cache.Tiers.Select(t => Path.GetFullPath(t.Path))),
                ["Metadata:" + SiloMetadataKeys.CacheCapacity] = settings.Cache.Tiers.Sum(t => t.Capacity).ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Metadata:" + SiloMetadataKeys.Version] = SiloGauges.VersionText(),
            })
            .Build();
        builder.UseSiloMetadata(metadata.GetSection("Metadata"));
        services.AddSingleton(new LocalSiloMetadata(metadata.GetSection("Metadata").GetChildren().ToDictionary(c => c.Key, c => c.Value ?? string.Empty, StringComparer.Ordinal)));
        services.AddSingleton<SiloDirectory>();
        services.AddSingleton<SiloHealth>();
        services.AddSingleton(sp => new TierStore(sp.GetRequiredService<IOptions<CacheOptions>>().Value, sp.GetRequiredService<ILoggerFactory>().CreateLogger("GrainFs.Cache.TierStore"), sp.GetRequiredService<GrainFsClock>()));
        services.AddSingleton(sp => new DataPortServer(listener, sp.GetRequiredService<TierStore>(), sp.GetRequiredService<ILoggerFactory>().CreateLogger("GrainFs.Cache.DataPort"), trust, limits: null,
            startFill: sp.GetRequiredService<BlockFiller>().StartFromDataPortAsync));
        services.AddSingleton(new GrainFs.DataPlane.Blocks.DataPortClient(trust));
        services.AddSingleton(new LocalSilo(silo.SiloName, silo.Host, dataEndpoint, silo.RoleList));
        services.AddSingleton<BlockFiller>();
        services.AddSingleton<WorkerJobs>();
        services.AddSingleton<GrainFs.Grains.Writes.PersistQueue>();
        services.AddHostedService(sp => sp.GetRequiredService<GrainFs.Grains.Writes.PersistQueue>());
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, CacheLifecycle>();
        services.AddHostedService(sp => sp.GetRequiredService<TierStore>().Maintenance);
        builder.AddPlacementDirector<BlockHomePlacement, BlockHomePlacementDirector>();
        builder.AddPlacementDirector<SiloNamePlacement, SiloNamePlacementDirector>();

        services.TryAddSingleton(GrainFsClock.System);
        services.AddSingleton(store ?? (silo.Cluster is { } cluster ? new PostgresMetadataStore(cluster) : new InMemoryMetadataStore()));
        services.AddSingleton(sp => new UnderStorageFactory(providers: UnderStorageFactory.BuiltInConfined(silo.AllowLocalRoots, sp.GetRequiredService<ILoggerFactory>())));
        services.AddSingleton<UnderStorageRegistry>();
        services.AddSingleton<NamespaceStats>();
        services.AddSingleton(new SiloIdentity(silo.Host, silo.RoleList));
        services.AddHostedService<SiloGauges>();

        builder.Configure<GrainCollectionOptions>(options =>
            options.ClassSpecificCollectionAge[GrainTypes.Directory.FullName!] = silo.DirectoryIdleTimeout);
        return builder;
    }

    /// <summary>Tunes failure detection so that a dead silo is declared dead, and its grains re-activated elsewhere, well within 30 s.</summary>
    public static ISiloBuilder UseFastFailureDetection(this ISiloBuilder builder) =>
        builder.Configure<ClusterMembershipOptions>(options =>
        {
            // Probes every 2 s; 3 missed probes make a suspicion; 2 suspecting silos (or all there are) declare death: ~6–10 s.
            options.ProbeTimeout = TimeSpan.FromSeconds(2);
            options.NumMissedProbesLimit = 3;
            options.NumVotesForDeathDeclaration = 2;
            options.TableRefreshTimeout = TimeSpan.FromSeconds(10);
            options.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(30);
            options.DefunctSiloCleanupPeriod = TimeSpan.FromHours(1);
            options.DefunctSiloExpiration = TimeSpan.FromHours(1);
        });
}

/// <summary>Starts the tier store (indexing blocks already on disk) and the data port before the silo joins the cluster, and stops them after it leaves.</summary>
internal sealed class CacheLifecycle(TierStore store, DataPortServer dataPort, WorkerJobs jobs) : ILifecycleParticipant<ISiloLifecycle>
{
    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe<CacheLifecycle>(ServiceLifecycleStage.RuntimeInitialize, StartAsync, StopAsync);

    private async Task StartAsync(CancellationToken cancellationToken)
    {
        await store.InitializeAsync(cancellationToken);
        dataPort.Start();
    }

    private async Task StopAsync(CancellationToken cancellationToken)
    {
        await dataPort.DisposeAsync();
        // The store cancels the fills still running, so the worker's jobs then end quickly.
        await store.DisposeAsync();
        await jobs.DisposeAsync();
    }
}

/// <summary>The host and roles of this silo.</summary>
public sealed record SiloIdentity(string Host, IReadOnlyList<string> Roles);

/// <summary>Publishes this silo's namespace and cache state as observable instruments of the GrainFS meter.</summary>
internal sealed class SiloGauges(NamespaceStats stats, SiloIdentity identity, TierStore store) : Microsoft.Extensions.Hosting.IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var host = new KeyValuePair<string, object?>("host", identity.Host);
        var meter = GrainFsMetrics.Meter;
        meter.CreateObservableGauge("grainfs.metadata.cached_entries", () => new Measurement<long>(stats.CachedEntries, host), "{entry}", "Entries held by active directory grains");
        meter.CreateObservableGauge("grainfs.metadata.table_bytes", () => new Measurement<long>(stats.TableBytes, host), "By", "Bytes of entry tables held by active directory grains");
        meter.CreateObservableGauge("grainfs.metadata.active_directories", () => new Measurement<long>(stats.ActiveDirectories, host), "{grain}", "Active directory grains");
        meter.CreateObservableGauge("grainfs.cache.capacity", () => PerTier(t => t.Capacity, host), "By", "Capacity of each cache tier");
        meter.CreateObservableGauge("grainfs.cache.used", () => PerTier(t => t.Used, host), "By", "Bytes held or reserved in each cache tier");
        meter.CreateObservableGauge("grainfs.cache.blocks", () => PerTier(t => t.Blocks, host), "{block}", "Blocks held in each cache tier");
        meter.CreateObservableCounter("grainfs.cache.hits", () => PerTier(t => t.Hits, host), "{read}", "Reads served from each cache tier");
        meter.CreateObservableCounter("grainfs.cache.tier_faults", () => PerTier(t => t.Faults, host), "{fault}", "Times each tier's disk failed a fill and the tier was taken out of service");
        meter.CreateObservableGauge("grainfs.cache.tier_out_of_service", OutOfService, "{tier}", "1 while a tier takes no fills after its disk failed one");
        meter.CreateObservableCounter("grainfs.cache.requests", () => new Measurement<long>(store.GetReport().Requests, host), "{request}", "Block requests seen by this worker");
        meter.CreateObservableCounter("grainfs.cache.misses", () => new Measurement<long>(store.GetReport().Misses, host), "{request}", "Block requests this worker did not hold");
        meter.CreateObservableCounter("grainfs.cache.fill_bytes", () => new Measurement<long>(store.GetReport().FillBytes, host), "By", "Bytes filled from under-storage");
        meter.CreateObservableCounter("grainfs.cache.evictions", () => new Measurement<long>(store.GetReport().Evictions, host), "{block}", "Blocks evicted from the last tier");
        meter.CreateObservableCounter("grainfs.cache.demotions", () => new Measurement<long>(store.GetReport().Demotions, host), "{block}", "Blocks demoted to a slower tier");
        meter.CreateObservableCounter("grainfs.cache.lost", () => new Measurement<long>(store.GetReport().Lost, host), "{block}", "Blocks whose files were removed or cut short behind the worker (dropped, refilled on the next read)");
        meter.CreateObservableCounter("grainfs.cache.corrupt", () => new Measurement<long>(store.GetReport().Corrupt, host), "{block}", "Blocks discarded after a failed checksum");
        meter.CreateObservableCounter("grainfs.cache.bytes_served", ServedBySource, "By", "Bytes served by the data port, by source");
        meter.CreateObservableCounter("grainfs.prefetch.fills", () => new Measurement<long>(store.GetReport().Prefetch.Fills, host), "{block}", "Blocks filled ahead of readers by announced read orders");
        meter.CreateObservableCounter("grainfs.prefetch.bytes", () => new Measurement<long>(store.GetReport().Prefetch.Bytes, host), "By", "Bytes filled ahead of readers by announced read orders");
        meter.CreateObservableCounter("grainfs.prefetch.hits", () => new Measurement<long>(store.GetReport().Prefetch.Hits, host), "{block}", "Prefetched blocks a reader asked for afterwards");
        meter.CreateObservableCounter("grainfs.prefetch.wasted", () => new Measurement<long>(store.GetReport().Prefetch.Wasted, host), "{block}", "Prefetched blocks evicted before any reader asked for them");
        meter.CreateObservableGauge("grainfs.prefetch.running", () => new Measurement<long>(store.GetReport().Prefetch.Running, host), "{block}", "Prefetch fills in progress on this worker");
        return Task.CompletedTask;

        IEnumerable<Measurement<long>> OutOfService()
        {
            foreach (var tier in store.GetReport().Tiers)
            {
                yield return new Measurement<long>(tier.OutOfService is null ? 0 : 1, host, new KeyValuePair<string, object?>("tier", tier.Name));
            }
        }

        IEnumerable<Measurement<long>> ServedBySource()
        {
            foreach (var (source, bytes) in store.GetReport().BytesServedBySource)
            {
                yield return new Measurement<long>(bytes, host, new KeyValuePair<string, object?>("source", source));
            }
        }
    }

    private IEnumerable<Measurement<long>> PerTier(Func<Tier, long> value, KeyValuePair<string, object?> host)
    {
        foreach (var tier in store.Tiers)
        {
            yield return new Measurement<long>(value(tier), host, new KeyValuePair<string, object?>("tier", tier.Name));
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>This build's version and the format versions it speaks (<see cref="SiloMetadataKeys.Version"/>).</summary>
    public static string VersionText()
    {
        var version = typeof(SiloGauges).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "unknown";
        var plus = version.IndexOf('+', StringComparison.Ordinal);
        return string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{(plus > 0 ? version[..plus] : version)} dataport/{GrainFs.DataPlane.Blocks.DataPortProtocol.Version} tier/{TierFolders.Format} schema/{GrainFs.Storage.Metadata.PostgresMetadataStore.SchemaVersion}");
    }
}
