using GrainFs.DataPlane.Security;
using GrainFs.Grains.Security;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Configuration;

namespace GrainFs.Silo.Hosting;

/// <summary>
/// The trust model on a silo: sealed connections (<see cref="SealedConnection"/>: a mutual TLS 1.3 handshake, then
/// AES-256-GCM frames) on the silo-to-silo port (silo certificates only) and the gateway (any identity of the cluster),
/// the login grain, the access filter on every incoming grain call, the silo mark on every outgoing one, the per-mount
/// access cache, the audit log and the secret box sealing mount credentials at rest.
/// </summary>
public static partial class GrainFsSecurityExtensions
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
            connections.ConfigureSiloInboundConnection(c => c.UseSealedServer(Sealed(c, trust, Accepts.Silos, "silo port")));
            connections.ConfigureSiloOutboundConnection(c => c.UseSealedClient(Sealed(c, trust, Accepts.Silos, "silo port")));
            connections.ConfigureGatewayInboundConnection(c => c.UseSealedServer(Sealed(c, trust, Accepts.Anyone, "gateway")));
        });
        return builder;
    }

    // A refused peer is counted as a denial; every failed handshake is logged with its reason.
    private static SealedConnectionOptions Sealed(IConnectionBuilder connection, ClusterTrust trust, IdentityKind[] accepts, string endpoint)
    {
        var logger = (connection.ApplicationServices.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger("GrainFs.Security.Connections");
        return new SealedConnectionOptions(trust, accepts, failure =>
        {
            if (failure.Kind == HandshakeFailureKind.PeerRefused)
            {
                SiloSecurity.CountDenied(endpoint);
            }

            LogHandshakeFailed(logger, endpoint, failure.Kind, failure.Reason);
        });
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "A connection to the {Endpoint} failed its handshake ({Kind}): {Reason}")]
    private static partial void LogHandshakeFailed(ILogger logger, string endpoint, HandshakeFailureKind kind, string reason);
}
