using System.Diagnostics.Metrics;
using GrainFs.DataPlane;
using GrainFs.DataPlane.Security;

namespace GrainFs.Grains.Security;

/// <summary>
/// A silo's trust: its credentials (<see cref="ClusterTrust"/>), the session tokens and call marks made under the
/// cluster key, and the cluster id a login must name. One per silo.
/// </summary>
public sealed class SiloSecurity
{
    private static readonly Counter<long> Denied = GrainFsMetrics.Meter.CreateCounter<long>("grainfs.security.denied", "{call}", "Calls and connections refused by the trust model, by reason");

    /// <summary>Security of a silo of <paramref name="clusterId"/> with <paramref name="trust"/>.</summary>
    public SiloSecurity(ClusterTrust trust, string clusterId, TimeProvider? time = null)
    {
        Trust = trust;
        ClusterId = clusterId;
        Tokens = new SessionTokens(() => trust.ClusterKeys, time);
    }

    /// <summary>This silo's credentials.</summary>
    public ClusterTrust Trust { get; }

    /// <summary>The cluster id logins are bound to.</summary>
    public string ClusterId { get; }

    /// <summary>Session tokens and silo call marks.</summary>
    public SessionTokens Tokens { get; }

    /// <summary>Counts a refusal (grain call, connection, data-port request).</summary>
    public static void CountDenied(string where) => Denied.Add(1, new KeyValuePair<string, object?>("where", where));
}

/// <summary>
/// The authenticated caller of the grain call being served, read when a grain asks from the call's request context
/// (the session token the access filter has checked, or a silo's mark): nothing is set per call for the few grains
/// that ask. Null for a silo, a timer, and on a silo with --insecure-no-auth (no identities).
/// </summary>
public sealed class CallerIdentity(SiloSecurity? security)
{
    /// <summary>The client whose call is being served, or null when a silo made it (or identities are off).</summary>
    public Principal? Current => security is null || security.Tokens.IsSiloMark(RequestContext.Get(SecurityContextKeys.SiloMark) as string)
        ? null
        : security.Tokens.Verify(RequestContext.Get(SecurityContextKeys.Token) as string);
}
