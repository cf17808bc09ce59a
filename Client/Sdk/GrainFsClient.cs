using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace GrainFs.Client;

/// <summary>
/// The GrainFS client SDK: a small facade over its parts — the cluster connection, the <see cref="MountResolver"/>
/// (mount-table cache and path resolution: resolving costs no grain call), the <see cref="NamespaceClient"/> (mounts,
/// stat, listings), the <see cref="CacheAdmin"/> (load, free, pin, TTL, reports) and the block reader behind
/// <see cref="GrainFsFile"/>. File-system outcomes come back as <see cref="FsResult{T}"/> values, including cluster
/// failures (EIO / ETIMEDOUT).
/// </summary>
public sealed partial class GrainFsClient : IAsyncDisposable
{
    private readonly ClusterConnection _connection;
    private readonly GrainFsClientOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ClusterView _cluster;
    private readonly BlockReader _blocks;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task? _refresher;
    private readonly Task? _accessReporter;

    /// <summary>Grain calls as values (cluster failures named), with retries for calls that may be made twice.</summary>
    internal GrainCalls Calls { get; }

    private GrainFsClient(ClusterConnection connection, GrainFsClientOptions options, TimeProvider time, ILogger logger)
    {
        _connection = connection;
        _options = options;
        _time = time;
        _logger = logger;
        var calls = new GrainCalls(connection.Grains, logger, options.FailoverTimeout);
        Calls = calls;
        Mounts = new MountResolver(calls);
        Namespace = new NamespaceClient(calls, Mounts, options, time);
        _cluster = new ClusterView(connection.Grains, time);
        // The data port takes the identity the connection logged in with; a client over someone else's grain factory (a
        // test cluster's) uses the credentials its options name.
        var trust = options.InsecureNoAuth ? null : connection.Trust ?? GrainFs.DataPlane.Security.ClusterTrust.Open(options.Credentials, options.ClusterId, GrainFs.DataPlane.Security.IdentityKind.Client);
        _blocks = new BlockReader(connection.Grains, _cluster, options, trust, logger);
        _prefetcher = new Prefetcher(connection.Grains, Namespace, _blocks, _cluster, options, logger, _stop.Token);
        _blocks.FileRead = _prefetcher.NoteRead;
        Cache = new CacheAdmin(calls, Namespace, _cluster, time);
        WriteCapabilities = new WriteCapabilities(calls, options.InsecureNoAuth, time);

        // Only a client that hosts its own connection runs background work, and it awaits that work when disposed.
        if (connection.Owned && options.MountTableRefresh > TimeSpan.Zero)
        {
            _refresher = RefreshLoopAsync(_stop.Token);
        }

        if (connection.Owned)
        {
            _accessReporter = ReportAccessLoopAsync(_stop.Token);
        }

        if (options.WatchChanges)
        {
            _watcher = new NamespaceWatcher(connection.Grains, Namespace, paths => PathsChanged?.Invoke(paths), time, logger);
        }
    }

    private readonly NamespaceWatcher? _watcher;
    private readonly Prefetcher _prefetcher;

    /// <summary>With <see cref="GrainFsClientOptions.WatchChanges"/>: full GrainFS paths another client (or this one) changed.</summary>
    public event Action<string[]>? PathsChanged;

    /// <summary>The options in force.</summary>
    public GrainFsClientOptions Options => _options;

    /// <summary>The grain factory this client calls (for components built on the SDK).</summary>
    public IGrainFactory Grains => _connection.Grains;

    /// <summary>The mount-table cache and path resolution.</summary>
    public MountResolver Mounts { get; }

    /// <summary>Mounts, stat and listings.</summary>
    public NamespaceClient Namespace { get; }

    /// <summary>Load, free, pin, TTL and reports.</summary>
    public CacheAdmin Cache { get; }

    /// <summary>Entries in the client metadata cache.</summary>
    public int CachedEntries => Namespace.CachedEntries;

    /// <summary>
    /// Connects to the cluster the options name (the embedded localhost silo by default). Throws
    /// <see cref="GrainFsConnectException"/> with a one-line reason when the cluster cannot be reached in time.
    /// </summary>
    public static async Task<GrainFsClient> ConnectAsync(GrainFsClientOptions options, ILoggerFactory? loggerFactory = null, CancellationToken cancellationToken = default)
    {
        var connection = await ClusterConnection.ConnectAsync(options, loggerFactory, cancellationToken).ConfigureAwait(false);
        var logger = connection.Loggers?.CreateLogger<GrainFsClient>() ?? (ILogger)NullLogger.Instance;
        var client = new GrainFsClient(connection, options, TimeProvider.System, logger);
        await client.Mounts.RefreshAsync(force: true, cancellationToken).ConfigureAwait(false);
        return client;
    }

