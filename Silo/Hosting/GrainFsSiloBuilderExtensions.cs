using System.Diagnostics.Metrics;
using GrainFs.DataPlane;
using GrainFs.Grains;
using GrainFs.Grains.Namespace;
using GrainFs.Storage.Metadata;
using GrainFs.Storage.UnderStorage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Configuration;
using Orleans.Configuration;
using Orleans.Runtime.MembershipService.SiloMetadata;

namespace GrainFs.Silo.Hosting;

/// <summary>Registers GrainFS on an Orleans silo: its services, options, metadata and silo metadata (host, roles).</summary>
public static class GrainFsSiloBuilderExtensions
{
    /// <summary>Silo metadata key holding the host name.</summary>
    public const string HostMetadataKey = "grainfs.host";

    /// <summary>Silo metadata key holding the comma-separated roles.</summary>
    public const string RolesMetadataKey = "grainfs.roles";

    /// <summary>
    /// Adds GrainFS to a silo. <paramref name="store"/> overrides the metadata store the settings imply
    /// (in-memory embedded, PostgreSQL in a cluster); tests pass one to share it.
    /// </summary>
    public static ISiloBuilder AddGrainFs(this ISiloBuilder builder, SiloSettings settings, IMetadataStore? store = null)
    {
        var metadata = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Metadata:" + HostMetadataKey] = settings.Host,
                ["Metadata:" + RolesMetadataKey] = string.Join(',', settings.Roles),
            })
            .Build();
        builder.UseSiloMetadata(metadata.GetSection("Metadata"));

        var services = builder.Services;
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(store ?? (settings.Cluster is { } cluster ? new PostgresMetadataStore(cluster) : new InMemoryMetadataStore()));
        services.AddSingleton(new UnderStorageFactory());
        services.AddSingleton<UnderStorageRegistry>();
        services.AddSingleton<NamespaceStats>();
        services.AddOptions<NamespaceOptions>()
            .BindConfiguration("GrainFs:Namespace")
            .Validate(o => !o.Validate().Any(), "GrainFs:Namespace has invalid values")
            .ValidateOnStart();
        services.AddSingleton(new SiloIdentity(settings.Host, settings.Roles));
        services.AddHostedService<NamespaceGauges>();

        builder.Configure<GrainCollectionOptions>(options =>
            options.ClassSpecificCollectionAge[GrainTypes.Directory.FullName!] = settings.DirectoryIdleTimeout);
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

/// <summary>The host and roles of this silo.</summary>
public sealed record SiloIdentity(string Host, IReadOnlyList<string> Roles);

/// <summary>Publishes this silo's namespace counts as observable gauges of the GrainFS meter.</summary>
internal sealed class NamespaceGauges(NamespaceStats stats, SiloIdentity identity) : Microsoft.Extensions.Hosting.IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var host = new KeyValuePair<string, object?>("host", identity.Host);
        GrainFsMetrics.Meter.CreateObservableGauge("grainfs.metadata.cached_entries", () => new Measurement<long>(stats.CachedEntries, host), "{entry}", "Entries held by active directory grains");
        GrainFsMetrics.Meter.CreateObservableGauge("grainfs.metadata.table_bytes", () => new Measurement<long>(stats.TableBytes, host), "By", "Bytes of entry tables held by active directory grains");
        GrainFsMetrics.Meter.CreateObservableGauge("grainfs.metadata.active_directories", () => new Measurement<long>(stats.ActiveDirectories, host), "{grain}", "Active directory grains");
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
