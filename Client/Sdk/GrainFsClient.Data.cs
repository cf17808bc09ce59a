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

/// <summary>The block-cache side of the SDK: open, read, load, free, pin, TTL, report.</summary>
public sealed partial class GrainFsClient
{
    /// <summary>Most blocks per batch sent to one worker.</summary>
    public const int BatchBlocks = 64;

    /// <summary>Most bytes per batch sent to one worker, so a batch from a slow store finishes well within a grain call's timeout.</summary>
    public const long BatchBytes = 64L << 20;

    /// <summary>How long one wait for a load on a worker lasts before it reports progress (well within a grain call's timeout).</summary>
    private const int LoadWaitMilliseconds = 5_000;

    /// <summary>Opens a file for reading.</summary>
    public async ValueTask<FsResult<GrainFsFile>> OpenAsync(string path, CancellationToken cancellationToken = default)
    {
        var version = await VersionOfAsync(path, cancellationToken).ConfigureAwait(false);
        return version.IsOk
            ? FsResult<GrainFsFile>.Ok(new GrainFsFile(version.Value!, _blocks, _grains, _options.ReadAheadBlocks))
            : FsResult<GrainFsFile>.Fail(version.Status, version.Message);
    }

    /// <summary>Reads up to <c>destination.Length</c> bytes of a file at <paramref name="offset"/> into the caller's buffer.</summary>
    public async ValueTask<FsResult<int>> ReadAsync(string path, long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        var file = await OpenAsync(path, cancellationToken).ConfigureAwait(false);
        return file.IsOk ? await file.Value!.ReadAsync(offset, destination, cancellationToken).ConfigureAwait(false) : FsResult<int>.Fail(file.Status, file.Message);
    }

    /// <summary>A read-only seekable stream over a file.</summary>
    public async ValueTask<FsResult<Stream>> OpenReadStreamAsync(string path, CancellationToken cancellationToken = default)
    {
        var file = await OpenAsync(path, cancellationToken).ConfigureAwait(false);
        return file.IsOk ? FsResult<Stream>.Ok(file.Value!.OpenStream()) : FsResult<Stream>.Fail(file.Status, file.Message);
    }

    private async ValueTask<FsResult<FileVersion>> VersionOfAsync(string path, CancellationToken cancellationToken)
    {
        var resolved = await ResolveAsync(path, cancellationToken).ConfigureAwait(false);
        if (resolved.Place != Place.InMount)
        {
            return resolved.Place is Place.Invalid or Place.Missing
                ? FsResult<FileVersion>.Fail(resolved.Status, resolved.Message)
                : FsResult<FileVersion>.Fail(FsStatus.IsADirectory, $"{resolved.Path}: is a directory");
        }

        var stat = await StatAsync(resolved.Path, cancellationToken).ConfigureAwait(false);
        if (!stat.IsOk)
        {
            return FsResult<FileVersion>.Fail(stat.Status, stat.Message);
        }

        return stat.Value!.IsDirectory
            ? FsResult<FileVersion>.Fail(FsStatus.IsADirectory, $"{resolved.Path}: is a directory")
            : FsResult<FileVersion>.Ok(new FileVersion(resolved.Mount!, resolved.Path, resolved.Relative, stat.Value));
    }

    /// <summary>Every file at or under <paramref name="path"/>, with its version.</summary>
    private async Task<FsResult<List<FileVersion>>> FilesUnderAsync(string path, CancellationToken cancellationToken)
    {
        var files = new List<FileVersion>();
        var stat = await StatAsync(path, cancellationToken).ConfigureAwait(false);
        if (!stat.IsOk)
        {
            return FsResult<List<FileVersion>>.Fail(stat.Status, stat.Message);
        }

        if (!stat.Value!.IsDirectory)
        {
            var single = await VersionOfAsync(path, cancellationToken).ConfigureAwait(false);
            return single.IsOk ? FsResult<List<FileVersion>>.Ok([single.Value!]) : FsResult<List<FileVersion>>.Fail(single.Status, single.Message);
        }

        var pending = new Stack<string>();
        FsPath.TryNormalize(path, out var root, out _);
        pending.Push(root);
        while (pending.Count > 0)
        {
            var directory = pending.Pop();
            var resolved = await ResolveAsync(directory, cancellationToken).ConfigureAwait(false);
            string? cursor = null;
            do
            {
                var page = await ListPageAsync(directory, cursor, 0, cancellationToken).ConfigureAwait(false);
                if (!page.IsOk)
                {
                    return FsResult<List<FileVersion>>.Fail(page.Status, page.Message);
                }

                foreach (var entry in page.Value!.Entries)
                {
                    var full = FsPath.Combine(directory, entry.Name);
                    if (entry.IsDirectory)
                    {
                        pending.Push(full);
                    }
                    else if (resolved.Mount is { } mount)
                    {
                        files.Add(new FileVersion(mount, full, FsPath.CombineRelative(resolved.Relative, entry.Name), entry));
                    }
                }

                cursor = page.Value.NextCursor;
            }
            while (cursor is not null);
        }

        return FsResult<List<FileVersion>>.Ok(files);
    }

