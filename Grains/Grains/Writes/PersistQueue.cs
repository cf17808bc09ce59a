using System.Collections.Concurrent;
using GrainFs.DataPlane;
using GrainFs.DataPlane.Blocks;
using GrainFs.Grains.Blocks;
using GrainFs.Grains.Namespace;
using GrainFs.Storage.Cache;
using GrainFs.Storage.Persist;
using GrainFs.Storage.UnderStorage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace GrainFs.Grains.Writes;

/// <summary>
/// A write worker's side of writes: seals written files (their blocks held and synced, a journal entry recorded),
/// uploads CACHE_THROUGH and THROUGH files before their close returns, and persists ASYNC_THROUGH files in the
/// background once committed: a few at a time, at the silo's persist rate, each retried with backoff until it lands
/// (its directory entry shows "failed" with the reason meanwhile). It resumes from the journal after a restart.
/// </summary>
public sealed partial class PersistQueue : BackgroundService
{
    private static readonly TimeSpan CommitCheckInterval = TimeSpan.FromSeconds(15);
    private readonly TierStore _store;
    private readonly BlockFiller _filler;
    private readonly UnderStorageRegistry _registry;
    private readonly IGrainFactory _grains;
    private readonly PersistOptions _options;
    private readonly GrainFsClock _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, Job> _jobs = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _wake = new(0);
    private readonly RateLimiter _rate;
    private readonly HashSet<Task> _running = [];
    private long _persistedBytes;

    /// <summary>Creates the queue of this silo's write tier.</summary>
    public PersistQueue(TierStore store, BlockFiller filler, UnderStorageRegistry registry, IGrainFactory grains, IOptions<PersistOptions> options, GrainFsClock time, ILogger<PersistQueue> logger)
    {
        _store = store;
        _filler = filler;
        _registry = registry;
        _grains = grains;
        _options = options.Value;
        _time = time;
        _logger = logger;
        _rate = new RateLimiter(_options.RateBytesPerSecond, time);
        Journal = new WriteJournal(Path.Combine(store.WriteTier.Root, "journal"));
        GrainFsMetrics.Meter.CreateObservableGauge("grainfs.persist.backlog_files", () => Backlog().Count(), "{file}", "Written files not yet persisted");
        GrainFsMetrics.Meter.CreateObservableGauge("grainfs.persist.backlog_bytes", () => Backlog().Sum(j => j.Record.Size), "By", "Bytes of written files not yet persisted");
    }

    /// <summary>The journal.</summary>
    public WriteJournal Journal { get; }

    private sealed class Job(PersistJob record)
    {
        public PersistJob Record { get; set; } = record;

        public bool Uploading { get; set; }

        public bool Cancelled { get; set; }

        public bool DeleteObject { get; set; }

        public int Attempts { get; set; }

        public DateTime NextAttemptUtc { get; set; }

        public DateTime NextCommitCheckUtc { get; set; }

        public string? LastError { get; set; }
    }

    /// <summary>Jobs that will be uploaded (MUST_CACHE files are journaled only so their blocks are known, and standby copies wait).</summary>
    private IEnumerable<Job> Backlog() => _jobs.Values.Where(j => j.Record.WriteType != WriteType.MustCache && j.Record.Primary is null);

    /// <summary>Files waiting, their bytes, how many are failing, the rate.</summary>
    public PersistStatus Status()
    {
        var jobs = Backlog().ToList();
        return new PersistStatus(jobs.Count, jobs.Sum(j => j.Record.Size), jobs.Count(j => j.LastError is not null), _rate.BytesPerSecond, Interlocked.Read(ref _persistedBytes));
    }

    private static BlockKey[] KeysOf(MountInfo mount, string writeTag, long size, int blockSize) => WriteTag.Keys(mount.BlockNamespace, writeTag, size, blockSize);

