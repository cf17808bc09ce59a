using GrainFs.DataPlane.Blocks;
using Orleans.Placement;

namespace GrainFs;

/// <summary>What a block is a piece of: enough for its home worker to fill it from under-storage.</summary>
/// <param name="MountId">The mount.</param>
/// <param name="Path">The file's path relative to the mount root.</param>
/// <param name="ETag">The version of the file the block belongs to.</param>
/// <param name="FileSize">The file's size.</param>
/// <param name="BlockSize">The mount's block size.</param>
/// <param name="Index">The block's index in the file.</param>
[GenerateSerializer, Immutable, Alias("grainfs.BlockSource")]
public sealed record BlockSource(
    [property: Id(0)] long MountId,
    [property: Id(1)] string Path,
    [property: Id(2)] string ETag,
    [property: Id(3)] long FileSize,
    [property: Id(4)] int BlockSize,
    [property: Id(5)] int Index) : IMountScoped
{
    /// <summary>Offset of the block in the file.</summary>
    public long Offset => (long)Index * BlockSize;

    /// <summary>Bytes in the block (the last one may be short; a small file is one block of its own size).</summary>
    public int Length => (int)Math.Max(0, Math.Min(BlockSize, FileSize - Offset));
}

/// <summary>Where a block is, or why it could not be filled.</summary>
/// <param name="Status">Ok, or IoError (under-storage failed), Stale (unmounted), InvalidArgument.</param>
/// <param name="Message">The reason, naming the path.</param>
/// <param name="Silo">The name of the silo whose worker holds or is filling it.</param>
/// <param name="DataEndpoint">That worker's data port ("ip:port").</param>
/// <param name="Cached">True when the block is already complete there.</param>
[GenerateSerializer, Immutable, Alias("grainfs.BlockLocation")]
public sealed record BlockLocation(
    [property: Id(0)] FsStatus Status,
    [property: Id(1)] string? Message,
    [property: Id(2)] string Silo,
    [property: Id(3)] string DataEndpoint,
    [property: Id(4)] bool Cached);

/// <summary>
/// A block's placement state, on its home silo (the gpu-role silo chosen by rendezvous hashing of its key).
/// Activated off the warm path only: to fill a cold block (single-flight), and to pin, set a TTL, free or refill
/// it. Keyed by the block key's text.
/// </summary>
[Alias("grainfs.IBlockGrain")]
public interface IBlockGrain : IGrainWithStringKey
{
    /// <summary>Starts (or joins) the fill of the block on this silo's worker and says where to read it; returns before the fill completes.</summary>
    [Alias("Fill"), Access(Access.Read)]
    ValueTask<BlockLocation> FillAsync(BlockSource source);

    /// <summary>Discards the local copy (it failed its checksum at a reader) and fills it again.</summary>
    [Alias("Refill"), Access(Access.Read)]
    ValueTask<BlockLocation> RefillAsync(BlockSource source);

    /// <summary>Where the block is held, replicas included.</summary>
    [Alias("GetState"), Access(Access.Admin)]
    ValueTask<BlockState> GetStateAsync();

    /// <summary>
    /// Copies the (hot) block to the worker of <paramref name="targetSilo"/>, whose host reads it often, so that host
    /// reads it short-circuit. Bounded: at most <see cref="MaxReplicas"/> replicas per block.
    /// </summary>
    [Alias("Replicate"), Access(Access.Read)]
    ValueTask<BlockLocation> ReplicateAsync(BlockSource source, string targetSilo);

    /// <summary>Silo-internal: the worker of <paramref name="silo"/> finished copying a replica asked for by <see cref="ReplicateAsync"/>.</summary>
    [Alias("ReplicaReady"), Orleans.Concurrency.OneWay]
    Task ReplicaReadyAsync(string silo, bool copied);

    /// <summary>The most replicas a block gets besides its home copy.</summary>
    public const int MaxReplicas = 2;
}

/// <summary>A block's placement state.</summary>
/// <param name="Key">The block key.</param>
/// <param name="Home">The silo the grain lives on.</param>
/// <param name="Tier">The tier holding the block at home, or null when not held.</param>
/// <param name="Length">Data bytes.</param>
/// <param name="Pinned">Never evicted.</param>
/// <param name="ExpiresUtc">When its TTL frees it, or null.</param>
/// <param name="Checksums">Chunk checksums (XXH3 per 64 KiB).</param>
/// <param name="Replicas">Silos holding replicas (hot blocks copied to the hosts that read them).</param>
[GenerateSerializer, Immutable, Alias("grainfs.BlockState")]
public sealed record BlockState(
    [property: Id(0)] string Key,
    [property: Id(1)] string Home,
    [property: Id(2)] string? Tier,
    [property: Id(3)] int Length,
    [property: Id(4)] bool Pinned,
    [property: Id(5)] DateTime? ExpiresUtc,
    [property: Id(6)] int Checksums,
    [property: Id(7)] string[] Replicas);

