using GrainFs.DataPlane.Blocks;
using GrainFs.DataPlane;
using GrainFs.Storage.Persist;
using System.Globalization;
using GrainFs.Grains.Namespace;
using GrainFs.Storage.Cache;
using GrainFs.Storage.Metadata;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace GrainFs.Silo.Hosting;

/// <summary>
/// A silo's options, bound and validated once, before the host is built, by the registrations of
/// <see cref="GrainFsOptionsExtensions.AddGrainFsOptions"/> (the same binding, setups and validators the options
/// classes always go through). The silo reads its ports, state folder, cluster and tiers from here, and
/// <see cref="GrainFsSiloBuilderExtensions.AddGrainFs"/> registers these same instances, so there is one source of truth.
/// </summary>
public sealed class SiloConfiguration
{
    private SiloConfiguration(GrainFsSiloOptions silo, CacheOptions cache, NamespaceOptions @namespace, GrainFsTelemetryOptions telemetry, PersistOptions persist)
    {
        Silo = silo;
        Cache = cache;
        Namespace = @namespace;
        Telemetry = telemetry;
        Persist = persist;
    }

    /// <summary>The persist queue (section GrainFs:Persist).</summary>
    public PersistOptions Persist { get; }

    /// <summary>The silo itself and its cluster (section GrainFs).</summary>
    public GrainFsSiloOptions Silo { get; }

    /// <summary>The tier store (section GrainFs:Cache).</summary>
    public CacheOptions Cache { get; }

    /// <summary>Directory grains (section GrainFs:Namespace).</summary>
    public NamespaceOptions Namespace { get; }

    /// <summary>Metrics and traces (section GrainFs:Telemetry).</summary>
    public GrainFsTelemetryOptions Telemetry { get; }

    /// <summary>
    /// Binds and validates every options class from <paramref name="configuration"/>. Throws
    /// <see cref="OptionsValidationException"/> whose <see cref="OptionsValidationException.Failures"/> are every
    /// problem found, one message each, naming its key.
    /// </summary>
    public static SiloConfiguration Load(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        using var services = new ServiceCollection().AddGrainFsOptions(configuration).BuildServiceProvider();
        var failures = new List<string>();
        try
        {
            services.GetRequiredService<IStartupValidator>().Validate();
        }
        catch (OptionsValidationException e)
        {
            failures.AddRange(e.Failures);
        }
        catch (AggregateException e)
        {
            foreach (var inner in e.Flatten().InnerExceptions)
            {
                failures.AddRange(inner is OptionsValidationException invalid ? invalid.Failures : [inner.Message]);
            }
        }

        if (failures.Count > 0)
        {
            // The cache's setup reads the silo options, so a silo failure is also reported through the cache: once is enough.
            throw new OptionsValidationException(Options.DefaultName, typeof(SiloConfiguration), [.. failures.Distinct(StringComparer.Ordinal)]);
        }

        // The monitors hold the instances the start-up validation created and checked.
        return new SiloConfiguration(
            services.GetRequiredService<IOptionsMonitor<GrainFsSiloOptions>>().CurrentValue,
            services.GetRequiredService<IOptionsMonitor<CacheOptions>>().CurrentValue,
            services.GetRequiredService<IOptionsMonitor<NamespaceOptions>>().CurrentValue,
            services.GetRequiredService<IOptionsMonitor<GrainFsTelemetryOptions>>().CurrentValue,
            services.GetRequiredService<IOptionsMonitor<PersistOptions>>().CurrentValue);
    }

    /// <summary>A one-line description for the start-up log (no credentials).</summary>
    public override string ToString() =>
        $"{Silo.SiloName} on {Silo.Host} roles={string.Join(',', Silo.RoleList)} cluster={(Silo.Cluster is null ? "embedded localhost" : PostgresMetadataStore.Describe(Silo.Cluster))} " +
        $"silo={Silo.AdvertisedAddress}:{Silo.SiloPort} gateway={Silo.GatewayPort} dashboard={(Silo.DashboardPort == 0 ? "off" : Silo.DashboardPort.ToString(CultureInfo.InvariantCulture))} " +
        $"metrics={(Silo.MetricsPort == 0 ? "off" : Silo.MetricsPort.ToString(CultureInfo.InvariantCulture))} health={(Silo.HealthPort == 0 ? "dashboard port" : Silo.HealthPort.ToString(CultureInfo.InvariantCulture))} data={Silo.Data} " +
        $"tiers={string.Join(' ', Cache.Tiers)} policy={Cache.Policy} write-tier={Cache.WriteTierKind.Label()} persist-rate={(Persist.RateBytesPerSecond == 0 ? "unlimited" : ByteSize.Format(Persist.RateBytesPerSecond) + "/s")}";
}