    /// <summary>A client over a grain factory someone else owns (a test cluster, a co-hosted client).</summary>
    public static GrainFsClient Create(IGrainFactory grains, GrainFsClientOptions? options = null, TimeProvider? time = null, ILogger? logger = null) =>
        new(ClusterConnection.Over(grains), options ?? new GrainFsClientOptions(), time ?? TimeProvider.System, logger ?? NullLogger.Instance);

    // ---------------------------------------------------------------- the namespace

    /// <inheritdoc cref="NamespaceClient.GetMountsAsync"/>
    public ValueTask<FsResult<MountTableSnapshot>> GetMountsAsync(bool refresh = false, CancellationToken cancellationToken = default) =>
        Namespace.GetMountsAsync(refresh, cancellationToken);

    /// <inheritdoc cref="NamespaceClient.MountAsync"/>
    public ValueTask<FsResult<MountInfo>> MountAsync(string path, string uri, IReadOnlyDictionary<string, string>? options = null, CancellationToken cancellationToken = default) =>
        Namespace.MountAsync(path, uri, options, cancellationToken);

    /// <inheritdoc cref="NamespaceClient.SetAccessAsync"/>
    public ValueTask<FsResult<MountInfo>> SetAccessAsync(string path, IReadOnlyList<string>? readers, IReadOnlyList<string>? writers, CancellationToken cancellationToken = default) =>
        Namespace.SetAccessAsync(path, readers, writers, cancellationToken);

    /// <inheritdoc cref="NamespaceClient.UnmountAsync"/>
    public ValueTask<FsResult<MountInfo>> UnmountAsync(string path, CancellationToken cancellationToken = default) =>
        Namespace.UnmountAsync(path, cancellationToken);

    /// <inheritdoc cref="NamespaceClient.StatAsync"/>
    public ValueTask<FsResult<FsEntry>> StatAsync(string path, CancellationToken cancellationToken = default) =>
        Namespace.StatAsync(path, cancellationToken);

    /// <inheritdoc cref="NamespaceClient.ListPageAsync"/>
    public ValueTask<FsResult<DirectoryPage>> ListPageAsync(string path, string? cursor = null, int maxEntries = 0, CancellationToken cancellationToken = default) =>
        Namespace.ListPageAsync(path, cursor, maxEntries, cancellationToken);

    /// <inheritdoc cref="NamespaceClient.ListAsync"/>
    public IAsyncEnumerable<FsEntry> ListAsync(string path, CancellationToken cancellationToken = default) =>
        Namespace.ListAsync(path, cancellationToken);

    // ---------------------------------------------------------------- files

    /// <summary>Opens a file for reading.</summary>
    public async ValueTask<FsResult<GrainFsFile>> OpenAsync(string path, CancellationToken cancellationToken = default)
    {
        var version = await Namespace.VersionOfAsync(path, cancellationToken).ConfigureAwait(false);
        return version.IsOk ? FsResult<GrainFsFile>.Ok(Open(version.Value!)) : FsResult<GrainFsFile>.Fail(version.Status, version.Message);
    }

    /// <summary>
    /// Announces the order in which files will be read (a training epoch's order): the cluster fills them ahead of the
    /// reader, in order, into this host's worker when it has one (else the blocks' homes), at most
    /// <see cref="PrefetchOptions.WindowBytes"/> (and <see cref="PrefetchOptions.WindowShare"/> of that cache) ahead of
    /// the last one read through this client. Returns once the order is accepted; it then runs until every file is fetched and read, it is cancelled,
    /// a newer order of the same <see cref="PrefetchOptions.Job"/> replaces it, or it expires. A path that is missing or
    /// not a file is skipped with a warning.
    /// </summary>
    public PrefetchOrder Prefetch(IEnumerable<string> paths, PrefetchOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var list = paths.ToList();
        return _prefetcher.Announce(list, options ?? new PrefetchOptions());
    }

    /// <summary>The announced read orders in force.</summary>
    public IReadOnlyCollection<PrefetchOrder> PrefetchOrders => _prefetcher.Orders;

    /// <summary>A reader of a file version already resolved (a front end that keeps inodes of its own).</summary>
    public GrainFsFile Open(FileVersion version) => new(version, _blocks, Grains, _options.ReadAheadBlocks);

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

    // ---------------------------------------------------------------- the cache

    /// <inheritdoc cref="CacheAdmin.LoadAsync"/>
    public ValueTask<FsResult<CacheOperationResult>> LoadAsync(string path, IProgress<LoadProgress>? progress = null, bool? pin = null, TimeSpan? ttl = null, int parallelBatches = 8, CancellationToken cancellationToken = default) =>
        Cache.LoadAsync(path, progress, pin, ttl, parallelBatches, cancellationToken);

    /// <inheritdoc cref="CacheAdmin.FreeAsync"/>
    public ValueTask<FsResult<CacheOperationResult>> FreeAsync(string path, CancellationToken cancellationToken = default) => Cache.FreeAsync(path, cancellationToken);

