using GrainFs.DataPlane.Blocks;

namespace GrainFs.Client;

/// <summary>Progress of a load (pre-warm).</summary>
/// <param name="Files">Files whose blocks are all done.</param>
/// <param name="TotalFiles">Files to load.</param>
/// <param name="Bytes">Bytes loaded or found already cached.</param>
/// <param name="TotalBytes">Bytes to load.</param>
/// <param name="Failures">Blocks that failed.</param>
public readonly record struct LoadProgress(long Files, long TotalFiles, long Bytes, long TotalBytes, long Failures);

/// <summary>The outcome of a load, free, pin, unpin or TTL over a path.</summary>
/// <param name="Files">Files handled.</param>
/// <param name="Blocks">Blocks handled.</param>
/// <param name="Bytes">Bytes (loaded, or released by a free).</param>
/// <param name="Failures">Blocks that failed.</param>
/// <param name="FirstError">The first failure, naming the path.</param>
/// <param name="Elapsed">Wall time.</param>
public sealed record CacheOperationResult(long Files, long Blocks, long Bytes, long Failures, string? FirstError, TimeSpan Elapsed);

/// <summary>Where a tree's blocks are cached, per host: what a scheduler needs to put a training job's pods near its data.</summary>
/// <param name="Path">The file or tree.</param>
/// <param name="Files">Its files.</param>
/// <param name="Bytes">Their bytes (the tree's size).</param>
/// <param name="Hosts">Per host that caches any of it, most bytes first.</param>
public sealed record TreeLocality(string Path, long Files, long Bytes, IReadOnlyList<HostLocality> Hosts);

/// <summary>One host's part of a tree's cached bytes.</summary>
/// <param name="Host">The host (as its silos are started with <c>--host</c>; the node name on Kubernetes).</param>
/// <param name="Silos">Its silos.</param>
/// <param name="Blocks">Blocks of the tree held there (home copies and replicas).</param>
/// <param name="Bytes">Their data bytes.</param>
/// <param name="Share">Bytes over the tree's size (0 to 1; a block cached on two hosts counts for both).</param>
public sealed record HostLocality(string Host, IReadOnlyList<string> Silos, long Blocks, long Bytes, double Share);

/// <summary>The outcome of a drain.</summary>
/// <param name="Silo">The drained silo.</param>
/// <param name="Blocks">Blocks now held by their new homes (copied, or held there already).</param>
/// <param name="Bytes">Their data bytes.</param>
/// <param name="Pinned">Of them, pinned blocks (moved first, pinned at their new homes).</param>
/// <param name="Failures">Blocks that could not be moved (they are filled again from under-storage when read).</param>
/// <param name="FirstError">The first failure.</param>
/// <param name="PersistedFiles">Written files the silo still had to upload when the drain began (uploaded before its blocks moved).</param>
/// <param name="Stopped">The silo was stopped and has left the cluster.</param>
/// <param name="Elapsed">Wall time.</param>
public sealed record DrainResult(string Silo, long Blocks, long Bytes, long Pinned, long Failures, string? FirstError, int PersistedFiles, bool Stopped, TimeSpan Elapsed);

/// <summary>
/// Cache administration: load (pre-warm), free, pin, unpin, TTL and the workers' reports. Blocks are grouped by home
/// worker and handled there in batches; bytes go from under-storage to the workers, never through this client.
/// </summary>
public sealed class CacheAdmin
{
    /// <summary>Most blocks per batch sent to one worker.</summary>
    public const int BatchBlocks = 64;

    /// <summary>Most bytes per batch sent to one worker (a batch runs in the background there; this bounds its buffers and retries).</summary>
    public const long BatchBytes = 64L << 20;

    /// <summary>How long one wait for a load on a worker lasts before it reports progress (well within a grain call's timeout).</summary>
    private const int LoadWaitMilliseconds = 5_000;

    private readonly GrainCalls _calls;
    private readonly NamespaceClient _namespace;
    private readonly ClusterView _cluster;
    private readonly TimeProvider _time;

    internal CacheAdmin(GrainCalls calls, NamespaceClient ns, ClusterView cluster, TimeProvider time)
    {
        _calls = calls;
        _namespace = ns;
        _cluster = cluster;
        _time = time;
    }