    /// <summary>Seals a written file (see <see cref="IWorkerGrain.SealAsync"/>).</summary>
    public async Task<WriteOutcome> SealAsync(WriteSeal seal, CancellationToken cancellationToken)
    {
        var mount = await _filler.ResolveAsync(seal.MountId).ConfigureAwait(false);
        if (mount is null)
        {
            return new WriteOutcome(FsStatus.Stale, $"mount {seal.MountId} no longer exists");
        }

        var display = FsPath.Combine(mount.Path, seal.Path);
        var keys = KeysOf(mount, seal.WriteTag, seal.Size, seal.BlockSize);
        var digests = seal.Digest is null ? null : new ulong[keys.Length];
        for (var i = 0; i < keys.Length; i++)
        {
            var expected = (int)Math.Min(seal.BlockSize, seal.Size - ((long)i * seal.BlockSize));
            if (!_store.TryPeek(keys[i], out var block) || block.Header.DataLength != expected)
            {
                return new WriteOutcome(FsStatus.IoError, $"{display}: block {i} of {keys.Length} is not held by this write worker ({(block is null ? "missing" : $"{block.Header.DataLength} bytes, expected {expected}")})");
            }

            if (digests is not null)
            {
                digests[i] = BlockFile.Digest(block.Header.Checksums);
            }
        }

        // The writer's digest of what it sent (XXH3 over each block's digest of its chunk checksums, in order), against the
        // checksums this worker recorded as the blocks arrived: a copy that differs (on the primary or the standby) is
        // refused before the close is acknowledged.
        if (digests is not null && BlockFile.Digest(digests) != seal.Digest)
        {
            return new WriteOutcome(FsStatus.IoError, $"{display}: the blocks held by this write worker do not match the checksums the writer sent; write the file again");
        }

        var record = new PersistJob(WriteTag.IdOf(seal.WriteTag), seal.MountId, seal.Path, seal.Size, seal.BlockSize, seal.WriteType, _time.GetUtcNow().UtcDateTime, Committed: false, seal.Primary);
        Journal.Save(record);
        if (seal.WriteType is WriteType.AsyncThrough or WriteType.MustCache || seal.Primary is not null)
        {
            // Sealed again (a flush, then more writes): the newer size replaces the older; an upload of the older one in flight is not taken.
            if (_jobs.TryGetValue(record.WriteTag, out var earlier))
            {
                earlier.Record = record;
                earlier.NextCommitCheckUtc = record.SealedUtc + CommitCheckInterval;
            }
            else
            {
                _jobs[record.WriteTag] = new Job(record) { NextCommitCheckUtc = record.SealedUtc + CommitCheckInterval };
            }

            return WriteOutcome.Ok;
        }

        // CACHE_THROUGH and THROUGH: in under-storage before the close returns.
        try
        {
            var etag = await UploadAsync(mount, record, keys, null, cancellationToken).ConfigureAwait(false);
            await FinishAsync(seal.Final ? record : record with { WriteType = WriteType.CacheThrough }, keys).ConfigureAwait(false);
            return new WriteOutcome(FsStatus.Ok, null, etag);
        }
        catch (UnderStorageException e)
        {
            Journal.Delete(record.WriteTag);
            GrainFsMetrics.PersistFailures.Add(1);
            return new WriteOutcome(Errors.ToStatus(e.Error) is var status && status == FsStatus.NotFound ? FsStatus.IoError : status, $"{display}: upload failed: {e.Message}");
        }
        catch (IOException e)
        {
            Journal.Delete(record.WriteTag);
            return new WriteOutcome(FsStatus.IoError, $"{display}: upload failed: {e.Message}");
        }
    }

    /// <summary>The sealed file is visible at <paramref name="path"/>: it may be uploaded.</summary>
    public void Committed(string writeTag, string path)
    {
        if (_jobs.TryGetValue(WriteTag.IdOf(writeTag), out var job) && !job.Cancelled)
        {
            job.Record = job.Record with { Committed = true, Path = path };
            Journal.Save(job.Record);
            _wake.Release();
        }
    }

