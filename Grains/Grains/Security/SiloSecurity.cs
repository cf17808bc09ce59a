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

/// <summary>The authenticated caller of the grain call being served (null: a silo).</summary>
public static class Caller
{
    private static readonly AsyncLocal<Principal?> Current = new();

    /// <summary>The client whose call is being served, or null when a silo made it.</summary>
    public static Principal? Principal => Current.Value;

    internal static void Set(Principal? principal) => Current.Value = principal;
}
