using GrainFs.Storage.Persist;
using GrainFs.DataPlane;
using GrainFs.Grains.Namespace;
using GrainFs.Storage.Cache;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace GrainFs.Silo.Hosting;

/// <summary>The one way silo settings are read: options classes bound from configuration, set up, and validated at start.</summary>
public static class GrainFsOptionsExtensions
{
    /// <summary>The configuration section <see cref="CacheOptions"/> is bound from.</summary>
    public const string CACHE_SECTION = "GrainFs:Cache";

    /// <summary>
    /// Registers every GrainFS silo options class: bound from its section of <paramref name="configuration"/> (a value
    /// that does not convert fails naming its key), completed by its setup, checked by its validator, validated on start.
    /// </summary>
    public static IServiceCollection AddGrainFsOptions(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<GrainFsSiloOptions>().BindChecked(configuration, GrainFsSiloOptions.SECTION).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<GrainFsSiloOptions>, GrainFsSiloOptionsSetup>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<GrainFsSiloOptions>, GrainFsSiloOptionsValidator>());

        services.AddOptions<CacheOptions>().BindChecked(configuration, CACHE_SECTION).ValidateOnStart();
        services.AddSingleton<IPostConfigureOptions<CacheOptions>>(sp =>
            new CacheOptionsSetup(sp.GetRequiredService<IOptionsMonitor<GrainFsSiloOptions>>(), configuration.GetSection(GrainFsSiloOptions.SECTION)));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<CacheOptions>, CacheOptionsValidator>());

        services.AddOptions<PersistOptions>().BindChecked(configuration, PersistOptions.SECTION).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PersistOptions>, PersistOptionsValidator>());

        services.AddOptions<NamespaceOptions>().BindChecked(configuration, NamespaceOptions.SECTION).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<NamespaceOptions>, NamespaceOptionsValidator>());

        services.AddOptions<GrainFsTelemetryOptions>()
            .BindChecked(configuration, GrainFsTelemetryOptions.SECTION)
            .PostConfigure(o => o.Exporter = o.Exporter.Trim().ToLowerInvariant())
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<GrainFsTelemetryOptions>, GrainFsTelemetryOptionsValidator>());
        return services;
    }
}
