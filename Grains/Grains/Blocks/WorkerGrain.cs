using GrainFs.DataPlane.Blocks;
using GrainFs.Storage.Cache;
using Orleans.Concurrency;

namespace GrainFs.Grains.Blocks;

/// <summary>
/// The worker of one silo: the control endpoint of its tier store. Every call is a bounded call to a service: loads
/// and replica copies run as <see cref="WorkerJobs"/> in the background, frees and header rewrites go off the grain's
/// thread. It holds no state, so it is reentrant: a report or a free never waits behind a load.
/// </summary>
[SiloNamePlacement]
[Reentrant]
internal sealed class WorkerGrain(BlockFiller filler, WorkerJobs jobs, LocalSilo silo, LocalSiloMetadata metadata, GrainFs.Grains.Writes.PersistQueue persist, SiloDirectory directory, GrainFsClock time, Microsoft.Extensions.Hosting.IHostApplicationLifetime lifetime) : Grain, IWorkerGrain
{
    /// <summary>The longest a <see cref="WaitLoadAsync"/> call waits before it reports progress.</summary>
    public static readonly TimeSpan MaxLoadWait = TimeSpan.FromSeconds(10);

    private TierStore Store => filler.Store;

    /// <summary>How long an activation that answers for a silo that is gone lives (see <see cref="OnActivateAsync"/>).</summary>
    public static readonly TimeSpan MisplacedLifetime = TimeSpan.FromSeconds(2);

    private bool Misplaced => this.GetPrimaryKeyString() != silo.Name;

    /// <summary>
    /// A worker placed on another silo than its own (its silo was down when it was called) answers that it is gone, and
    /// only for <see cref="MisplacedLifetime"/>: then it deactivates, so that once its silo is back (restarted on the
    /// same name) the next call finds that silo's worker rather than this stand-in forever. A stand-in activated while
    /// its silo is a member again (a call that came here by a stale directory entry: Orleans activates a grain where
    /// its message lands) deactivates at once, before it answers anything: the calls waiting for it are placed again,
    /// this time on their silo.
    /// </summary>
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (Misplaced)
        {
            if (directory.ActiveSiloNamed(this.GetPrimaryKeyString()) is not null)
            {
                DeactivateOnIdle();
                return Task.CompletedTask;
            }

            this.RegisterGrainTimer(() =>
            {
                DeactivateOnIdle();
                return Task.CompletedTask;
            }, MisplacedLifetime, MisplacedLifetime);
        }