    /// <summary>
    /// Pre-warms a file or a whole tree: its blocks are grouped by home worker and filled there in parallel batches
    /// (bytes go from under-storage to the workers, never through this client). <paramref name="pin"/> and
    /// <paramref name="ttl"/> are applied to every block.
    /// </summary>
    public async ValueTask<FsResult<CacheOperationResult>> LoadAsync(string path, IProgress<LoadProgress>? progress = null, bool? pin = null, TimeSpan? ttl = null, int parallelBatches = 8, CancellationToken cancellationToken = default)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var files = await FilesUnderAsync(path, cancellationToken).ConfigureAwait(false);
        if (!files.IsOk)
        {
            return FsResult<CacheOperationResult>.Fail(files.Status, files.Message);
        }

        var list = files.Value!;
        var totalBytes = list.Sum(f => f.Entry.Size);
        var view = await _cluster.GetAsync(cancellationToken).ConfigureAwait(false);
        var expires = ttl is { } t ? _time.GetUtcNow().UtcDateTime + t : (DateTime?)null;
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
            var result = await LoadBatchAsync(_grains.GetGrain<IWorkerGrain>(batch.Silo), sources, pin, expires, path).ConfigureAwait(false);
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
    private async ValueTask<FsResult<LoadStatus>> LoadBatchAsync(IWorkerGrain worker, BlockSource[] sources, bool? pin, DateTime? expires, string path)
    {
        var started = await CallAsync(() => worker.StartLoadAsync(sources, pin, expires), path).ConfigureAwait(false);
        if (!started.IsOk)
        {
            return FsResult<LoadStatus>.Fail(started.Status, started.Message);
        }

        while (true)
        {
            var status = await CallAsync(() => worker.WaitLoadAsync(started.Value, LoadWaitMilliseconds), path).ConfigureAwait(false);
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

    /// <summary>Gives the cached blocks of a file or tree a time to live: they are freed when it ends.</summary>
    public ValueTask<FsResult<CacheOperationResult>> SetTtlAsync(string path, TimeSpan ttl, CancellationToken cancellationToken = default)
    {
        var expires = _time.GetUtcNow().UtcDateTime + ttl;
        return BroadcastAsync(path, (worker, keys) => worker.SetFlagsAsync(keys, null, expires), cancellationToken);
    }

    private async ValueTask<FsResult<CacheOperationResult>> BroadcastAsync(string path, Func<IWorkerGrain, BlockKey[], ValueTask<BatchResult>> action, CancellationToken cancellationToken)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var files = await FilesUnderAsync(path, cancellationToken).ConfigureAwait(false);
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
                var result = await CallAsync(() => action(_grains.GetGrain<IWorkerGrain>(silo.Name), chunk), path).ConfigureAwait(false);
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
            var report = await CallAsync(() => _grains.GetGrain<IWorkerGrain>(silo.Name).GetReportAsync(), $"report of {silo.Name}").ConfigureAwait(false);
            if (!report.IsOk)
            {
                return FsResult<WorkerReport[]>.Fail(report.Status, report.Message);
            }

            reports.Add(report.Value! with { Host = silo.Host });
        }

        return FsResult<WorkerReport[]>.Ok([.. reports]);
    }

    /// <summary>The silos as this client sees them.</summary>
    public async ValueTask<SiloInfo[]> GetSilosAsync(CancellationToken cancellationToken = default) =>
        (await _cluster.RefreshAsync(long.MaxValue, cancellationToken).ConfigureAwait(false)).Silos;

    private async Task ReportAccessLoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(2), _time);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                try
                {
                    await _blocks.ReportAccessAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is OrleansException or TimeoutException)
                {
                    LogRefreshFailed(_logger, e.Message);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }
}
