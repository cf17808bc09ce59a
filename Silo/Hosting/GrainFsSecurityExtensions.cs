using System.Security.Authentication;
using GrainFs.DataPlane.Security;
using GrainFs.Grains.Security;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Connections.Security;

namespace GrainFs.Silo.Hosting;

/// <summary>
/// The trust model on a silo: mutual TLS 1.3 on the silo-to-silo port (silo certificates only) and the gateway (any
/// identity of the cluster), the login grain, the access filter on every incoming grain call, the silo mark on every
/// outgoing one, the per-mount access cache, the audit log and the secret box sealing mount credentials at rest.
/// </summary>
public static class GrainFsSecurityExtensions
{
    /// <summary>Adds the trust model with the credentials of <paramref name="trust"/>; audit events go to <paramref name="auditPath"/>.</summary>
    public static ISiloBuilder AddGrainFsSecurity(this ISiloBuilder builder, ClusterTrust trust, string clusterId, string? auditPath)
    {
        var services = builder.Services;
        services.AddSingleton(trust);
        services.AddSingleton(new SiloSecurity(trust, clusterId));
        // Mount credentials are sealed under the cluster key in the metadata store; the ring is re-read when cluster.key changes.
        services.AddSingleton(new SecretBox(() => trust.ClusterKeys));
        services.AddSingleton(sp => new AuditLog(auditPath, sp.GetRequiredService<ILogger<AuditLog>>()));
        builder.AddIncomingGrainCallFilter<AccessFilter>();
        builder.AddOutgoingGrainCallFilter<SiloCallMarker>();
        builder.Configure<SiloConnectionOptions>(connections =>
        {
            connections.ConfigureSiloInboundConnection(c => c.UseServerTls(Tls(trust, Accepts.Silos, "silo port")));
            connections.ConfigureSiloOutboundConnection(c => c.UseClientTls(Tls(trust, Accepts.Silos, "silo port")));
            connections.ConfigureGatewayInboundConnection(c => c.UseServerTls(Tls(trust, Accepts.Anyone, "gateway")));
        });
        return builder;
    }

    private static TlsOptions Tls(ClusterTrust trust, IdentityKind[] accepts, string endpoint) => new()
    {
        // Selectors, so that a renewed certificate is presented on new connections without a restart.
        LocalCertificate = trust.Certificate,
        LocalServerCertificateSelector = (_, _) => trust.Certificate,
        LocalClientCertificateSelector = (_, _, _, _, _) => trust.Certificate,
        RemoteCertificateMode = RemoteCertificateMode.RequireCertificate,
        ClientCertificateMode = RemoteCertificateMode.RequireCertificate,
        SslProtocols = SslProtocols.Tls13,
        HandshakeTimeout = TimeSpan.FromSeconds(10),
        RemoteCertificateValidation = (certificate, _, _) =>
        {
            if (trust.Validate(certificate, accepts, out _) is not null)
            {
                return true;
            }

            SiloSecurity.CountDenied(endpoint);
            return false;
        },
    };
}