    /// <summary>A pending file was renamed: upload it to <paramref name="path"/>.</summary>
    public WriteOutcome Retarget(string writeTag, string path)
    {
        if (!_jobs.TryGetValue(WriteTag.IdOf(writeTag), out var job) || job.Cancelled)
        {
            return new WriteOutcome(FsStatus.NotFound, $"{path}: the write worker has no upload of {writeTag} waiting (persisted a moment ago?); retry the rename");
        }

        job.Record = job.Record with { Path = path };
        Journal.Save(job.Record);
        return WriteOutcome.Ok;
    }

    /// <summary>A written file is gone or replaced: cancel its upload and free its blocks.</summary>
    public async Task<WriteOutcome> DropAsync(string writeTag, BlockKey[] keys, bool deleteObject)
    {
        var id = WriteTag.IdOf(writeTag);
        if (_jobs.TryGetValue(id, out var job))
        {
            job.Cancelled = true;
            job.DeleteObject = deleteObject;
            if (!job.Uploading && _jobs.TryRemove(id, out _))
            {
                Journal.Delete(id);
            }
        }

        await _store.FreeWrittenAsync(keys).ConfigureAwait(false);
        return WriteOutcome.Ok;
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        Recover();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await _wake.WaitAsync(TimeSpan.FromSeconds(1), stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            lock (_running)
            {
                _running.RemoveWhere(t => t.IsCompleted);
            }

            var now = _time.GetUtcNow().UtcDateTime;
            foreach (var job in _jobs.Values.Where(j => (!j.Record.Committed || j.Record.WriteType == WriteType.MustCache) && !j.Uploading && !j.Cancelled && j.NextCommitCheckUtc <= now).ToList())
            {
                job.NextCommitCheckUtc = now + CommitCheckInterval;
                Track(CheckCommitAsync(job, stoppingToken));
            }

            var uploading = new HashSet<string>(_jobs.Values.Where(j => j.Uploading).Select(j => j.Record.MountId + "/" + j.Record.Path), StringComparer.Ordinal);
            if (now >= _nextOrphanSweepUtc)
            {
                _nextOrphanSweepUtc = now + OrphanSweepInterval;
                Track(SweepOrphansAsync());
            }

            foreach (var job in _jobs.Values.Where(j => j.Record.Committed && j.Record.WriteType != WriteType.MustCache && !j.Uploading && !j.Cancelled && j.NextAttemptUtc <= now).OrderBy(j => j.Record.SealedUtc).ToList())
            {
                if (uploading.Count >= _options.Parallel)
                {
                    break;
                }

                // One upload per path at a time: an older version never lands after a newer one.
                if (uploading.Add(job.Record.MountId + "/" + job.Record.Path))
                {
                    job.Uploading = true;
                    Track(RunAsync(job, stoppingToken));
                }
            }
        }

        Task[] running;
        lock (_running)
        {
            running = [.. _running];
        }

        await Task.WhenAll(running).ConfigureAwait(false);
    }

    private static readonly TimeSpan OrphanSweepInterval = TimeSpan.FromMinutes(1);
    private DateTime _nextOrphanSweepUtc;

    /// <summary>
    /// Written blocks no journal entry covers (their writer died before its close sealed them) go once they are older than
    /// <see cref="PersistOptions.AbandonAfter"/>: otherwise, never evictable, they would hold write-tier space for good.
    /// </summary>
    private async Task SweepOrphansAsync()
    {
        var known = new HashSet<BlockKey>();
        foreach (var job in _jobs.Values.ToList())
        {
            if (await _filler.ResolveAsync(job.Record.MountId).ConfigureAwait(false) is { } mount)
            {
                known.UnionWith(KeysOf(mount, job.Record.WriteTag, job.Record.Size, job.Record.BlockSize));
            }
        }

        var before = (_time.GetUtcNow().UtcDateTime - _options.AbandonAfter).Ticks;
        var orphans = _store.Snapshot().Where(b => b.Header.Unpersisted && !b.Header.Pinned && b.Header.CreatedTicks < before && !known.Contains(b.Key)).Select(b => b.Key).ToList();
        if (orphans.Count > 0)
        {
            await _store.FreeWrittenAsync(orphans).ConfigureAwait(false);
            LogOrphans(_logger, orphans.Count, _options.AbandonAfter.TotalMinutes);
        }
    }