/// <summary>The outcome of a batch on a worker.</summary>
/// <param name="Blocks">Blocks handled (filled, already held, freed or changed).</param>
/// <param name="Bytes">Bytes read from under-storage (loads) or released (frees).</param>
/// <param name="Failures">Blocks that failed.</param>
/// <param name="FirstError">The first failure's message, naming the path.</param>
[GenerateSerializer, Immutable, Alias("grainfs.BatchResult")]
public sealed record BatchResult(
    [property: Id(0)] int Blocks,
    [property: Id(1)] long Bytes,
    [property: Id(2)] int Failures,
    [property: Id(3)] string? FirstError);

/// <summary>One tier of a worker, for reports.</summary>
[GenerateSerializer, Immutable, Alias("grainfs.TierUsage")]
public sealed record TierUsage(
    [property: Id(0)] string Tier,
    [property: Id(1)] string Path,
    [property: Id(2)] long Capacity,
    [property: Id(3)] long Used,
    [property: Id(4)] int Blocks,
    [property: Id(5)] long Hits,
    [property: Id(6)] string? OutOfService = null,
    [property: Id(7)] long Faults = 0);

/// <summary>Where a load (pre-warm) started on a worker stands.</summary>
/// <param name="Done">True once every block is filled or has failed.</param>
/// <param name="Total">Blocks in the load.</param>
/// <param name="Blocks">Blocks filled or found held so far.</param>
/// <param name="Bytes">Bytes filled from under-storage so far.</param>
/// <param name="Failures">Blocks that failed so far.</param>
/// <param name="FirstError">The first failure's message, naming the path.</param>
[GenerateSerializer, Immutable, Alias("grainfs.LoadStatus")]
public sealed record LoadStatus(
    [property: Id(0)] bool Done,
    [property: Id(1)] int Total,
    [property: Id(2)] int Blocks,
    [property: Id(3)] long Bytes,
    [property: Id(4)] int Failures,
    [property: Id(5)] string? FirstError);

/// <summary>A worker's report.</summary>
[GenerateSerializer, Immutable, Alias("grainfs.WorkerReport")]
public sealed record WorkerReport(
    [property: Id(0)] string Silo,
    [property: Id(1)] string Host,
    [property: Id(2)] TierUsage[] Tiers,
    [property: Id(3)] string Policy,
    [property: Id(4)] long Requests,
    [property: Id(5)] long Misses,
    [property: Id(6)] long Fills,
    [property: Id(7)] long FillBytes,
    [property: Id(8)] long Evictions,
    [property: Id(9)] long Corrupt,
    [property: Id(10)] Dictionary<string, long> BytesServedBySource,
    [property: Id(11)] string? WriteTier = null,
    [property: Id(12)] WorkerPrefetch? Prefetch = null,
    [property: Id(13)] long Lost = 0);

/// <summary>
/// A worker's fills ahead of readers (announced read orders; counted in <see cref="WorkerReport.Fills"/> too): how many
/// and their bytes, hits (a reader asked for the block afterwards), wasted (evicted before anyone did), and the prefetch
/// fills running now (the worker's prefetch queue).
/// </summary>
[GenerateSerializer, Immutable, Alias("grainfs.WorkerPrefetch")]
public sealed record WorkerPrefetch(
    [property: Id(0)] long Fills,
    [property: Id(1)] long Bytes,
    [property: Id(2)] long Hits,
    [property: Id(3)] long Wasted,
    [property: Id(4)] int Running);

/// <summary>
/// A part of an announced read order as one worker sees it: the keys of its blocks of mount <see cref="MountId"/>, in
/// the order a reader will request them, from place <see cref="Start"/>; <see cref="Last"/> puts the order in force.
/// <see cref="Told"/>: the announcing client will tell where its reader is (<see cref="IWorkerGrain.AdvanceOrderAsync"/>),
/// so the worker places the reader by that alone from the start.
/// </summary>
[GenerateSerializer, Alias("GrainFs.OrderPart")]
public sealed record OrderPart(
    [property: Id(0)] long MountId,
    [property: Id(1)] string Job,
    [property: Id(2)] int Start,
    [property: Id(3)] BlockKey[] Keys,
    [property: Id(4)] bool Last,
    [property: Id(5)] TimeSpan Expiry,
    [property: Id(6)] bool Told = false) : IMountScoped;