        return base.OnActivateAsync(cancellationToken);
    }

    public ValueTask<WorkerReport> GetReportAsync()
    {
        var report = Store.GetReport();
        return ValueTask.FromResult(new WorkerReport(
            Misplaced ? this.GetPrimaryKeyString() + " (gone; answered by " + silo.Name + ")" : silo.Name,
            silo.Host,
            [.. report.Tiers.Select(t => new TierUsage(t.Name, t.Path, t.Capacity, t.Used, t.Blocks, t.Hits, t.OutOfService, t.Faults))],
            report.Policy,
            report.Requests,
            report.Misses,
            report.Fills,
            report.FillBytes,
            report.Evictions,
            report.Corrupt,
            new Dictionary<string, long>(report.BytesServedBySource),
            silo.Writes ? Store.WriteTier.Name : null,
            new WorkerPrefetch(report.Prefetch.Fills, report.Prefetch.Bytes, report.Prefetch.Hits, report.Prefetch.Wasted, report.Prefetch.Running),
            report.Lost));
    }

    public ValueTask<Dictionary<string, string>> GetMetadataAsync() =>
        ValueTask.FromResult(new Dictionary<string, string>(metadata.Values, StringComparer.Ordinal));

    public ValueTask<long> StartLoadAsync(BlockSource[] blocks, bool? pin, TimeSpan? ttl) =>
        ValueTask.FromResult(jobs.StartLoad(blocks, pin, ttl));

    public ValueTask<LoadStatus> WaitLoadAsync(long load, int maxWaitMilliseconds) =>
        jobs.WaitLoadAsync(load, TimeSpan.FromMilliseconds(Math.Clamp(maxWaitMilliseconds, 0, (int)MaxLoadWait.TotalMilliseconds)));

    public ValueTask AnnounceOrderAsync(OrderPart part)
    {
        Store.AddOrderPart(part.Job, part.Start, part.Keys, part.Last, part.Expiry, part.Told);
        return ValueTask.CompletedTask;
    }

    public ValueTask AdvanceOrderAsync(long mountId, string job, int position)
    {
        Store.Index.AdvanceOrder(job, position);
        return ValueTask.CompletedTask;
    }

    public ValueTask ForgetOrderAsync(long mountId, string job)
    {
        Store.ForgetOrder(job);
        return ValueTask.CompletedTask;
    }

    public async ValueTask<BatchResult> FreeAsync(BlockKey[] keys)
    {
        var (freed, bytes) = await Store.FreeAsync(keys);
        return new BatchResult(freed, bytes, 0, null);
    }

    public ValueTask<BatchResult> HeldAsync(long mountId, BlockKey[] keys)
    {
        int held = 0;
        long bytes = 0;
        if (!Misplaced)
        {
            foreach (var key in keys)
            {
                if (Store.Index.TryPeek(key, out var block))
                {
                    held++;
                    bytes += block.Header.DataLength;
                }
            }
        }

        return ValueTask.FromResult(new BatchResult(held, bytes, 0, null));
    }

    public ValueTask SetDrainingAsync(string silo, bool draining)
    {
        directory.SetDraining(silo, draining);
        return ValueTask.CompletedTask;
    }

    public ValueTask<BlockCopy[]> ListBlocksAsync(bool pinned, string? afterKey, int maxBlocks)
    {
        var now = time.GetUtcNow().UtcTicks;
        var page = Store.Index.Snapshot()
            .Where(b => b.Header.Pinned == pinned && (afterKey is null || string.CompareOrdinal(b.Key.ToString(), afterKey) > 0))
            .OrderBy(b => b.Key.ToString(), StringComparer.Ordinal)
            .Take(Math.Clamp(maxBlocks, 1, 4096))
            .Select(b => new BlockCopy(b.Key, b.Header.DataLength, silo.DataEndpoint, b.Header.Checksums, b.Header.Pinned,
                b.Header.ExpiresTicks > 0 ? TimeSpan.FromTicks(Math.Max(1, b.Header.ExpiresTicks - now)) : null))
            .ToArray();
        return ValueTask.FromResult(page);
    }

    public ValueTask<long> StartAdoptAsync(BlockCopy[] blocks) => ValueTask.FromResult(jobs.StartAdopt(blocks));

    public ValueTask StopSiloAsync()
    {
        // After the answer is on its way: the stop deactivates this grain with the rest of the silo.
        _ = Task.Run(async () =>
        {
            await Task.Delay(TimeSpan.FromMilliseconds(200));
            lifetime.StopApplication();
        });
        return ValueTask.CompletedTask;
    }

    public async ValueTask<BatchResult> SetFlagsAsync(BlockKey[] keys, bool? pin, TimeSpan? ttl)
    {
        var changed = await Store.SetFlagsAsync(keys, pin, jobs.ExpiresTicks(ttl));
        return new BatchResult(changed, 0, 0, null);
    }

    public async ValueTask<WriteOutcome> SealAsync(WriteSeal seal)
    {
        if (BadPath(seal.Path) is { } refused)
        {
            return refused;
        }

        return Misplaced
            ? new WriteOutcome(FsStatus.IoError, $"write worker {this.GetPrimaryKeyString()} is gone (answered by {silo.Name}): the blocks are lost, write the file again")
            : await persist.SealAsync(seal, CancellationToken.None);
    }

    public Task CommittedAsync(string writeTag, string path)
    {
        // One-way: nobody waits for an answer, so a bad path is refused by the exception Orleans logs.
        if (BadPath(path) is { } refused)
        {
            throw new ArgumentException(refused.Message, nameof(path));
        }

        persist.Committed(writeTag, path);
        return Task.CompletedTask;
    }

    public ValueTask<WriteOutcome> RetargetAsync(string writeTag, string path) =>
        ValueTask.FromResult(BadPath(path) ?? persist.Retarget(writeTag, path));

    /// <summary>The refusal of a file path given by a caller that could leave its mount (or names no file); null when it is clean.</summary>
    private static WriteOutcome? BadPath(string path)
    {
        if (path.Length == 0)
        {
            return new WriteOutcome(FsStatus.InvalidArgument, "a written file's path is empty (the mount's root is not a file)");
        }

        return FsPath.CheckRelative(path, out var error) == FsStatus.Ok ? null : new WriteOutcome(FsStatus.InvalidArgument, error);
    }

    public async ValueTask<WriteOutcome> DropWrittenAsync(long mountId, string writeTag, BlockKey[] keys, bool deleteObject) =>
        await persist.DropAsync(writeTag, keys, deleteObject);

    public ValueTask<PersistStatus> GetPersistStatusAsync() => ValueTask.FromResult(persist.Status());

    public ValueTask<BatchResult> CopyBlockAsync(BlockKey key, int length, string fromEndpoint, ulong[] checksums) =>
        ValueTask.FromResult(jobs.StartCopy(key, length, fromEndpoint, checksums)
            ? new BatchResult(0, 0, 0, null)
            : new BatchResult(1, 0, 0, null));

    public Task RecordAccessAsync(BlockKey[] keys)
    {
        Store.RecordAccess(keys);
        return Task.CompletedTask;
    }
}