    /// <summary>
    /// Pre-warms a file or a whole tree: its blocks are grouped by home worker and filled there in parallel batches
    /// (bytes go from under-storage to the workers, never through this client). <paramref name="pin"/> and
    /// <paramref name="ttl"/> are applied to every block.
    /// </summary>
    public async ValueTask<FsResult<CacheOperationResult>> LoadAsync(string path, IProgress<LoadProgress>? progress = null, bool? pin = null, TimeSpan? ttl = null, int parallelBatches = 8, CancellationToken cancellationToken = default)
    {
        if (ttl is { } given && (given <= TimeSpan.Zero || given > MaxTtl))
        {
            return FsResult<CacheOperationResult>.Fail(FsStatus.InvalidArgument, $"{path}: a TTL of {given} is not above zero and at most {MaxTtl.TotalDays:0} days");
        }

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var files = await _namespace.FilesUnderAsync(path, cancellationToken).ConfigureAwait(false);
        if (!files.IsOk)
        {
            return FsResult<CacheOperationResult>.Fail(files.Status, files.Message);
        }

        var list = files.Value!;
        var totalBytes = list.Sum(f => f.Entry.Size);
        var view = await _cluster.GetAsync(cancellationToken).ConfigureAwait(false);

        var remaining = new int[list.Count];
        var batches = new List<(string Silo, List<(int File, BlockSource Source)> Blocks)>();
        var open = new Dictionary<string, List<(int File, BlockSource Source)>>(StringComparer.Ordinal);
        var openBytes = new Dictionary<string, long>(StringComparer.Ordinal);
        for (var f = 0; f < list.Count; f++)
        {
            var version = list[f];
            remaining[f] = version.BlockCount;
            for (var b = 0; b < version.BlockCount; b++)
            {
                var home = _cluster.Home(view, version.KeyOf(b))?.Name ?? string.Empty;
                if (!open.TryGetValue(home, out var batch))
                {
                    open[home] = batch = [];
                }

                var source = version.SourceOf(b);
                batch.Add((f, source));
                openBytes[home] = openBytes.GetValueOrDefault(home) + source.Length;
                if (batch.Count >= BatchBlocks || openBytes[home] >= BatchBytes)
                {
                    batches.Add((home, batch));
                    open[home] = [];
                    openBytes[home] = 0;
                }
            }
        }

        batches.AddRange(open.Where(kv => kv.Value.Count > 0).Select(kv => (kv.Key, kv.Value)));
        long doneFiles = list.Count(v => v.BlockCount == 0), doneBytes = 0, blocks = 0, failures = 0;
        string? firstError = null;
        var gate = new object();
        progress?.Report(new LoadProgress(doneFiles, list.Count, 0, totalBytes, 0));
        await Parallel.ForEachAsync(batches, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, parallelBatches), CancellationToken = cancellationToken }, async (batch, ct) =>
        {
            var sources = batch.Blocks.ConvertAll(b => b.Source).ToArray();
            var result = await LoadBatchAsync(_calls.Grains.GetGrain<IWorkerGrain>(batch.Silo), sources, pin, ttl, path).ConfigureAwait(false);
            lock (gate)
            {
                if (!result.IsOk)
                {
                    failures += sources.Length;
                    firstError ??= result.Message;
                }
                else
                {
                    blocks += result.Value!.Blocks;
                    failures += result.Value.Failures;
                    firstError ??= result.Value.FirstError;
                }

                foreach (var (file, source) in batch.Blocks)
                {
                    doneBytes += source.Length;
                    if (--remaining[file] == 0)
                    {
                        doneFiles++;
                    }
                }

                progress?.Report(new LoadProgress(doneFiles, list.Count, doneBytes, totalBytes, failures));
            }
        }).ConfigureAwait(false);

        var outcome = new CacheOperationResult(list.Count, blocks, totalBytes, failures, firstError, clock.Elapsed);
        return failures == 0
            ? FsResult<CacheOperationResult>.Ok(outcome)
            : new FsResult<CacheOperationResult>(FsStatus.IoError, outcome, $"{path}: {failures} block(s) failed to load: {firstError}");
    }

    /// <summary>Runs one batch on its worker: started there in the background, then followed until it is done.</summary>
    private async ValueTask<FsResult<LoadStatus>> LoadBatchAsync(IWorkerGrain worker, BlockSource[] sources, bool? pin, TimeSpan? ttl, string path)
    {
        var started = await _calls.CallAsync(() => worker.StartLoadAsync(sources, pin, ttl), path).ConfigureAwait(false);
        if (!started.IsOk)
        {
            return FsResult<LoadStatus>.Fail(started.Status, started.Message);
        }

        return await FollowAsync(worker, started.Value, path, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Removes a file's or a tree's blocks from every worker; returns once they are gone.</summary>
    public ValueTask<FsResult<CacheOperationResult>> FreeAsync(string path, CancellationToken cancellationToken = default) =>
        BroadcastAsync(path, (worker, keys) => worker.FreeAsync(keys), cancellationToken);

    /// <summary>Loads a file or tree and pins its blocks: they are never evicted until unpinned.</summary>
    public ValueTask<FsResult<CacheOperationResult>> PinAsync(string path, IProgress<LoadProgress>? progress = null, CancellationToken cancellationToken = default) =>
        LoadAsync(path, progress, pin: true, cancellationToken: cancellationToken);

    /// <summary>Unpins the blocks of a file or tree on every worker.</summary>
    public ValueTask<FsResult<CacheOperationResult>> UnpinAsync(string path, CancellationToken cancellationToken = default) =>
        BroadcastAsync(path, (worker, keys) => worker.SetFlagsAsync(keys, false, null), cancellationToken);

    /// <summary>The longest TTL: 100 years.</summary>
    public static readonly TimeSpan MaxTtl = TimeSpan.FromDays(36_500);

    /// <summary>Gives the cached blocks of a file or tree a time to live (above zero, at most <see cref="MaxTtl"/>): they are freed when it ends.</summary>
    public ValueTask<FsResult<CacheOperationResult>> SetTtlAsync(string path, TimeSpan ttl, CancellationToken cancellationToken = default)
    {
        if (ttl <= TimeSpan.Zero || ttl > MaxTtl)
        {
            return ValueTask.FromResult(FsResult<CacheOperationResult>.Fail(FsStatus.InvalidArgument, $"{path}: a TTL of {ttl} is not above zero and at most {MaxTtl.TotalDays:0} days"));
        }

        // The TTL travels as a duration: each worker starts it on its own clock, the one its expiry is compared with.
        return BroadcastAsync(path, (worker, keys) => worker.SetFlagsAsync(keys, null, ttl), cancellationToken);
    }

    private async ValueTask<FsResult<CacheOperationResult>> BroadcastAsync(string path, Func<IWorkerGrain, BlockKey[], ValueTask<BatchResult>> action, CancellationToken cancellationToken)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var files = await _namespace.FilesUnderAsync(path, cancellationToken).ConfigureAwait(false);
        if (!files.IsOk)
        {
            return FsResult<CacheOperationResult>.Fail(files.Status, files.Message);
        }

        var keys = files.Value!.SelectMany(f => Enumerable.Range(0, f.BlockCount).Select(f.KeyOf)).ToArray();
        var view = await _cluster.RefreshAsync(long.MaxValue, cancellationToken).ConfigureAwait(false);
        long handled = 0, bytes = 0;
        foreach (var silo in view.Silos)
        {
            foreach (var chunk in keys.Chunk(4096))
            {
                var result = await _calls.CallAsync(() => action(_calls.Grains.GetGrain<IWorkerGrain>(silo.Name), chunk), path).ConfigureAwait(false);
                if (!result.IsOk)
                {
                    return FsResult<CacheOperationResult>.Fail(result.Status, result.Message);
                }

                handled += result.Value!.Blocks;
                bytes += result.Value.Bytes;
            }
        }

        return FsResult<CacheOperationResult>.Ok(new CacheOperationResult(files.Value!.Count, handled, bytes, 0, null, clock.Elapsed));
    }

    /// <summary>
    /// Where the blocks of a file or tree are cached, per host: every worker is asked which of the tree's blocks it holds
    /// in any tier (home copies and replicas), in batches.
    /// </summary>
    public async ValueTask<FsResult<TreeLocality>> LocalityAsync(string path, CancellationToken cancellationToken = default)
    {
        var files = await _namespace.FilesUnderAsync(path, cancellationToken).ConfigureAwait(false);
        if (!files.IsOk)
        {
            return FsResult<TreeLocality>.Fail(files.Status, files.Message);
        }

        // Asked per mount: a reader may ask about the blocks of the mounts it may read.
        var keys = files.Value!.GroupBy(f => f.Mount.Id).Select(m => (Mount: m.Key, Keys: m.SelectMany(f => Enumerable.Range(0, f.BlockCount).Select(f.KeyOf)).ToArray())).ToList();
        var treeBytes = files.Value!.Sum(f => f.Entry.Size);
        var view = await _cluster.RefreshAsync(long.MaxValue, cancellationToken).ConfigureAwait(false);
        var perHost = new Dictionary<string, (List<string> Silos, long Blocks, long Bytes)>(StringComparer.Ordinal);
        foreach (var silo in view.Silos)
        {
            long blocks = 0, bytes = 0;
            foreach (var (mount, chunk) in keys.SelectMany(m => m.Keys.Chunk(4096).Select(c => (m.Mount, c))))
            {
                var result = await _calls.CallAsync(() => _calls.Grains.GetGrain<IWorkerGrain>(silo.Name).HeldAsync(mount, chunk), path).ConfigureAwait(false);
                if (!result.IsOk)
                {
                    return FsResult<TreeLocality>.Fail(result.Status, result.Message);
                }

                blocks += result.Value!.Blocks;
                bytes += result.Value.Bytes;
            }

            var host = perHost.TryGetValue(silo.Host, out var known) ? known : ([], 0, 0);
            host.Silos.Add(silo.Name);
            perHost[silo.Host] = (host.Silos, host.Blocks + blocks, host.Bytes + bytes);
        }

        var hosts = perHost
            .Where(h => h.Value.Blocks > 0)
            .Select(h => new HostLocality(h.Key, h.Value.Silos, h.Value.Blocks, h.Value.Bytes, treeBytes == 0 ? 0 : Math.Min(1, (double)h.Value.Bytes / treeBytes)))
            .OrderByDescending(h => h.Bytes)
            .ThenBy(h => h.Host, StringComparer.Ordinal)
            .ToList();
        return FsResult<TreeLocality>.Ok(new TreeLocality(path, files.Value!.Count, treeBytes, hosts));
    }

    /// <summary>How long a drain waits for the silo's written files to be uploaded.</summary>
    public static readonly TimeSpan DrainPersistTimeout = TimeSpan.FromMinutes(30);

    /// <summary>
    /// Drains silo <paramref name="silo"/> before it leaves: every silo is told it is draining (writers give it no new
    /// file), the written files it holds are uploaded, then its blocks are copied to the homes they will have once it
    /// is gone (rendezvous over the other silos), pinned blocks first and pinned there, TTLs kept; a second pass takes
    /// the blocks filled meanwhile. Readers go on reading from it meanwhile. With <paramref name="stop"/> the silo is then
    /// stopped (it leaves the cluster as on SIGTERM) and the drain returns once it has left.
    /// </summary>
    public async ValueTask<FsResult<DrainResult>> DrainAsync(string silo, bool stop, IProgress<LoadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var view = await _cluster.RefreshAsync(long.MaxValue, cancellationToken).ConfigureAwait(false);
        if (!view.Silos.Any(s => s.Name == silo))
        {
            return FsResult<DrainResult>.Fail(FsStatus.NotFound, $"drain: no active silo is named '{silo}' (grainfs worker list shows them)");
        }

        var others = view.Silos.Where(s => s.Name != silo).ToArray();
        if (others.Length == 0)
        {
            return FsResult<DrainResult>.Fail(FsStatus.InvalidArgument, $"drain: '{silo}' is the only silo; its blocks have nowhere to go");
        }

        var marked = await MarkDrainingAsync(view.Silos, silo, true).ConfigureAwait(false);
        if (!marked.IsOk)
        {
            return FsResult<DrainResult>.Fail(marked.Status, marked.Message);
        }

        var worker = _calls.Grains.GetGrain<IWorkerGrain>(silo);

        // Unpersisted first: wait until every written file it holds is uploaded, and no writer still has a view from
        // before the mark (one refresh period).
        var markedAt = _time.GetUtcNow();
        var firstBacklog = -1;
        while (true)
        {
            var persist = await _calls.CallAsync(() => worker.GetPersistStatusAsync(), $"persist status of {silo}").ConfigureAwait(false);
            if (!persist.IsOk)
            {
                return FsResult<DrainResult>.Fail(persist.Status, persist.Message);
            }

            firstBacklog = firstBacklog < 0 ? persist.Value!.Files : firstBacklog;
            if (persist.Value!.Files == 0 && _time.GetUtcNow() - markedAt > ClusterView.MaxAge)
            {
                break;
            }

            if (_time.GetUtcNow() - markedAt > DrainPersistTimeout)
            {
                return FsResult<DrainResult>.Fail(FsStatus.IoError, $"drain: {silo} still has {persist.Value.Files} written file(s) ({persist.Value.Bytes} bytes) to upload after {DrainPersistTimeout.TotalMinutes:0} minutes ({persist.Value.Failing} failing): it stays marked draining; see its log");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), _time, cancellationToken).ConfigureAwait(false);
        }

        // The homes the blocks will have once the silo is gone.
        var homes = BlockHomes.Candidates(others, s => s.Roles);
        var names = homes.ConvertAll(h => h.Name);
        long moved = 0, bytes = 0, pinnedMoved = 0, failures = 0;
        string? firstError = null;
        var report = await _calls.CallAsync(() => worker.GetReportAsync(), $"report of {silo}").ConfigureAwait(false);
        var totalBlocks = report.IsOk ? report.Value!.Tiers.Sum(t => (long)t.Blocks) : 0;
        var totalBytes = report.IsOk ? report.Value!.Tiers.Sum(t => t.Used) : 0;
        for (var pass = 0; pass < 2; pass++)
        {
            foreach (var pinned in new[] { true, false })
            {
                string? after = null;
                while (true)
                {
                    var page = await _calls.CallAsync(() => worker.ListBlocksAsync(pinned, after, 1024), $"blocks of {silo}").ConfigureAwait(false);
                    if (!page.IsOk)
                    {
                        return FsResult<DrainResult>.Fail(page.Status, page.Message);
                    }

                    var blocks = page.Value!;
                    if (blocks.Length == 0)
                    {
                        break;
                    }

                    after = blocks[^1].Key.ToString();
                    foreach (var group in blocks.GroupBy(b => names[Rendezvous.Pick(b.Key, names)]))
                    {
                        var batch = group.ToArray();
                        var target = _calls.Grains.GetGrain<IWorkerGrain>(group.Key);
                        var started = await _calls.CallAsync(() => target.StartAdoptAsync(batch), $"drain of {silo} into {group.Key}").ConfigureAwait(false);
                        var status = started.IsOk ? await FollowAsync(target, started.Value, $"drain of {silo} into {group.Key}", cancellationToken).ConfigureAwait(false) : FsResult<LoadStatus>.Fail(started.Status, started.Message);
                        if (!status.IsOk)
                        {
                            failures += batch.Length;
                            firstError ??= status.Message;
                            continue;
                        }

                        if (pass == 0)
                        {
                            moved += status.Value!.Blocks;
                            bytes += batch.Sum(b => (long)b.Length);
                            pinnedMoved += pinned ? status.Value.Blocks : 0;
                        }

                        failures += status.Value!.Failures;
                        firstError ??= status.Value.FirstError;
                    }

                    progress?.Report(new LoadProgress(moved, Math.Max(totalBlocks, moved), bytes, Math.Max(totalBytes, bytes), failures));
                }
            }
        }

        var stopped = false;
        if (stop)
        {
            var asked = await _calls.CallAsync(async () =>
            {
                await worker.StopSiloAsync().ConfigureAwait(false);
                return true;
            }, $"stop of {silo}").ConfigureAwait(false);
            if (!asked.IsOk)
            {
                return FsResult<DrainResult>.Fail(asked.Status, asked.Message);
            }

            var waited = System.Diagnostics.Stopwatch.StartNew();
            while (waited.Elapsed < TimeSpan.FromSeconds(120))
            {
                var members = await GetMembersAsync(cancellationToken).ConfigureAwait(false);
                if (members.IsOk && !members.Value!.Any(m => m.Name == silo && m.State is "active" or "draining" or "shutting down" or "stopping"))
                {
                    stopped = true;
                    break;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(500), _time, cancellationToken).ConfigureAwait(false);
            }

            if (!stopped)
            {
                return FsResult<DrainResult>.Fail(FsStatus.IoError, $"drain: {silo} was asked to stop and has not left the cluster after 120 s");
            }

            // Told so that a silo started again under this name takes files again.
            await MarkDrainingAsync(others, silo, false).ConfigureAwait(false);
        }

        var result = new DrainResult(silo, moved, bytes, pinnedMoved, failures, firstError, firstBacklog, stopped, clock.Elapsed);
        return failures == 0
            ? FsResult<DrainResult>.Ok(result)
            : new FsResult<DrainResult>(FsStatus.IoError, result, $"drain of {silo}: {failures} block(s) could not be moved (read again from under-storage when asked): {firstError}");
    }

    /// <summary>Tells every silo of <paramref name="silos"/> that <paramref name="silo"/> is draining, or no longer.</summary>
    public async ValueTask<FsResult<bool>> MarkDrainingAsync(IEnumerable<SiloInfo> silos, string silo, bool draining)
    {
        foreach (var member in silos)
        {
            var told = await _calls.CallAsync(async () =>
            {
                await _calls.Grains.GetGrain<IWorkerGrain>(member.Name).SetDrainingAsync(silo, draining).ConfigureAwait(false);
                return true;
            }, $"{(draining ? "drain" : "undrain")} of {silo} told to {member.Name}").ConfigureAwait(false);
            if (!told.IsOk)
            {
                return told;
            }
        }

        return FsResult<bool>.Ok(true);
    }

    /// <summary>Ends a drain that did not stop its silo: it takes new files again.</summary>
    public async ValueTask<FsResult<bool>> UndrainAsync(string silo, CancellationToken cancellationToken = default)
    {
        var view = await _cluster.RefreshAsync(long.MaxValue, cancellationToken).ConfigureAwait(false);
        return view.Silos.Any(s => s.Name == silo)
            ? await MarkDrainingAsync(view.Silos, silo, false).ConfigureAwait(false)
            : FsResult<bool>.Fail(FsStatus.NotFound, $"undrain: no active silo is named '{silo}'");
    }

    /// <summary>Follows a job on a worker (a load or an adoption) until it is done.</summary>
    private async ValueTask<FsResult<LoadStatus>> FollowAsync(IWorkerGrain worker, long job, string what, CancellationToken cancellationToken)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var status = await _calls.CallAsync(() => worker.WaitLoadAsync(job, LoadWaitMilliseconds), what).ConfigureAwait(false);
            if (!status.IsOk || status.Value!.Done)
            {
                return status;
            }
        }
    }

    /// <summary>Every worker's tiers and counters.</summary>
    public async ValueTask<FsResult<WorkerReport[]>> GetReportAsync(CancellationToken cancellationToken = default)
    {
        var view = await _cluster.RefreshAsync(long.MaxValue, cancellationToken).ConfigureAwait(false);
        var reports = new List<WorkerReport>();
        foreach (var silo in view.Silos)
        {
            var report = await _calls.CallAsync(() => _calls.Grains.GetGrain<IWorkerGrain>(silo.Name).GetReportAsync(), $"report of {silo.Name}").ConfigureAwait(false);
            if (!report.IsOk)
            {
                return FsResult<WorkerReport[]>.Fail(report.Status, report.Message);
            }

            reports.Add(report.Value! with { Host = silo.Host });
        }

        return FsResult<WorkerReport[]>.Ok([.. reports]);
    }

    /// <summary>One worker's report (tiers, usage, counters), by silo name.</summary>
    public ValueTask<FsResult<WorkerReport>> GetWorkerReportAsync(string silo, CancellationToken cancellationToken = default) =>
        _calls.RetriedCallAsync(() => _calls.Grains.GetGrain<IWorkerGrain>(silo).GetReportAsync(), $"report of {silo}", cancellationToken);

    /// <summary>Every member of the cluster, whatever its state (one per silo name, its newest incarnation).</summary>
    public ValueTask<FsResult<SiloMember[]>> GetMembersAsync(CancellationToken cancellationToken = default) =>
        _calls.RetriedCallAsync(() => _calls.Grains.GetGrain<IClusterGrain>(0).GetMembersAsync(), "cluster members", cancellationToken);

    /// <summary>The silos as this client sees them.</summary>
    public async ValueTask<SiloInfo[]> GetSilosAsync(CancellationToken cancellationToken = default) =>
        (await _cluster.RefreshAsync(long.MaxValue, cancellationToken).ConfigureAwait(false)).Silos;
}
