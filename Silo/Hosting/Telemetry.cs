using GrainFs.DataPlane;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace GrainFs.Silo.Hosting;

/// <summary>OpenTelemetry for the silo: Orleans' and GrainFS's meters and activity sources, to the exporter configuration names.</summary>
public static class Telemetry
{
    /// <summary>Meters exported: Orleans', GrainFS's, and the .NET runtime's (GC heap, working set, thread pool).</summary>
    public static readonly string[] Meters = ["Microsoft.Orleans", GrainFsMetrics.Name, "System.Runtime"];

    /// <summary>Activity sources traced.</summary>
    public static readonly string[] Sources = ["Microsoft.Orleans.Runtime", "Microsoft.Orleans.Application", GrainFsMetrics.Name];

    /// <summary>Adds OpenTelemetry with the configured exporter.</summary>
    public static void AddGrainFsTelemetry(this IServiceCollection services, SiloConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var silo = configuration.Silo;
        var telemetry = configuration.Telemetry;
        if (telemetry.Exporter == "none")
        {
            return;
        }

        var otel = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("grainfs-silo", serviceInstanceId: silo.SiloName)
                .AddAttributes([new("host.name", silo.Host), new("grainfs.roles", string.Join(',', silo.RoleList))]));

        otel.WithMetrics(metrics =>
        {
            metrics.AddMeter(Meters);
            switch (telemetry.Exporter)
            {
                case "prometheus" when silo.MetricsPort > 0:
                    // Scraped at /metrics on the silo's web host (WebEndpoints), which listens on the metrics port.
                    metrics.AddPrometheusExporter();
                    break;
                case "otlp":
                    metrics.AddOtlpExporter(o => SetEndpoint(o, telemetry));
                    break;
                case "console":
                    metrics.AddConsoleExporter();
                    break;
            }
        });

        if (telemetry.Exporter is "otlp" or "console")
        {
            otel.WithTracing(tracing =>
            {
                tracing.AddSource(Sources);
                if (telemetry.Exporter == "otlp")
                {
                    tracing.AddOtlpExporter(o => SetEndpoint(o, telemetry));
                }
                else
                {
                    tracing.AddConsoleExporter();
                }
            });
        }
    }

    private static void SetEndpoint(OpenTelemetry.Exporter.OtlpExporterOptions options, GrainFsTelemetryOptions telemetry)
    {
        if (telemetry.OtlpEndpoint is not null)
        {
            options.Endpoint = telemetry.OtlpEndpoint;
        }
    }
}