/// <summary>
/// The worker of one silo: owns that silo's tier store. Keyed by the silo's name and placed on it. Batches
/// (load, free, pin, TTL) go to the worker of the blocks' home in one call, never one call per block.
/// </summary>
[Alias("grainfs.IWorkerGrain")]
public interface IWorkerGrain : IGrainWithStringKey
{
    /// <summary>Tiers, usage and counters.</summary>
    [Alias("Report"), Access(Access.Admin)]
    ValueTask<WorkerReport> GetReportAsync();

    /// <summary>
    /// The silo metadata this worker's silo publishes (name, host, roles, data port, tiers, capacity): asked by a silo
    /// whose Orleans metadata cache missed it (its one fetch failed while the silo was joining). Silos only.
    /// </summary>
    [Alias("Metadata")]
    ValueTask<Dictionary<string, string>> GetMetadataAsync();

    /// <summary>
    /// Starts loading blocks that are not held (several fills at once, in the background) and applying pin/TTL to all of
    /// them (a TTL runs from now on this worker's clock, the one it is compared with); returns at once with the load's
    /// id, to follow with <see cref="WaitLoadAsync"/>.
    /// </summary>
    [Alias("StartLoad"), Access(Access.Admin, Audit = true)]
    ValueTask<long> StartLoadAsync(BlockSource[] blocks, bool? pin, TimeSpan? ttl);

    /// <summary>Where a load stands, once it is done or after at most <paramref name="maxWaitMilliseconds"/> (capped at 10 s).</summary>
    [Alias("WaitLoad"), Access(Access.Admin)]
    ValueTask<LoadStatus> WaitLoadAsync(long load, int maxWaitMilliseconds);

    /// <summary>
    /// Takes a part of the order in which a reader will request this worker's blocks; the last part puts the order in
    /// force, replacing the one before: eviction then takes first what the reader has passed, and last what it will
    /// reach last. The order lapses after its expiry, or when <see cref="ForgetOrderAsync"/> names its job.
    /// </summary>
    [Alias("AnnounceOrder"), Access(Access.Read)]
    ValueTask AnnounceOrderAsync(OrderPart part);

    /// <summary>
    /// Where the reader of <paramref name="job"/>'s order is: it has read this worker's blocks up to place
    /// <paramref name="position"/> of the order (the index of the last one). From the first such call the worker places
    /// that reader by these alone, not by the requests it sees (which other readers of the same blocks make too, and
    /// which short-circuit readers report late).
    /// </summary>
    [Alias("AdvanceOrder"), Access(Access.Read)]
    ValueTask AdvanceOrderAsync(long mountId, string job, int position);

    /// <summary>Ends the order of <paramref name="job"/> if it is the one in force (eviction as without one).</summary>
    [Alias("ForgetOrder"), Access(Access.Read)]
    ValueTask ForgetOrderAsync(long mountId, string job);

    /// <summary>Removes blocks from every tier of this worker.</summary>
    [Alias("Free"), Access(Access.Admin, Audit = true)]
    ValueTask<BatchResult> FreeAsync(BlockKey[] keys);

    /// <summary>
    /// Which of <paramref name="keys"/> this worker holds, in any tier (home copies and replicas): the count and their
    /// data bytes (<see cref="BatchResult.Blocks"/>, <see cref="BatchResult.Bytes"/>). Nothing is counted as a request.
    /// The keys are of files of mount <paramref name="mountId"/>, which the caller must be allowed to read.
    /// </summary>
    [Alias("Held"), Access(Access.Read)]
    ValueTask<BatchResult> HeldAsync(long mountId, BlockKey[] keys);

    /// <summary>
    /// Changes pin and TTL of held blocks; null leaves a setting as it is. A TTL runs from now on this worker's clock
    /// (the one its expiry is compared with, whatever the caller's clock says); a pinned block outlives its TTL until
    /// it is unpinned.
    /// </summary>
    [Alias("SetFlags"), Access(Access.Admin, Audit = true)]
    ValueTask<BatchResult> SetFlagsAsync(BlockKey[] keys, bool? pin, TimeSpan? ttl);

    /// <summary>
    /// Starts copying a block from another worker's data port into this worker's tiers (a replica) and returns at once;
    /// the block's grain hears the outcome (<see cref="IBlockGrain.ReplicaReadyAsync"/>). Every chunk is checked
    /// against <paramref name="checksums"/>, the ones the block's home recorded when it filled the block; a chunk that
    /// does not match drops the copy.
    /// </summary>
    [Alias("CopyBlock")]
    ValueTask<BatchResult> CopyBlockAsync(BlockKey key, int length, string fromEndpoint, ulong[] checksums);

