using System.Net;
using System.Security.Cryptography;
using System.Text;
using GrainFs.DataPlane;
using GrainFs.DataPlane.Security;
using GrainFs.Grains.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Dashboard;

namespace GrainFs.Silo.Hosting;

/// <summary>
/// The silo's HTTP endpoints: the Orleans Dashboard on <see cref="GrainFsSiloOptions.DashboardPort"/> at /dashboard (with
/// /healthz and /readyz, <see cref="SiloHealth"/>, which <see cref="GrainFsSiloOptions.HealthPort"/> serves alone, over
/// plain HTTP without a password) and the Prometheus scrape endpoint on <see cref="GrainFsSiloOptions.MetricsPort"/> at /metrics, both on
/// <see cref="GrainFsSiloOptions.ListenAddress"/>. On a loopback address they are plain HTTP for local users (as any
/// local tool's). On any other address (with the trust model on) both are HTTPS with the silo's certificate (clients
/// trust the cluster's ca.crt) and every request must carry HTTP Basic credentials, user <c>grainfs</c> and the password
/// of <see cref="GrainFsSiloOptions.WebPasswordFile"/>; others get 401, counted in grainfs.security.denied{where=web}.
/// </summary>
public static class WebEndpoints
{
    /// <summary>The user name the dashboard and metrics ask for.</summary>
    public const string USER = "grainfs";

    /// <summary>True when the silo serves any HTTP endpoint (the web host is then built).</summary>
    public static bool Requested(SiloConfiguration settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return settings.Silo.DashboardPort > 0 || settings.Silo.HealthPort > 0 || MetricsRequested(settings);
    }

    /// <summary>True when the Prometheus scrape endpoint is served.</summary>
    public static bool MetricsRequested(SiloConfiguration settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return settings.Telemetry.Exporter == "prometheus" && settings.Silo.MetricsPort > 0;
    }

    /// <summary>Listens on the configured ports: HTTPS with the silo's certificate (re-read on renewal) off loopback.</summary>
    public static void Listen(IWebHostBuilder web, SiloConfiguration settings)
    {
        ArgumentNullException.ThrowIfNull(web);
        ArgumentNullException.ThrowIfNull(settings);
        var silo = settings.Silo;
        var address = IPAddress.Parse(silo.ListenAddress);
        int[] ports = [.. new[] { silo.DashboardPort, MetricsRequested(settings) ? silo.MetricsPort : 0 }.Where(p => p > 0).Distinct()];
        web.ConfigureKestrel(kestrel =>
        {
            if (silo.HealthPort > 0)
            {
                // Probes carry no certificate trust and no password: plain HTTP, and only the two health paths.
                kestrel.Listen(address, silo.HealthPort);
            }

            foreach (var port in ports)
            {
                kestrel.Listen(address, port, listen =>
                {
                    if (silo.WebNeedsCredentials)
                    {
                        listen.UseHttps(https => https.ServerCertificateSelector = (_, _) => listen.ApplicationServices.GetRequiredService<ClusterTrust>().Certificate);
                    }
                });
            }
        });
    }

    /// <summary>Maps the endpoints (after the web application is built): credentials first when required, then /metrics and /dashboard, each on its own port.</summary>
    public static void Map(WebApplication app, SiloConfiguration settings)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(settings);
        var silo = settings.Silo;

        // /healthz and /readyz on the dashboard port and the health port, before any password: probes carry none, and the
        // answer holds no secret. The health port serves nothing else.
        var health = app.Services.GetRequiredService<SiloHealth>();
        app.Use(async (context, next) =>
        {
            var port = context.Connection.LocalPort;
            if ((port == silo.HealthPort || port == silo.DashboardPort) && await health.TryAnswerAsync(context))
            {
                return;
            }

            if (port == silo.HealthPort)
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return;
            }

            await next(context);
        });

        if (silo.WebNeedsCredentials)
        {
            // The validator has read the file already; it is read once more here, and kept only as its hash.
            OwnerOnlyFile.TryReadFirstLine(silo.WebPasswordFile!, "the dashboard and metrics password", "the password on one line", out var password, out _);
            var expected = SHA256.HashData(Encoding.UTF8.GetBytes($"{USER}:{password}"));
            app.Use(async (context, next) =>
            {
                if (!Authorized(context.Request.Headers.Authorization.ToString(), expected))
                {
                    SiloSecurity.CountDenied("web");
                    context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                    context.Response.Headers.WWWAuthenticate = "Basic realm=\"grainfs\", charset=\"UTF-8\"";
                    return;
                }

                await next(context);
            });
        }

        if (MetricsRequested(settings))
        {
            var metricsPort = silo.MetricsPort;
            app.UseOpenTelemetryPrometheusScrapingEndpoint(context => context.Connection.LocalPort == metricsPort && context.Request.Path == "/metrics");
            if (metricsPort != silo.DashboardPort)
            {
                // Only /metrics on the metrics port: the dashboard stays on its own.
                app.Use(async (context, next) =>
                {
                    if (context.Connection.LocalPort == metricsPort)
                    {
                        context.Response.StatusCode = StatusCodes.Status404NotFound;
                        return;
                    }

                    await next(context);
                });
            }
        }

        if (silo.DashboardPort > 0)
        {
            app.MapOrleansDashboard(routePrefix: "/dashboard");
        }
    }

    // HTTP Basic with the one user and password, compared in constant time over hashes of equal length.
    private static bool Authorized(string header, byte[] expected)
    {
        const string Scheme = "Basic ";
        if (!header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase) || header.Length > 1024)
        {
            return false;
        }

        byte[] given;
        try
        {
            given = Convert.FromBase64String(header[Scheme.Length..].Trim());
        }
        catch (FormatException)
        {
            return false;
        }

        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(given), expected);
    }
}
