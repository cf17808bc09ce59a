using GrainFs.DataPlane;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace GrainFs.Silo.Hosting;

/// <summary>OpenTelemetry for the silo: Orleans' and GrainFS's meters and activity sources, to the exporter configuration names.</summary>
public static class Telemetry
{
    /// <summary>Meters exported.</summary>
    public static readonly string[] Meters = ["Microsoft.Orleans", GrainFsMetrics.Name];

    /// <summary>Activity sources traced.</summary>
    public static readonly string[] Sources = ["Microsoft.Orleans.Runtime", "Microsoft.Orleans.Application", GrainFsMetrics.Name];

    /// <summary>Adds OpenTelemetry with the configured exporter.</summary>
    public static void AddGrainFsTelemetry(this IServiceCollection services, SiloSettings settings)
    {
        if (settings.TelemetryExporter == "none")
        {
            return;
        }

        var otel = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("grainfs-silo", serviceInstanceId: settings.SiloName)
                .AddAttributes([new("host.name", settings.Host), new("grainfs.roles", string.Join(',', settings.Roles))]));

        otel.WithMetrics(metrics =>
        {
            metrics.AddMeter(Meters);
            switch (settings.TelemetryExporter)
            {
                case "prometheus" when settings.MetricsPort > 0:
                    metrics.AddPrometheusHttpListener(o =>
                    {
                        o.Host = settings.ListenAddress;
                        o.Port = settings.MetricsPort;
                    });
                    break;
                case "otlp":
                    metrics.AddOtlpExporter(o => SetEndpoint(o, settings));
                    break;
                case "console":
                    metrics.AddConsoleExporter();
                    break;
            }
        });

        if (settings.TelemetryExporter is "otlp" or "console")
        {
            otel.WithTracing(tracing =>
            {
                tracing.AddSource(Sources);
                if (settings.TelemetryExporter == "otlp")
                {
                    tracing.AddOtlpExporter(o => SetEndpoint(o, settings));
                }
                else
                {
                    tracing.AddConsoleExporter();
                }
            });
        }
    }

    private static void SetEndpoint(OpenTelemetry.Exporter.OtlpExporterOptions options, SiloSettings settings)
    {
        if (settings.OtlpEndpoint is not null)
        {
            options.Endpoint = settings.OtlpEndpoint;
        }
    }
}
