namespace GrainFs;

/// <summary>How a write reaches under-storage (per mount, option <c>write-type</c>; per call in the SDK and CLI).</summary>
public enum WriteType : byte
{
    /// <summary>ASYNC_THROUGH (the default): the close returns once the bytes are synced on the write worker's disk and
    /// journaled; the file is persisted in the background.</summary>
    AsyncThrough = 0,

    /// <summary>MUST_CACHE: kept in the cache only, never persisted (lost with the worker's disk).</summary>
    MustCache = 1,

    /// <summary>CACHE_THROUGH: persisted before the close returns, and kept in the cache.</summary>
    CacheThrough = 2,

    /// <summary>THROUGH: persisted before the close returns, not kept in the cache.</summary>
    Through = 3,
}

/// <summary>Where a file stands with under-storage.</summary>
public enum Persistence : byte
{
    /// <summary>In under-storage (every file listed from it, and written files once uploaded).</summary>
    Persisted = 0,

    /// <summary>Written to the cache, queued for upload.</summary>
    Pending = 1,

    /// <summary>The last upload failed (the reason is in <see cref="FsEntry.PersistError"/>); it is retried.</summary>
    Failed = 2,

    /// <summary>Written with MUST_CACHE: never uploaded.</summary>
    CacheOnly = 3,
}

/// <summary>Names of <see cref="WriteType"/> and <see cref="Persistence"/> as users write them.</summary>
public static class WriteTypes
{
    /// <summary>Every write type's name, for help texts and errors.</summary>
    public const string Names = "MUST_CACHE, CACHE_THROUGH, THROUGH, ASYNC_THROUGH";

    /// <summary>The name: MUST_CACHE, CACHE_THROUGH, THROUGH or ASYNC_THROUGH.</summary>
    public static string Name(this WriteType type) => type switch
    {
        WriteType.MustCache => "MUST_CACHE",
        WriteType.CacheThrough => "CACHE_THROUGH",
        WriteType.Through => "THROUGH",
        _ => "ASYNC_THROUGH",
    };

    /// <summary>Parses a name (case and '-' / '_' insensitive).</summary>
    public static bool TryParse(string? text, out WriteType type)
    {
        type = WriteType.AsyncThrough;
        var key = text?.Trim().Replace('-', '_').ToUpperInvariant();
        switch (key)
        {
            case "ASYNC_THROUGH":
                type = WriteType.AsyncThrough;
                return true;
            case "MUST_CACHE":
                type = WriteType.MustCache;
                return true;
            case "CACHE_THROUGH":
                type = WriteType.CacheThrough;
                return true;
            case "THROUGH":
                type = WriteType.Through;
                return true;
            default:
                return false;
        }
    }

    /// <summary>The name shown by stat: persisted, pending, failed, cache-only.</summary>
    public static string Name(this Persistence persistence) => persistence switch
    {
        Persistence.Pending => "pending",
        Persistence.Failed => "failed",
        Persistence.CacheOnly => "cache-only",
        _ => "persisted",
    };
}

/// <summary>A change of a file's or directory's attributes (setattr); null leaves one as it is.</summary>
/// <param name="Mode">Permission bits (07777).</param>
/// <param name="Uid">Owner.</param>
/// <param name="Gid">Group.</param>
/// <param name="MtimeUtc">Modification time.</param>
/// <param name="Size">A new size: only 0 (truncate) is supported on a closed file.</param>
[GenerateSerializer, Immutable, Alias("grainfs.AttributeChange")]
public sealed record AttributeChange(
    [property: Id(0)] int? Mode = null,
    [property: Id(1)] int? Uid = null,
    [property: Id(2)] int? Gid = null,
    [property: Id(3)] DateTime? MtimeUtc = null,
    [property: Id(4)] long? Size = null)
{
    /// <summary>Nothing to change.</summary>
    public bool IsEmpty => Mode is null && Uid is null && Gid is null && MtimeUtc is null && Size is null;
}

/// <summary>A written file whose blocks a write worker holds, to be made durable there at close.</summary>
/// <param name="WriteTag">The file version's write tag.</param>
/// <param name="MountId">The mount.</param>
/// <param name="Path">The path relative to the mount root.</param>
/// <param name="Size">Bytes in the file.</param>
/// <param name="BlockSize">The mount's block size.</param>
/// <param name="WriteType">How it reaches under-storage.</param>
/// <param name="Final">The writer closed the file (false: a flush of a file still open, which may grow and be sealed again).</param>
/// <param name="Primary">For a second copy (mount option write-replicas=2): the silo holding the first one, which persists the
/// file; this worker uploads it only if that silo leaves the cluster first. Null for the first copy.</param>
/// <param name="Digest">The writer's digest of the bytes it sent (XXH3 over each block's digest of its chunk checksums); the
/// worker refuses the seal when the blocks it holds give another. Null: not checked (a block not sent by this writer).</param>
[GenerateSerializer, Immutable, Alias("grainfs.WriteSeal")]
public sealed record WriteSeal(
    [property: Id(0)] string WriteTag,
    [property: Id(1)] long MountId,
    [property: Id(2)] string Path,
    [property: Id(3)] long Size,
    [property: Id(4)] int BlockSize,
    [property: Id(5)] WriteType WriteType,
    [property: Id(6)] bool Final = true,
    [property: Id(7)] string? Primary = null,
    [property: Id(8)] ulong? Digest = null) : IMountScoped;

/// <summary>The outcome of a write-side call.</summary>
/// <param name="Status">Ok, or the errno (ENOSPC, EDQUOT, EIO, …).</param>
/// <param name="Message">The reason, naming the path.</param>
/// <param name="UnderStorageETag">For a seal that persisted the file (CACHE_THROUGH, THROUGH): the object's ETag.</param>
[GenerateSerializer, Immutable, Alias("grainfs.WriteOutcome")]
public sealed record WriteOutcome(
    [property: Id(0)] FsStatus Status,
    [property: Id(1)] string? Message,
    [property: Id(2)] string? UnderStorageETag = null)
{
    /// <summary>Success.</summary>
    public static WriteOutcome Ok { get; } = new(FsStatus.Ok, null);
}

/// <summary>
/// The bytes and files written through GrainFS that one mount holds, against its quota (options quota-bytes, quota-files).
/// Writers reserve as they write, so a write over quota fails at once with EDQUOT. Keyed by the mount id.
/// </summary>
[Alias("grainfs.IMountUsageGrain")]
public interface IMountUsageGrain : IGrainWithIntegerKey
{
    /// <summary>Takes <paramref name="bytes"/> and <paramref name="files"/> of the quota; EDQUOT (nothing taken) when they do not fit.</summary>
    [Alias("Reserve"), Access(Access.Write)]
    ValueTask<WriteOutcome> ReserveAsync(long bytes, long files);

    /// <summary>Gives back bytes and files (a write aborted, a written file removed or replaced).</summary>
    [Alias("Release"), Access(Access.Write)]
    ValueTask ReleaseAsync(long bytes, long files);

    /// <summary>Bytes and files held now.</summary>
    [Alias("Get"), Access(Access.Read)]
    ValueTask<(long Bytes, long Files)> GetAsync();
}
