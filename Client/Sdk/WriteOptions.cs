namespace GrainFs.Client;

/// <summary>How a file is created for writing.</summary>
public sealed record CreateOptions
{
    /// <summary>Fail with EEXIST when the path exists (O_EXCL); concurrent exclusive creators: one wins.</summary>
    public bool Exclusive { get; init; }

    /// <summary>The write type for this file, or null for the mount's (option write-type, default ASYNC_THROUGH).</summary>
    public WriteType? WriteType { get; init; }

    /// <summary>Permission bits of the new file.</summary>
    public int Mode { get; init; } = 0x1A4;

    /// <summary>Owner of the new file, or -1 (the front end's).</summary>
    public int Uid { get; init; } = -1;

    /// <summary>Group of the new file, or -1.</summary>
    public int Gid { get; init; } = -1;
}
