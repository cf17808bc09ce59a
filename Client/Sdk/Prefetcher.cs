using System.Diagnostics.Metrics;
using GrainFs.DataPlane;
using GrainFs.DataPlane.Blocks;
using Microsoft.Extensions.Logging;

namespace GrainFs.Client;

/// <summary>How an announced read order is prefetched.</summary>
public sealed record PrefetchOptions
{
    /// <summary>Default for <see cref="WindowBytes"/>.</summary>
    public const long DEFAULT_WINDOW_BYTES = 1L << 30;

    /// <summary>Default for <see cref="WindowShare"/>.</summary>
    public const double DEFAULT_WINDOW_SHARE = 0.25;

    /// <summary>Default for <see cref="Parallel"/>.</summary>
    public const int DEFAULT_PARALLEL = 16;

    /// <summary>Most files fetched at once by one order.</summary>
    public const int MAX_PARALLEL = 256;

    /// <summary>Default for <see cref="Expiry"/>.</summary>
    public static readonly TimeSpan DEFAULT_EXPIRY = TimeSpan.FromMinutes(30);

    /// <summary>The job the order belongs to: a newer order of the same job replaces it (null: an order of its own).</summary>
    public string? Job { get; init; }

    /// <summary>The most bytes fetched ahead of the reader (files announced, fetched, not yet read).</summary>
    public long WindowBytes { get; init; } = DEFAULT_WINDOW_BYTES;

    /// <summary>
    /// The most the window may take of the cache it fills (this host's worker, or the home workers' tiers together when
    /// the reader has no worker on its host), as a share from 0 (exclusive) to 1: the smaller of this and
    /// <see cref="WindowBytes"/> applies, so an order cannot push out the rest of a small cache.
    /// </summary>
    public double WindowShare { get; init; } = DEFAULT_WINDOW_SHARE;

    /// <summary>Files fetched at once.</summary>
    public int Parallel { get; init; } = DEFAULT_PARALLEL;

    /// <summary>How long the order stays active when its files are not all read (an abandoned order).</summary>
    public TimeSpan Expiry { get; init; } = DEFAULT_EXPIRY;
}

/// <summary>The workers an order was sent to (by silo: for each of its blocks of the order, the place of the block's file in the order), and the mount.</summary>
internal sealed record OrderTargets(long MountId, Dictionary<string, List<int>> Silos);

/// <summary>What an announced order has done so far.</summary>
/// <param name="Files">Files announced.</param>
/// <param name="Skipped">Files that could not be prefetched (missing, not files, failed), each logged.</param>
/// <param name="Fetched">Files fetched into the cache ahead of the reader.</param>
/// <param name="FetchedBytes">Their bytes.</param>
/// <param name="Read">Files the reader has reached.</param>
/// <param name="Ahead">Bytes fetched and not yet read (at most the window).</param>
/// <param name="InFlight">Files being fetched now (the order's queue at the workers).</param>
/// <param name="Window">The window in force: <see cref="PrefetchOptions.WindowBytes"/>, or less by <see cref="PrefetchOptions.WindowShare"/> (0 until known).</param>
public readonly record struct PrefetchProgress(int Files, int Skipped, int Fetched, long FetchedBytes, int Read, long Ahead, int InFlight = 0, long Window = 0);

/// <summary>
/// An announced read order: the files a reader will read, in that order. The cluster fills them ahead of the reader
/// (block by block on the worker nearest to the reader, no bytes through this client), never more than the window ahead of the last
/// file read, until every file has been fetched and read, the order is cancelled or replaced by a newer one of its job,
/// or it expires.
/// </summary>
public sealed class PrefetchOrder
{
    private readonly Prefetcher _owner;
    private readonly CancellationTokenSource _stop;
    private readonly Dictionary<string, int> _positions;
    private readonly long[] _sizes;
    private readonly bool[] _fetched;
    private readonly SemaphoreSlim _progress = new(0);
    private readonly object _gate = new();
    private int _readUpTo = -1;
    private int _releasedUpTo = -1;
    private long _ahead;
    private int _skipped;
    private int _fetchedCount;
    private long _fetchedBytes;
    private int _inFlight;
    private long _window;

    // Files this client has read, and the place below which it has read them all.
    private readonly bool[] _read;
    private int _readAll = -1;

    /// <summary>How far behind the farthest file read the position told to the workers may be (parallel loaders read out of order).</summary>
    internal const int ReaderSlack = 1024;

