namespace GrainFs.Grains.Blocks;

/// <summary>Orleans silo metadata GrainFS publishes for placement and for clients.</summary>
public static class SiloMetadataKeys
{
    /// <summary>The silo's name (stable across restarts, unlike its address): rendezvous hashing uses it.</summary>
    public const string Silo = "grainfs.silo";

    /// <summary>The host the silo runs on.</summary>
    public const string Host = "grainfs.host";

    /// <summary>Comma-separated roles: gpu, read, write.</summary>
    public const string Roles = "grainfs.roles";

    /// <summary>The worker's data port, "ip:port".</summary>
    public const string DataPort = "grainfs.dataport";

    /// <summary>The tier folders, fastest first, separated by '|' (short-circuit readers open block files there).</summary>
    public const string Tiers = "grainfs.tiers";

    /// <summary>Bytes the worker's tiers hold together (read-order windows are bounded by a share of it).</summary>
    public const string CacheCapacity = "grainfs.capacity";

    /// <summary>
    /// The silo's GrainFS version and the versions of the formats it speaks, e.g. "0.14.0 dataport/1 tier/1 schema/3":
    /// <c>grainfs status</c> shows them, so a cluster in the middle of a rolling upgrade shows which silo runs what.
    /// </summary>
    public const string Version = "grainfs.version";
}

/// <summary>This silo's identity for the grains that report where bytes are.</summary>
/// <param name="Name">The silo name.</param>
/// <param name="Host">The host.</param>
/// <param name="DataEndpoint">The data port, "ip:port".</param>
/// <param name="Roles">The silo's roles (gpu, read, write).</param>
public sealed record LocalSilo(string Name, string Host, string DataEndpoint, IReadOnlyList<string>? Roles = null)
{
    /// <summary>True when the silo takes written blocks (the write role).</summary>
    public bool Writes => Roles?.Contains("write", StringComparer.Ordinal) == true;
}

/// <summary>The silo metadata this silo publishes (the keys of <see cref="SiloMetadataKeys"/>), as registered at start.</summary>
/// <param name="Values">Key to value.</param>
public sealed record LocalSiloMetadata(IReadOnlyDictionary<string, string> Values);