    /// <summary>
    /// Makes a written file durable on this worker before its close is acknowledged: every block is held (synced as it
    /// arrived), and a journal entry records the file (ASYNC_THROUGH, CACHE_THROUGH, THROUGH). CACHE_THROUGH and THROUGH are
    /// uploaded before this returns (THROUGH's blocks then freed); ASYNC_THROUGH is queued once committed.
    /// </summary>
    [Alias("Seal"), Access(Access.Write)]
    ValueTask<WriteOutcome> SealAsync(WriteSeal seal);

    /// <summary>The sealed file is committed (visible) at <paramref name="path"/>: its persist may start.</summary>
    [Alias("Committed"), Orleans.Concurrency.OneWay]
    Task CommittedAsync(string writeTag, string path);

    /// <summary>A written file was renamed before it was persisted: it is uploaded to <paramref name="path"/> instead.</summary>
    [Alias("Retarget")]
    ValueTask<WriteOutcome> RetargetAsync(string writeTag, string path);

    /// <summary>A written file was removed, replaced or aborted: its blocks go (unpersisted ones too) and its persist is cancelled;
    /// with <paramref name="deleteObject"/> an upload that completes anyway is removed from under-storage.</summary>
    [Alias("DropWritten"), Access(Access.Write)]
    ValueTask<WriteOutcome> DropWrittenAsync(long mountId, string writeTag, BlockKey[] keys, bool deleteObject);

    /// <summary>Where this worker's persist queue stands: files and bytes waiting, and the configured rate.</summary>
    [Alias("PersistStatus"), Access(Access.Admin)]
    ValueTask<PersistStatus> GetPersistStatusAsync();

    /// <summary>
    /// Tells this worker's silo that silo <paramref name="silo"/> is being drained (or no longer is): its cluster view
    /// marks it, so writers give it no new file. Every silo is told; one that joins later does not know.
    /// </summary>
    [Alias("SetDraining"), Access(Access.Admin, Audit = true)]
    ValueTask SetDrainingAsync(string silo, bool draining);

    /// <summary>
    /// A page of the blocks this worker holds, pinned ones or the others, in key order after <paramref name="afterKey"/>
    /// (null: from the start), each with what another worker needs to copy it from here (length, checksums, this data
    /// port) and keep its pin and TTL. For a drain.
    /// </summary>
    [Alias("ListBlocks"), Access(Access.Admin)]
    ValueTask<BlockCopy[]> ListBlocksAsync(bool pinned, string? afterKey, int maxBlocks);

    /// <summary>
    /// Starts copying blocks from other workers' data ports into this worker's tiers (each chunk checked against its
    /// recorded checksum), keeping their pin and TTL; a block held here already only takes the flags. Returns the job's
    /// id, to follow with <see cref="WaitLoadAsync"/>.
    /// </summary>
    [Alias("Adopt"), Access(Access.Admin, Audit = true)]
    ValueTask<long> StartAdoptAsync(BlockCopy[] blocks);

    /// <summary>Stops this worker's silo as a SIGTERM would (it leaves the cluster), shortly after answering.</summary>
    [Alias("StopSilo"), Access(Access.Admin, Audit = true)]
    ValueTask StopSiloAsync();

    /// <summary>Counts reads a short-circuit client served itself, so eviction knows the blocks are hot.</summary>
    [Alias("RecordAccess"), Access(Access.Authenticated), Orleans.Concurrency.OneWay]
    Task RecordAccessAsync(BlockKey[] keys);
}

/// <summary>A held block, as another worker copies it: from <paramref name="FromEndpoint"/>, checked against <paramref name="Checksums"/>.</summary>
/// <param name="Key">The block.</param>
/// <param name="Length">Its data bytes.</param>
/// <param name="FromEndpoint">The data port of the worker holding it.</param>
/// <param name="Checksums">Its chunk checksums, as recorded when it was filled.</param>
/// <param name="Pinned">Never evicted.</param>
/// <param name="Ttl">What is left of its TTL, or null.</param>
[GenerateSerializer, Immutable, Alias("grainfs.BlockCopy")]
public sealed record BlockCopy(
    [property: Id(0)] BlockKey Key,
    [property: Id(1)] int Length,
    [property: Id(2)] string FromEndpoint,
    [property: Id(3)] ulong[] Checksums,
    [property: Id(4)] bool Pinned,
    [property: Id(5)] TimeSpan? Ttl);