    /// <inheritdoc cref="CacheAdmin.PinAsync"/>
    public ValueTask<FsResult<CacheOperationResult>> PinAsync(string path, IProgress<LoadProgress>? progress = null, CancellationToken cancellationToken = default) =>
        Cache.PinAsync(path, progress, cancellationToken);

    /// <inheritdoc cref="CacheAdmin.UnpinAsync"/>
    public ValueTask<FsResult<CacheOperationResult>> UnpinAsync(string path, CancellationToken cancellationToken = default) => Cache.UnpinAsync(path, cancellationToken);

    /// <inheritdoc cref="CacheAdmin.SetTtlAsync"/>
    public ValueTask<FsResult<CacheOperationResult>> SetTtlAsync(string path, TimeSpan ttl, CancellationToken cancellationToken = default) => Cache.SetTtlAsync(path, ttl, cancellationToken);

    /// <inheritdoc cref="CacheAdmin.GetReportAsync"/>
    public ValueTask<FsResult<WorkerReport[]>> GetReportAsync(CancellationToken cancellationToken = default) => Cache.GetReportAsync(cancellationToken);

    /// <inheritdoc cref="CacheAdmin.DrainAsync"/>
    public ValueTask<FsResult<DrainResult>> DrainAsync(string silo, bool stop, IProgress<LoadProgress>? progress = null, CancellationToken cancellationToken = default) =>
        Cache.DrainAsync(silo, stop, progress, cancellationToken);

    /// <inheritdoc cref="CacheAdmin.UndrainAsync"/>
    public ValueTask<FsResult<bool>> UndrainAsync(string silo, CancellationToken cancellationToken = default) => Cache.UndrainAsync(silo, cancellationToken);

    /// <summary>Where a file's or tree's blocks are cached, per host (bytes and share of the tree): for scheduling pods near their data.</summary>
    public ValueTask<FsResult<TreeLocality>> LocalityAsync(string path, CancellationToken cancellationToken = default) => Cache.LocalityAsync(path, cancellationToken);

    /// <summary>Every member of the cluster whatever its state (joining, active, shutting down, dead), one per silo name.</summary>
    public ValueTask<FsResult<SiloMember[]>> GetMembersAsync(CancellationToken cancellationToken = default) => Cache.GetMembersAsync(cancellationToken);

    /// <summary>One worker's report, by silo name (admin).</summary>
    public ValueTask<FsResult<WorkerReport>> GetWorkerReportAsync(string silo, CancellationToken cancellationToken = default) => Cache.GetWorkerReportAsync(silo, cancellationToken);

    /// <inheritdoc cref="CacheAdmin.GetSilosAsync"/>
    public ValueTask<SiloInfo[]> GetSilosAsync(CancellationToken cancellationToken = default) => Cache.GetSilosAsync(cancellationToken);

    // ---------------------------------------------------------------- background work

    private async Task RefreshLoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.MountTableRefresh, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                var result = await Mounts.RefreshAsync(force: false, cancellationToken).ConfigureAwait(false);
                if (!result.IsOk)
                {
                    LogRefreshFailed(_logger, result.Describe());
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    // Every 2 s; every 250 ms while a read order is in force, whose workers place the reader by these reports (a reader
    // of thousands of files a second passes a whole window in 2 s, and eviction would take its passed blocks for ones ahead).
    private async Task ReportAccessLoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(250), _time);
        var ticks = 0;
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                if (++ticks % 8 != 0 && _prefetcher.Orders.Count == 0)
                {
                    continue;
                }

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

    /// <inheritdoc />
    /// <summary>Tells this host's workers now of the short-circuit reads not yet reported (an owned connection does so every 2 s, every 250 ms while a read order is in force).</summary>
    internal Task ReportAccessAsync() => _blocks.ReportAccessAsync(CancellationToken.None);

    public async ValueTask DisposeAsync()
    {
        if (_watcher is not null)
        {
            await _watcher.DisposeAsync().ConfigureAwait(false);
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_prefetcher.Orders.Select(o => o.Completion)).ConfigureAwait(false);
        if (_refresher is not null)
        {
            await _refresher.ConfigureAwait(false);
        }

        if (_accessReporter is not null)
        {
            await _accessReporter.ConfigureAwait(false);
            try
            {
                // The last short-circuit reads, so that even a short-lived client's hits are counted.
                await _blocks.ReportAccessAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OrleansException or TimeoutException or InvalidOperationException or ObjectDisposedException)
            {
                LogCallFailed(_logger, "access report", e.Message);
            }
        }

        _blocks.Dispose();
        await _connection.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Mount table refresh failed: {Reason}")]
    private static partial void LogRefreshFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cluster call for {What} failed: {Reason}")]
    private static partial void LogCallFailed(ILogger logger, string what, string reason);
}
