namespace GrainFs;

/// <summary>
/// The mount table: which under-storage URI is attached where. Off the read path: clients cache the
/// table with its version and call here only to mount, unmount, or refresh a stale copy.
/// </summary>
[Alias("grainfs.IMountTableGrain")]
public interface IMountTableGrain : IGrainWithIntegerKey
{
    /// <summary>The key of the one mount table of a cluster.</summary>
    public const long Key = 0;

    /// <summary>The table, with secrets redacted. Answered between the steps of a mount or unmount (which check the
    /// under-storage for up to 15 s): a slow or blackholed endpoint never holds up lookups.</summary>
    [Alias("GetTable"), Access(Access.Authenticated), Orleans.Concurrency.AlwaysInterleave]
    ValueTask<MountTableSnapshot> GetTableAsync();

    /// <summary>The table's version, for a cheap staleness check (answered between a mount's steps, as the table).</summary>
    [Alias("GetVersion"), Access(Access.Authenticated), Orleans.Concurrency.AlwaysInterleave]
    ValueTask<long> GetVersionAsync();

    /// <summary>Mounts an under-storage URI. Refuses nested or overlapping mount points, bad paths,
    /// unsupported URIs, unknown options and unreachable under-storage, with a message naming the problem.</summary>
    [Alias("Mount"), Access(Access.Admin, Audit = true)]
    ValueTask<MountResult> MountAsync(MountRequest request);

    /// <summary>Removes the mount at <paramref name="path"/> and forgets its cached metadata.</summary>
    [Alias("Unmount"), Access(Access.Admin, Audit = true)]
    ValueTask<MountResult> UnmountAsync(string path);

    /// <summary>Sets who may read and who may write the mount at <paramref name="path"/> (identity names, '*' for every
    /// authenticated identity; null leaves a list as it is, empty means admins only).</summary>
    [Alias("SetAccess"), Access(Access.Admin, Audit = true)]
    ValueTask<MountResult> SetAccessAsync(string path, IReadOnlyList<string>? readers, IReadOnlyList<string>? writers);

    /// <summary>Silo-internal: the full mount record, credentials included, for the grains that talk to its under-storage.
    /// Null when no such mount exists (it was unmounted).</summary>
    [Alias("Resolve"), Orleans.Concurrency.AlwaysInterleave]
    ValueTask<MountInfo?> ResolveAsync(long mountId);
}