/// <summary>A worker's persist queue.</summary>
/// <param name="Files">Files waiting or uploading.</param>
/// <param name="Bytes">Their bytes.</param>
/// <param name="Failing">Files whose last attempt failed.</param>
/// <param name="RateBytesPerSecond">The configured persist rate (0: unlimited).</param>
/// <param name="PersistedBytes">Bytes uploaded since the silo started.</param>
[GenerateSerializer, Immutable, Alias("grainfs.PersistStatus")]
public sealed record PersistStatus(
    [property: Id(0)] int Files,
    [property: Id(1)] long Bytes,
    [property: Id(2)] int Failing,
    [property: Id(3)] long RateBytesPerSecond,
    [property: Id(4)] long PersistedBytes);

/// <summary>
/// A silo as clients see it: where its worker's data port is, which tier folders it has, its roles, how many bytes its
/// tiers hold (0 when not told), and whether it is being drained (<c>grainfs worker drain</c>: it takes no new files).
/// </summary>
[GenerateSerializer, Immutable, Alias("grainfs.SiloInfo")]
public sealed record SiloInfo(
    [property: Id(0)] string Name,
    [property: Id(1)] string Address,
    [property: Id(2)] string Host,
    [property: Id(3)] string[] Roles,
    [property: Id(4)] string DataEndpoint,
    [property: Id(5)] string[] TierPaths,
    [property: Id(6)] long CacheCapacity = 0,
    [property: Id(7)] bool Draining = false);

/// <summary>Cluster membership with GrainFS's silo metadata. A stateless worker: answered by whichever silo is called.</summary>
[Alias("grainfs.IClusterGrain")]
public interface IClusterGrain : IGrainWithIntegerKey
{
    /// <summary>The active silos.</summary>
    [Alias("GetSilos"), Access(Access.Authenticated)]
    ValueTask<SiloInfo[]> GetSilosAsync();

    /// <summary>
    /// Every member of the cluster this silo's membership view holds, whatever its state (joining, active, shutting
    /// down, dead): one per silo name, its newest incarnation. For `grainfs status`.
    /// </summary>
    [Alias("GetMembers"), Access(Access.Authenticated)]
    ValueTask<SiloMember[]> GetMembersAsync();
}

/// <summary>A cluster member as the membership view holds it.</summary>
/// <param name="Name">The silo name.</param>
/// <param name="Address">The Orleans silo address (ip:port@generation).</param>
/// <param name="State">joining, active, shutting down, stopping or dead (Orleans' SiloStatus, lower case).</param>
/// <param name="Host">The host it reports, or empty when its metadata is not known yet.</param>
/// <param name="Roles">Its roles, or empty when not known yet.</param>
/// <param name="DataEndpoint">Its data port, or empty.</param>
/// <param name="Version">Its GrainFS version and format versions ("0.14.0 dataport/1 tier/1 schema/3"), or empty when not known.</param>
[GenerateSerializer, Immutable, Alias("grainfs.SiloMember")]
public sealed record SiloMember(
    [property: Id(0)] string Name,
    [property: Id(1)] string Address,
    [property: Id(2)] string State,
    [property: Id(3)] string Host,
    [property: Id(4)] string[] Roles,
    [property: Id(5)] string DataEndpoint,
    [property: Id(6)] string Version = "");

/// <summary>Places a block grain on its home: the gpu-role silo chosen by rendezvous hashing of the block key (all silos when none has the role).</summary>
[GenerateSerializer, Alias("grainfs.BlockHomePlacement")]
public sealed class BlockHomePlacement : PlacementStrategy
{
    /// <summary>The one instance.</summary>
    public static BlockHomePlacement Instance { get; } = new();
}

/// <summary>Marks a grain class as placed on its block's home silo.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class BlockHomePlacementAttribute : PlacementAttribute
{
    /// <summary>Creates the attribute.</summary>
    public BlockHomePlacementAttribute()
        : base(BlockHomePlacement.Instance)
    {
    }
}

/// <summary>Places a grain keyed by a silo name on that silo.</summary>
[GenerateSerializer, Alias("grainfs.SiloNamePlacement")]
public sealed class SiloNamePlacement : PlacementStrategy
{
    /// <summary>The one instance.</summary>
    public static SiloNamePlacement Instance { get; } = new();
}

/// <summary>Marks a grain class keyed by silo name as placed on that silo.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class SiloNamePlacementAttribute : PlacementAttribute
{
    /// <summary>Creates the attribute.</summary>
    public SiloNamePlacementAttribute()
        : base(SiloNamePlacement.Instance)
    {
    }
}