    internal PrefetchOrder(Prefetcher owner, string job, IReadOnlyList<string> paths, PrefetchOptions options, CancellationToken stop)
    {
        _owner = owner;
        Job = job;
        Paths = paths;
        Options = options;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(stop);
        _stop.CancelAfter(options.Expiry);
        _positions = new Dictionary<string, int>(paths.Count, StringComparer.Ordinal);
        for (var i = paths.Count - 1; i >= 0; i--)
        {
            _positions[paths[i]] = i;
        }

        _sizes = new long[paths.Count];
        _fetched = new bool[paths.Count];
        _read = new bool[paths.Count];
    }

    /// <summary>The job the order belongs to.</summary>
    public string Job { get; }

    /// <summary>The announced paths, in order.</summary>
    public IReadOnlyList<string> Paths { get; }

    /// <summary>How the order is prefetched.</summary>
    public PrefetchOptions Options { get; }

    /// <summary>Completes when the order is over: read to the end, cancelled, replaced by a newer one of its job, or expired.</summary>
    public Task Completion { get; private set; } = Task.CompletedTask;

    /// <summary>True while the order may still fetch or track reads.</summary>
    public bool IsActive => !_stop.IsCancellationRequested && Volatile.Read(ref _readUpTo) < Paths.Count - 1;

    /// <summary>What the order has done so far.</summary>
    public PrefetchProgress Progress
    {
        get
        {
            lock (_gate)
            {
                return new PrefetchProgress(Paths.Count, _skipped, _fetchedCount, _fetchedBytes, _readUpTo + 1, _ahead, _inFlight, _window);
            }
        }
    }

    /// <summary>Stops the order: nothing more is fetched (fills already started finish on their workers).</summary>
    public void Cancel() => _stop.Cancel();

    internal void Start() => Completion = RunAllAsync(_stop.Token);

    /// <summary>Set when a newer order of the same job took over (the workers then keep that one's ranking).</summary>
    internal bool Replaced { get; set; }

    /// <summary>Whether <paramref name="path"/> is one of the order's files.</summary>
    internal bool Names(string path) => _positions.ContainsKey(path);

