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

        while (true)
        {
            var status = await _calls.CallAsync(() => worker.WaitLoadAsync(started.Value, LoadWaitMilliseconds), path).ConfigureAwait(false);
            if (!status.IsOk || status.Value!.Done)
            {
                return status;
            }
        }
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