    private void Track(Task task)
    {
        lock (_running)
        {
            _running.Add(task);
        }
    }

    /// <summary>Loads the journal: committed files are queued; sealed ones are checked against their directory first.</summary>
    private void Recover()
    {
        var (jobs, unreadable) = Journal.LoadAll();
        foreach (var problem in unreadable)
        {
            LogUnreadable(_logger, problem);
        }

        foreach (var record in jobs)
        {
            _jobs[record.WriteTag] = new Job(record);
        }

        if (jobs.Count > 0)
        {
            LogRecovered(_logger, jobs.Count, ByteSize.Format(jobs.Sum(j => j.Size)), Journal.Root);
            _wake.Release();
        }
    }

    /// <summary>A sealed file whose commit was not heard of (a restart in between, or a writer that died): is it in its directory?</summary>
    private async Task CheckCommitAsync(Job job, CancellationToken cancellationToken)
    {
        var record = job.Record;
        try
        {
            var mount = await _filler.ResolveAsync(record.MountId).ConfigureAwait(false);
            if (mount is null)
            {
                await AbandonAsync(job, null, "its mount was removed").ConfigureAwait(false);
                return;
            }

            var (grain, name) = await DirectoryRoute.ForAsync(_grains, record.MountId, record.Path).ConfigureAwait(false);
            var found = await grain.LookupAsync(name).ConfigureAwait(false);
            if (found.Status == FsStatus.Ok && found.Entry is { } entry && WriteTag.IdOf(entry.ETag) == record.WriteTag)
            {
                if (entry.Persistence == Persistence.Persisted)
                {
                    // Uploaded before a restart (CACHE_THROUGH, THROUGH, or a persist whose journal removal was lost).
                    await FinishAsync(record, KeysOf(mount, record.WriteTag, record.Size, record.BlockSize)).ConfigureAwait(false);
                    return;
                }

                if (record.Primary is { } primary)
                {
                    // A standby copy: the primary persists it, unless it has left the cluster.
                    var silos = await _grains.GetGrain<IClusterGrain>(0).GetSilosAsync().ConfigureAwait(false);
                    if (silos.Any(s => s.Name == primary))
                    {
                        return;
                    }

                    LogTakeOver(_logger, FsPath.Combine(mount.Path, record.Path), primary);
                }

                if (record.WriteType == WriteType.MustCache)
                {
                    // Never uploaded: journaled so its blocks are known; looked at again now and then in case it was removed unheard.
                    job.NextCommitCheckUtc = _time.GetUtcNow().UtcDateTime + TimeSpan.FromHours(1);
                    if (!record.Committed)
                    {
                        job.Record = record with { Committed = true };
                        Journal.Save(job.Record);
                    }

                    return;
                }

                job.Record = record with { Committed = true, Primary = null };
                Journal.Save(job.Record);
                _wake.Release();
                return;
            }

            if (found.Status is FsStatus.Ok or FsStatus.NotFound && _time.GetUtcNow().UtcDateTime - record.SealedUtc > _options.AbandonAfter)
            {
                await AbandonAsync(job, mount, "never committed (its writer did not finish the close)").ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is OrleansException or TimeoutException or SiloUnavailableException)
        {
            LogCommitCheckFailed(_logger, record.Path, e.Message);
        }
    }

    private async Task AbandonAsync(Job job, MountInfo? mount, string reason)
    {
        _jobs.TryRemove(job.Record.WriteTag, out _);
        Journal.Delete(job.Record.WriteTag);
        if (mount is not null)
        {
            await _store.FreeWrittenAsync(KeysOf(mount, job.Record.WriteTag, job.Record.Size, job.Record.BlockSize)).ConfigureAwait(false);
        }

        LogAbandoned(_logger, job.Record.Path, reason);
    }

    private async Task RunAsync(Job job, CancellationToken cancellationToken)
    {
        var record = job.Record;
        try
        {
            var mount = await _filler.ResolveAsync(record.MountId).ConfigureAwait(false);
            if (mount is null)
            {
                await AbandonAsync(job, null, "its mount was removed").ConfigureAwait(false);
                return;
            }

            var keys = KeysOf(mount, record.WriteTag, record.Size, record.BlockSize);
            var etag = await UploadAsync(mount, record, keys, _rate, cancellationToken).ConfigureAwait(false);
            var storage = _registry.Get(mount);
            if (!job.Cancelled && (job.Record.Size != record.Size || !job.Record.Committed))
            {
                // Sealed again with more bytes while this upload ran: the newer version goes up once committed.
                return;
            }

            if (job.Cancelled)
            {
                if (job.DeleteObject)
                {
                    await storage.DeleteAsync(record.Path, cancellationToken).ConfigureAwait(false);
                }

                _jobs.TryRemove(record.WriteTag, out _);
                Journal.Delete(record.WriteTag);
                return;
            }

            // The object is at record.Path; a rename while it uploaded (or while it was being marked) moves it after the file.
            var at = record.Path;
            while (true)
            {
                var target = job.Record.Path;
                if (target != at)
                {
                    etag = (await storage.MoveFileAsync(at, target, cancellationToken).ConfigureAwait(false)).ETag;
                    at = target;
                }

                var (grain, name) = await DirectoryRoute.ForAsync(_grains, record.MountId, target).ConfigureAwait(false);
                var marked = await grain.PersistedAsync(name, record.WriteTag, record.Size, etag, null).ConfigureAwait(false);
                if (marked.Status == FsStatus.Ok || (marked.Status == FsStatus.NotFound && job.Record.Path == target))
                {
                    // Marked, or the version is gone (removed or replaced: its drop cancels the job, handled below).
                    break;
                }

                if (marked.Status != FsStatus.NotFound)
                {
                    throw new IOException($"the directory did not take the persisted state: {marked.Message}");
                }
            }

            if (job.Cancelled)
            {
                if (job.DeleteObject)
                {
                    await storage.DeleteAsync(at, cancellationToken).ConfigureAwait(false);
                }

                _jobs.TryRemove(record.WriteTag, out _);
                Journal.Delete(record.WriteTag);
                return;
            }

            var current = at;
            await FinishAsync(job.Record, keys).ConfigureAwait(false);
            GrainFsMetrics.PersistedFiles.Add(1);
            LogPersisted(_logger, FsPath.Combine(mount.Path, current), record.Size, job.Attempts + 1);
        }
        catch (Exception e) when (e is UnderStorageException or IOException or OrleansException or TimeoutException or SiloUnavailableException)
        {
            job.Attempts++;
            job.LastError = e.Message;
            var delay = TimeSpan.FromTicks(Math.Min(_options.MaxRetryDelay.Ticks, _options.RetryDelay.Ticks << Math.Min(20, job.Attempts - 1)));
            job.NextAttemptUtc = _time.GetUtcNow().UtcDateTime + delay;
            GrainFsMetrics.PersistFailures.Add(1);
            LogPersistFailed(_logger, record.Path, job.Attempts, delay.TotalSeconds, e.Message);
            try
            {
                var (grain, name) = await DirectoryRoute.ForAsync(_grains, record.MountId, job.Record.Path).ConfigureAwait(false);
                await grain.PersistedAsync(name, record.WriteTag, record.Size, null, e.Message).ConfigureAwait(false);
            }
            catch (Exception report) when (report is OrleansException or TimeoutException or SiloUnavailableException)
            {
                LogCommitCheckFailed(_logger, record.Path, report.Message);
            }
        }
        finally
        {
            job.Uploading = false;

            // A slot is free: the next waiting file starts now, not at the loop's next one-second tick.
            _wake.Release();
        }
    }

    private async Task<string> UploadAsync(MountInfo mount, PersistJob record, BlockKey[] keys, RateLimiter? rate, CancellationToken cancellationToken)
    {
        var storage = _registry.Get(mount);
        var display = FsPath.Combine(mount.Path, record.Path);
        await using var content = new BlockChainStream(_store, keys, record.Size, record.BlockSize, rate, display);
        var put = await storage.PutAsync(record.Path, content, record.Size, cancellationToken).ConfigureAwait(false);
        Interlocked.Add(ref _persistedBytes, record.Size);
        GrainFsMetrics.PersistedBytes.Add(record.Size);
        return put.ETag;
    }

    /// <summary>Persisted: the blocks become ordinary cache blocks (THROUGH: they go), the journal entry goes.</summary>
    private async Task FinishAsync(PersistJob record, BlockKey[] keys)
    {
        if (record.WriteType == WriteType.Through)
        {
            await _store.FreeWrittenAsync(keys).ConfigureAwait(false);
        }
        else
        {
            await _store.SetFlagsAsync(keys, null, null, unpersisted: false).ConfigureAwait(false);
        }

        _jobs.TryRemove(record.WriteTag, out _);
        Journal.Delete(record.WriteTag);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Freed {Count} written blocks no sealed file holds (their writers stopped before closing, over {Minutes:0} min ago)")]
    private static partial void LogOrphans(ILogger logger, int count, double minutes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Path}: its first write worker {Primary} left the cluster before persisting it; this worker's copy is persisted instead")]
    private static partial void LogTakeOver(ILogger logger, string path, string primary);

    [LoggerMessage(Level = LogLevel.Information, Message = "Persisted {Path} ({Size} bytes) in {Attempts} attempt(s)")]
    private static partial void LogPersisted(ILogger logger, string path, long size, int attempts);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Persist of {Path} failed (attempt {Attempts}), retried in {Delay:0.#} s: {Reason}")]
    private static partial void LogPersistFailed(ILogger logger, string path, int attempts, double delay, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Resuming {Count} written files ({Bytes}) not yet persisted, from {Journal}")]
    private static partial void LogRecovered(ILogger logger, int count, string bytes, string journal);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not reach the directory of {Path}: {Reason}")]
    private static partial void LogCommitCheckFailed(ILogger logger, string path, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Dropped written file {Path}: {Reason}")]
    private static partial void LogAbandoned(ILogger logger, string path, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Unreadable persist journal entry {Problem}")]
    private static partial void LogUnreadable(ILogger logger, string problem);
}

/// <summary>Finds the directory grain (the right shard) that holds a child of a mount.</summary>
internal static class DirectoryRoute
{
    public static async ValueTask<(IDirectoryGrain Grain, string Name)> ForAsync(IGrainFactory grains, long mountId, string relativePath)
    {
        var (parent, name) = FsPath.SplitRelative(relativePath);
        var head = grains.GetGrain<IDirectoryGrain>(new DirectoryKey(mountId, 0, parent).ToString());
        var probe = await head.LookupAsync(name).ConfigureAwait(false);
        return probe.Status == FsStatus.Stale && probe.ShardCount > 1
            ? (grains.GetGrain<IDirectoryGrain>(new DirectoryKey(mountId, DirectoryKey.ShardOf(name, probe.ShardCount), parent).ToString()), name)
            : (head, name);
    }
}