    // The prefetch pass and, beside it, the workers' copy of the order (for eviction); once the order is over (read to
    // the end, cancelled, expired), the workers forget it unless a newer order of the job took its place.
    private async Task RunAllAsync(CancellationToken cancellationToken)
    {
        var told = _owner.SendOrderAsync(this, cancellationToken);
        var fetching = RunAsync(cancellationToken);
        OrderTargets workers;
        try
        {
            workers = await told.ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or TimeoutException or OrleansException)
        {
            await fetching.ConfigureAwait(false);
            return;
        }

        // While the order runs, the workers learn where its reader is from this client, which knows.
        await _owner.TellPositionsAsync(this, workers, cancellationToken).ConfigureAwait(false);
        await fetching.ConfigureAwait(false);
        if (!Replaced)
        {
            await _owner.ForgetOrderAsync(Job, workers.MountId, workers.Silos.Keys).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The place in the order the reader has certainly passed: every file up to it read, or, when some were not read
    /// through this client (skipped, served by a kernel cache), at most <see cref="ReaderSlack"/> behind the farthest.
    /// </summary>
    internal int ReaderPosition
    {
        get
        {
            lock (_gate)
            {
                return Math.Max(_readAll, _readUpTo - ReaderSlack);
            }
        }
    }

    // The reader reached a file of the order: what was fetched up to it no longer counts against the window.
    internal void NoteRead(string path)
    {
        if (!_positions.TryGetValue(path, out var position))
        {
            return;
        }

        lock (_gate)
        {
            _read[position] = true;
            while (_readAll + 1 < _read.Length && _read[_readAll + 1])
            {
                _readAll++;
            }

            if (position <= _readUpTo)
            {
                return;
            }

            _readUpTo = position;
            for (var i = _releasedUpTo + 1; i <= position; i++)
            {
                if (_fetched[i])
                {
                    _ahead -= _sizes[i];
                }
            }

            _releasedUpTo = position;
        }

        _progress.Release();
        if (position == Paths.Count - 1)
        {
            _owner.Retire(this);
            _stop.Cancel(); // read to the end: the order is over
        }
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        using var slots = new SemaphoreSlim(Math.Max(1, Options.Parallel));
        var running = new List<Task>();
        try
        {
            var window = await _owner.WindowOfAsync(Options, cancellationToken).ConfigureAwait(false);
            lock (_gate)
            {
                _window = window;
            }

            for (var i = 0; i < Paths.Count; i++)
            {
                var version = await _owner.ResolveAsync(Paths[i], cancellationToken).ConfigureAwait(false);
                if (version is null)
                {
                    Interlocked.Increment(ref _skipped);
                    continue;
                }

                // Wait for room in the window (a file larger than the window goes alone, when nothing else is ahead).
                while (true)
                {
                    lock (_gate)
                    {
                        if (i <= _readUpTo)
                        {
                            break; // the reader passed it already: nothing to fetch
                        }

                        if (_ahead == 0 || _ahead + version.Entry.Size <= window)
                        {
                            _ahead += version.Entry.Size;
                            _sizes[i] = version.Entry.Size;
                            _fetched[i] = true;
                            break;
                        }
                    }

                    await _progress.WaitAsync(cancellationToken).ConfigureAwait(false);
                }

                if (!_fetched[i])
                {
                    continue;
                }

                await slots.WaitAsync(cancellationToken).ConfigureAwait(false);
                running.RemoveAll(t => t.IsCompleted);
                running.Add(FetchAsync(version, slots, cancellationToken));
            }

            await Task.WhenAll(running).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    private async Task FetchAsync(FileVersion version, SemaphoreSlim slots, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _inFlight);
        Prefetcher.InFlight.Add(1);
        try
        {
            var failure = await _owner.FillAsync(version, cancellationToken).ConfigureAwait(false);
            if (failure is null)
            {
                lock (_gate)
                {
                    _fetchedCount++;
                    _fetchedBytes += version.Entry.Size;
                }
            }
            else
            {
                Interlocked.Increment(ref _skipped);
                _owner.Skipped(version.Path, failure);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
            Prefetcher.InFlight.Add(-1);
            slots.Release();
        }
    }
}

/// <summary>
/// The client's announced orders: at most one per job, each prefetching on its own, all told of the files this client
/// reads so that each order's window moves with its reader. Blocks are filled on the worker nearest to the reader (this
/// host's when there is one whose folders it reads, else their homes), and the reader's own cold reads of an order's
/// files go to that worker too, joining the prefetch's fill instead of starting another.
/// </summary>
internal sealed partial class Prefetcher
{
    private static readonly Counter<long> Files = GrainFsMetrics.Meter.CreateCounter<long>("grainfs.client.prefetch_files", "{file}", "Files of announced read orders, by outcome (fetched, skipped)");
    private static readonly Counter<long> Bytes = GrainFsMetrics.Meter.CreateCounter<long>("grainfs.client.prefetch_bytes", "By", "Bytes fetched ahead of readers by announced read orders");

    /// <summary>Files of announced orders being fetched now, by every client of the process (the prefetch queue).</summary>
    internal static readonly UpDownCounter<long> InFlight = GrainFsMetrics.Meter.CreateUpDownCounter<long>("grainfs.client.prefetch_in_flight", "{file}", "Files of announced read orders being fetched now");

    private readonly IGrainFactory grains;
    private readonly NamespaceClient ns;
    private readonly BlockReader blocks;
    private readonly ClusterView cluster;
    private readonly GrainFsClientOptions options;
    private readonly ILogger logger;
    private readonly CancellationToken stop;

    public Prefetcher(IGrainFactory grains, NamespaceClient ns, BlockReader blocks, ClusterView cluster, GrainFsClientOptions options, ILogger logger, CancellationToken stop)
    {
        this.grains = grains;
        this.ns = ns;
        this.blocks = blocks;
        this.cluster = cluster;
        this.options = options;
        this.logger = logger;
        this.stop = stop;
        blocks.Announced = Names;
    }

    private readonly Lock _gate = new();
    private readonly Dictionary<string, PrefetchOrder> _orders = new(StringComparer.Ordinal);
    private volatile PrefetchOrder[] _active = [];

    /// <summary>Most keys per order part sent to a worker.</summary>
    public const int KeysPerPart = 16_384;

    /// <summary>Starts an order, replacing the job's earlier one.</summary>
    public PrefetchOrder Announce(IReadOnlyList<string> paths, PrefetchOptions options)
    {
        if (options.WindowBytes <= 0 || options.WindowShare is not (> 0 and <= 1) || options.Parallel is < 1 or > PrefetchOptions.MAX_PARALLEL || options.Expiry <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options, $"a read order needs WindowBytes > 0 (got {options.WindowBytes}), 0 < WindowShare <= 1 (got {options.WindowShare}), Parallel from 1 to {PrefetchOptions.MAX_PARALLEL} (got {options.Parallel}) and an Expiry > 0 (got {options.Expiry})");
        }

        var job = options.Job ?? Guid.NewGuid().ToString("N");
        var order = new PrefetchOrder(this, job, paths, options, stop);
        lock (_gate)
        {
            if (_orders.Remove(job, out var replaced))
            {
                replaced.Replaced = true;
                replaced.Cancel();
            }

            _orders[job] = order;
            _active = [.. _orders.Values];
        }

        order.Start();
        LogAnnounced(logger, job, paths.Count, options.WindowBytes);
        return order;
    }

    /// <summary>The orders in force.</summary>
    public IReadOnlyCollection<PrefetchOrder> Orders => _active;

    /// <summary>Whether an active order names <paramref name="path"/> (a cheap no-op without any).</summary>
    public bool Names(string path)
    {
        foreach (var order in _active)
        {
            if (order.Names(path))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The window of an order: its bytes, bounded by its share of the cache it fills (this host's workers whose folders
    /// this client reads, else the home workers together); the bytes alone when the silos do not say their capacity.
    /// </summary>
    internal async ValueTask<long> WindowOfAsync(PrefetchOptions order, CancellationToken cancellationToken)
    {
        var view = await cluster.GetAsync(cancellationToken).ConfigureAwait(false);
        long local = 0, homes = 0;
        foreach (var silo in view.Silos)
        {
            if (blocks.ReadsLocally(silo))
            {
                local += silo.CacheCapacity;
            }
        }

        foreach (var home in view.Homes)
        {
            homes += home.CacheCapacity;
        }

        var capacity = local > 0 ? local : homes;
        return capacity > 0 ? Math.Min(order.WindowBytes, Math.Max(1, (long)(capacity * order.WindowShare))) : order.WindowBytes;
    }

    /// <summary>Tells the active orders that this client read <paramref name="path"/> (a cheap no-op without any).</summary>
    public void NoteRead(string path)
    {
        var active = _active;
        foreach (var order in active)
        {
            order.NoteRead(path);
        }
    }

    internal void Retire(PrefetchOrder order)
    {
        lock (_gate)
        {
            if (_orders.TryGetValue(order.Job, out var current) && ReferenceEquals(current, order))
            {
                _orders.Remove(order.Job);
                _active = [.. _orders.Values];
            }
        }
    }

    internal async ValueTask<FileVersion?> ResolveAsync(string path, CancellationToken cancellationToken)
    {
        var file = await ns.VersionOfAsync(path, cancellationToken).ConfigureAwait(false);
        if (file.IsOk)
        {
            return file.Value;
        }

        Skipped(path, file.Message ?? file.Status.Describe());
        return null;
    }

    /// <summary>
    /// Tells each worker the order fills (<see cref="BlockReader.NearestWorker"/>) the order in which the reader will
    /// request its blocks (one mount's, the first file's), so that its eviction keeps what the reader has still to read;
    /// the silos told, with the place in the order of each of their blocks' files, and the mount.
    /// </summary>
    internal async Task<OrderTargets> SendOrderAsync(PrefetchOrder order, CancellationToken cancellationToken)
    {
        var view = await cluster.GetAsync(cancellationToken).ConfigureAwait(false);
        var perSilo = new Dictionary<string, List<BlockKey>>(StringComparer.Ordinal);
        var filesOf = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        var place = -1;
        long? mountId = null;
        var otherMounts = 0;
        foreach (var path in order.Paths)
        {
            place++;
            var version = await ns.VersionOfAsync(path, cancellationToken).ConfigureAwait(false);
            if (!version.IsOk)
            {
                continue; // the prefetch pass warns of it
            }

            var file = version.Value!;
            mountId ??= file.Mount.Id;
            if (file.Mount.Id != mountId)
            {
                otherMounts++;
                continue;
            }

            for (var index = 0; index < file.BlockCount; index++)
            {
                var key = file.KeyOf(index);
                if (blocks.NearestWorker(view, key) is { } target)
                {
                    if (!perSilo.TryGetValue(target.Name, out var keys))
                    {
                        perSilo[target.Name] = keys = [];
                        filesOf[target.Name] = [];
                    }

                    keys.Add(key);
                    filesOf[target.Name].Add(place);
                }
            }
        }

        if (otherMounts > 0)
        {
            LogOtherMounts(logger, order.Job, otherMounts);
        }

        foreach (var (silo, keys) in perSilo)
        {
            var worker = grains.GetGrain<IWorkerGrain>(silo);
            for (var start = 0; start < keys.Count; start += KeysPerPart)
            {
                var count = Math.Min(KeysPerPart, keys.Count - start);
                await worker.AnnounceOrderAsync(new OrderPart(mountId!.Value, order.Job, start, [.. keys.GetRange(start, count)], start + count == keys.Count, order.Options.Expiry, Told: true)).ConfigureAwait(false);
            }
        }

        return new OrderTargets(mountId ?? 0, filesOf);
    }

    /// <summary>
    /// Until the order ends, tells each worker it reached where the order's reader is in that worker's part of the order
    /// (every 250 ms when it moved): the index of the last block of the files the reader has passed.
    /// </summary>
    internal async Task TellPositionsAsync(PrefetchOrder order, OrderTargets targets, CancellationToken cancellationToken)
    {
        var told = targets.Silos.Keys.ToDictionary(s => s, _ => -1, StringComparer.Ordinal);
        try
        {
            while (true)
            {
                await Task.Delay(PositionInterval, cancellationToken).ConfigureAwait(false);
                var reader = order.ReaderPosition;
                foreach (var (silo, files) in targets.Silos)
                {
                    var position = LastAtOrBefore(files, reader);
                    if (position <= told[silo])
                    {
                        continue;
                    }

                    try
                    {
                        await grains.GetGrain<IWorkerGrain>(silo).AdvanceOrderAsync(targets.MountId, order.Job, position).ConfigureAwait(false);
                        told[silo] = position;
                    }
                    catch (Exception e) when (e is TimeoutException or OrleansException or InvalidOperationException)
                    {
                        LogForgetFailed(logger, order.Job, silo, e.Message); // tried again on the next tick
                    }
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>How often workers are told where a reader is.</summary>
    internal static readonly TimeSpan PositionInterval = TimeSpan.FromMilliseconds(250);

    // The index of the last entry at or before place (entries ascending); -1 when none is.
    private static int LastAtOrBefore(List<int> places, int place)
    {
        int low = 0, high = places.Count;
        while (low < high)
        {
            var middle = (low + high) >>> 1;
            if (places[middle] <= place)
            {
                low = middle + 1;
            }
            else
            {
                high = middle;
            }
        }

        return low - 1;
    }

    /// <summary>Tells the workers an order reached that it has ended (cancelled, expired, read to the end).</summary>
    internal async Task ForgetOrderAsync(string job, long mountId, IEnumerable<string> silos)
    {
        foreach (var silo in silos)
        {
            try
            {
                await grains.GetGrain<IWorkerGrain>(silo).ForgetOrderAsync(mountId, job).ConfigureAwait(false);
            }
            catch (Exception e) when (e is TimeoutException or OrleansException or InvalidOperationException)
            {
                LogForgetFailed(logger, job, silo, e.Message); // the worker's copy lapses at its expiry anyway
            }
        }
    }

    // Fills every block of the file on the worker nearest to the reader (no bytes come back); null when all are held, else why not.
    internal async ValueTask<string?> FillAsync(FileVersion file, CancellationToken cancellationToken)
    {
        var view = await cluster.GetAsync(cancellationToken).ConfigureAwait(false);
        for (var index = 0; index < file.BlockCount; index++)
        {
            var key = file.KeyOf(index);
            if (blocks.NearestWorker(view, key) is not { } target)
            {
                return "no silo is available";
            }

            var held = await blocks.DataPort.PrefetchAsync(target.DataEndpoint, key, file.FillSourceOf(index), options.FillTimeout, cancellationToken).ConfigureAwait(false);
            if (held.Status != DataPortStatus.Ok)
            {
                return $"block {index} on {target.Name}: {held.Status} {held.Message}";
            }
        }

        Files.Add(1, new KeyValuePair<string, object?>("outcome", "fetched"));
        Bytes.Add(file.Entry.Size);
        return null;
    }

    internal void Skipped(string path, string reason)
    {
        Files.Add(1, new KeyValuePair<string, object?>("outcome", "skipped"));
        LogSkipped(logger, path, reason);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Read order {Job} announced: {Files} files, a window of {WindowBytes} bytes")]
    private static partial void LogAnnounced(ILogger logger, string job, int files, long windowBytes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Read order {Job}: {Count} file(s) of other mounts than its first are prefetched but not ranked for eviction")]
    private static partial void LogOtherMounts(ILogger logger, string job, int count);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Read order {Job}: worker {Silo} was not told of the order's progress or end ({Reason})")]
    private static partial void LogForgetFailed(ILogger logger, string job, string silo, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Read order: {Path} is not prefetched: {Reason}")]
    private static partial void LogSkipped(ILogger logger, string path, string reason);
}
