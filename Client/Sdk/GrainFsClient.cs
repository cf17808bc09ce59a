using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using GrainFs.DataPlane;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;

namespace GrainFs.Client;

/// <summary>
/// The GrainFS client SDK. Paths are resolved against a cached, versioned copy of the mount table, so
/// resolving costs no call to the mount table grain; a stat costs at most one grain call (to the
/// parent directory), and none when the client's metadata cache holds the answer. File-system outcomes
/// come back as <see cref="FsResult{T}"/> values, including cluster failures (EIO / ETIMEDOUT).
/// </summary>
public sealed partial class GrainFsClient : IAsyncDisposable
{
    private static readonly KeyValuePair<string, object?> Hit = new("result", "hit");
    private static readonly KeyValuePair<string, object?> Miss = new("result", "miss");
    private readonly IGrainFactory _grains;
    private readonly IHost? _host;
    private readonly GrainFsClientOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly MetadataCache _cache;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(long Mount, string Path), int> _shards = new();
    private readonly SemaphoreSlim _refreshGate = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task? _refresher;
    private readonly Task? _accessReporter;
    private readonly ClusterView _cluster;
    private readonly BlockReader _blocks;
    private MountTableSnapshot _mounts = new(-1, []);

    private GrainFsClient(IGrainFactory grains, IHost? host, GrainFsClientOptions options, TimeProvider time, ILogger logger, bool backgroundRefresh)
    {
        _grains = grains;
        _host = host;
        _options = options;
        _time = time;
        _logger = logger;
        _cache = new MetadataCache(options.MetadataCacheEntries, time);
        _cluster = new ClusterView(grains, time);
        _blocks = new BlockReader(grains, _cluster, options, logger);
        if (backgroundRefresh && options.MountTableRefresh > TimeSpan.Zero)
        {
            _refresher = RefreshLoopAsync(_stop.Token);
        }

        if (backgroundRefresh)
        {
            _accessReporter = ReportAccessLoopAsync(_stop.Token);
        }
    }

    /// <summary>The options in force.</summary>
    public GrainFsClientOptions Options => _options;

    /// <summary>The grain factory this client calls (for components built on the SDK).</summary>
    public IGrainFactory Grains => _grains;

    /// <summary>Entries in the client metadata cache.</summary>
    public int CachedEntries => _cache.Count;

    /// <summary>
    /// Connects to the cluster the options name (the embedded localhost silo by default). Throws
    /// <see cref="GrainFsConnectException"/> with a one-line reason when the cluster cannot be reached in time.
    /// </summary>
    public static async Task<GrainFsClient> ConnectAsync(GrainFsClientOptions options, ILoggerFactory? loggerFactory = null, CancellationToken cancellationToken = default)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        if (loggerFactory is not null)
        {
            builder.Services.AddSingleton(loggerFactory);
        }

        var deadline = Stopwatch.StartNew();
        var attempts = 0;
        builder.UseOrleansClient(client =>
        {
            client.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = options.ClusterId;
                o.ServiceId = options.ClusterId;
            });
            if (options.Cluster is { } cluster)
            {
                client.UseAdoNetClustering(o =>
                {
                    o.Invariant = "Npgsql";
                    o.ConnectionString = cluster;
                });
                client.Configure<GatewayOptions>(o => o.GatewayListRefreshPeriod = TimeSpan.FromSeconds(5));
            }
            else
            {
                client.UseLocalhostClustering(options.GatewayPort, serviceId: options.ClusterId, clusterId: options.ClusterId);
            }

            client.UseConnectionRetryFilter(async (_, ct) =>
            {
                attempts++;
                if (deadline.Elapsed >= options.ConnectTimeout)
                {
                    return false;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 100 * attempts)), ct).ConfigureAwait(false);
                return true;
            });
        });

        var host = builder.Build();
        try
        {
            await host.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            host.Dispose();
            var where = options.Cluster is null
                ? string.Create(CultureInfo.InvariantCulture, $"the embedded silo at 127.0.0.1:{options.GatewayPort}")
                : $"the cluster '{options.ClusterId}' in {DescribeConnection(options.Cluster)}";
            throw new GrainFsConnectException($"cannot reach {where} within {options.ConnectTimeout.TotalSeconds:0} s: {Innermost(e).Message}", e);
        }

        var logger = (loggerFactory ?? host.Services.GetService<ILoggerFactory>())?.CreateLogger<GrainFsClient>() ?? (ILogger)Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        var client = new GrainFsClient(host.Services.GetRequiredService<IClusterClient>(), host, options, TimeProvider.System, logger, backgroundRefresh: true);
        await client.RefreshMountsAsync(force: true, cancellationToken).ConfigureAwait(false);
        return client;
    }

    /// <summary>A client over a grain factory someone else owns (a test cluster, a co-hosted client).</summary>
    public static GrainFsClient Create(IGrainFactory grains, GrainFsClientOptions? options = null, TimeProvider? time = null, ILogger? logger = null) =>
        new(grains, null, options ?? new GrainFsClientOptions(), time ?? TimeProvider.System, logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, backgroundRefresh: false);

    private static string DescribeConnection(string connection)
    {
        try
        {
            var b = new Npgsql.NpgsqlConnectionStringBuilder(connection);
            return $"PostgreSQL {b.Host}:{b.Port}/{b.Database}";
        }
        catch (ArgumentException)
        {
            return "PostgreSQL (unparsable connection string)";
        }
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null)
        {
            e = e.InnerException;
        }

        return e;
    }

    // ---------------------------------------------------------------- mounts

    /// <summary>The mount table; <paramref name="refresh"/> asks the cluster instead of the cached copy.</summary>
    public async ValueTask<FsResult<MountTableSnapshot>> GetMountsAsync(bool refresh = false, CancellationToken cancellationToken = default)
    {
        var status = await RefreshMountsAsync(refresh, cancellationToken).ConfigureAwait(false);
        return status.Status == FsStatus.Ok ? FsResult<MountTableSnapshot>.Ok(_mounts) : FsResult<MountTableSnapshot>.Fail(status.Status, status.Message);
    }

    /// <summary>Mounts <paramref name="uri"/> at <paramref name="path"/> with raw key=value options (validated by the cluster).</summary>
    public async ValueTask<FsResult<MountInfo>> MountAsync(string path, string uri, IReadOnlyDictionary<string, string>? options = null, CancellationToken cancellationToken = default)
    {
        var result = await CallAsync(() => _grains.GetGrain<IMountTableGrain>(IMountTableGrain.Key).MountAsync(new MountRequest(path, uri, options ?? new Dictionary<string, string>())), $"mount {path}").ConfigureAwait(false);
        if (!result.IsOk)
        {
            return FsResult<MountInfo>.Fail(result.Status, result.Message);
        }

        var outcome = result.Value!;
        await RefreshMountsAsync(force: true, cancellationToken).ConfigureAwait(false);
        return outcome.Status == FsStatus.Ok ? FsResult<MountInfo>.Ok(outcome.Mount!) : FsResult<MountInfo>.Fail(outcome.Status, outcome.Message);
    }

    /// <summary>Removes the mount at <paramref name="path"/>.</summary>
    public async ValueTask<FsResult<MountInfo>> UnmountAsync(string path, CancellationToken cancellationToken = default)
    {
        var result = await CallAsync(() => _grains.GetGrain<IMountTableGrain>(IMountTableGrain.Key).UnmountAsync(path), $"unmount {path}").ConfigureAwait(false);
        if (!result.IsOk)
        {
            return FsResult<MountInfo>.Fail(result.Status, result.Message);
        }

        var outcome = result.Value!;
        if (outcome.Mount is { } removed)
        {
            _cache.ForgetMount(removed.Id);
        }

        await RefreshMountsAsync(force: true, cancellationToken).ConfigureAwait(false);
        return outcome.Status == FsStatus.Ok ? FsResult<MountInfo>.Ok(outcome.Mount!) : FsResult<MountInfo>.Fail(outcome.Status, outcome.Message);
    }

    private async ValueTask<FsResult<bool>> RefreshMountsAsync(bool force, CancellationToken cancellationToken)
    {
        await _refreshGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var table = _grains.GetGrain<IMountTableGrain>(IMountTableGrain.Key);
            if (!force && _mounts.Version >= 0)
            {
                var version = await CallAsync(() => table.GetVersionAsync(), "mount table").ConfigureAwait(false);
                if (!version.IsOk)
                {
                    return FsResult<bool>.Fail(version.Status, version.Message);
                }

                if (version.Value == _mounts.Version)
                {
                    return FsResult<bool>.Ok(false);
                }
            }

            var snapshot = await CallAsync(() => table.GetTableAsync(), "mount table").ConfigureAwait(false);
            if (!snapshot.IsOk)
            {
                return FsResult<bool>.Fail(snapshot.Status, snapshot.Message);
            }

            var old = _mounts;
            _mounts = snapshot.Value!;
            foreach (var gone in old.Mounts)
            {
                if (Array.FindIndex(_mounts.Mounts, m => m.Id == gone.Id) < 0)
                {
                    _cache.ForgetMount(gone.Id);
                }
            }

            return FsResult<bool>.Ok(old.Version != _mounts.Version);
        }
        finally
        {
            _refreshGate.Release();
        }
    }

    private async Task RefreshLoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.MountTableRefresh, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                var result = await RefreshMountsAsync(force: false, cancellationToken).ConfigureAwait(false);
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

    // ---------------------------------------------------------------- resolution

    private enum Place
    {
        Invalid,
        Root,
        Virtual,
        MountRoot,
        InMount,
        Missing,
    }

    private readonly record struct Resolved(Place Place, string Path, MountInfo? Mount, string Relative, FsStatus Status, string? Message);

    private async ValueTask<Resolved> ResolveAsync(string path, CancellationToken cancellationToken)
    {
        var status = FsPath.TryNormalize(path, out var normalized, out var error);
        if (status != FsStatus.Ok)
        {
            return new Resolved(Place.Invalid, path, null, string.Empty, status, error);
        }

        if (_mounts.Version < 0)
        {
            var refreshed = await RefreshMountsAsync(force: true, cancellationToken).ConfigureAwait(false);
            if (!refreshed.IsOk)
            {
                return new Resolved(Place.Invalid, normalized, null, string.Empty, refreshed.Status, refreshed.Message);
            }
        }

        var resolved = Match(normalized);
        if (resolved.Place == Place.Missing)
        {
            // Maybe mounted since we last looked, by another client: one version check (refreshes are serialised, so
            // this one starts after the lookup did and sees any mount that completed before it). The kernel's
            // negative entries and the callers' caches keep such lookups rare.
            var refreshed = await RefreshMountsAsync(force: false, cancellationToken).ConfigureAwait(false);
            if (refreshed.IsOk)
            {
                resolved = Match(normalized);
            }
        }

        return resolved;
    }

    private Resolved Match(string path)
    {
        if (path == FsPath.Root)
        {
            return new Resolved(Place.Root, path, null, string.Empty, FsStatus.Ok, null);
        }

        var isAncestor = false;
        foreach (var mount in _mounts.Mounts)
        {
            if (mount.Path == path)
            {
                return new Resolved(Place.MountRoot, path, mount, string.Empty, FsStatus.Ok, null);
            }

            if (FsPath.IsSameOrBelow(path, mount.Path))
            {
                return new Resolved(Place.InMount, path, mount, path[(mount.Path.Length + 1)..], FsStatus.Ok, null);
            }

            isAncestor |= FsPath.IsSameOrBelow(mount.Path, path);
        }

        return isAncestor
            ? new Resolved(Place.Virtual, path, null, string.Empty, FsStatus.Ok, null)
            : new Resolved(Place.Missing, path, null, string.Empty, FsStatus.NotFound, $"{path}: no such file or directory (not under any mount)");
    }

    private FsEntry VirtualDirectory(string name, DateTime mtime) => new(name, FsKind.Directory, 0, mtime, string.Empty, 0x1ED);

    private TimeSpan TtlFor(MountInfo mount)
    {
        var interval = mount.Options.SyncIntervalSeconds;
        return interval switch
        {
            < 0 => _options.MetadataTtl,
            0 => TimeSpan.Zero,
            _ => TimeSpan.FromSeconds(Math.Min(interval, _options.MetadataTtl.TotalSeconds)),
        };
    }

    // ---------------------------------------------------------------- stat and list

    /// <summary>The inode at <paramref name="path"/>: one grain call at most (to its parent directory), none when cached.</summary>
    public async ValueTask<FsResult<FsEntry>> StatAsync(string path, CancellationToken cancellationToken = default)
    {
        var started = Stopwatch.GetTimestamp();
        var resolved = await ResolveAsync(path, cancellationToken).ConfigureAwait(false);
        switch (resolved.Place)
        {
            case Place.Invalid:
            case Place.Missing:
                return FsResult<FsEntry>.Fail(resolved.Status, resolved.Message);
            case Place.Root:
                return FsResult<FsEntry>.Ok(VirtualDirectory("/", DateTime.UnixEpoch));
            case Place.Virtual:
                return FsResult<FsEntry>.Ok(VirtualDirectory(LastName(resolved.Path), DateTime.UnixEpoch));
            case Place.MountRoot:
                return FsResult<FsEntry>.Ok(VirtualDirectory(LastName(resolved.Path), resolved.Mount!.CreatedUtc) with { Mode = resolved.Mount.Options.Mode ?? 0x1ED });
        }

        if (_cache.TryGet(resolved.Path, out var cachedStatus, out var cachedEntry))
        {
            GrainFsMetrics.ClientCacheLookups.Add(1, Hit);
            return cachedStatus == FsStatus.Ok ? FsResult<FsEntry>.Ok(cachedEntry!) : FsResult<FsEntry>.Fail(cachedStatus, $"{resolved.Path}: {cachedStatus.Describe()}");
        }

        GrainFsMetrics.ClientCacheLookups.Add(1, Miss);
        var mount = resolved.Mount!;
        var (parent, name) = FsPath.SplitRelative(resolved.Relative);
        var redirects = 0;
        var refreshed = false;
        while (true)
        {
            var shards = _shards.TryGetValue((mount.Id, parent), out var known) ? known : 1;
            var key = new DirectoryKey(mount.Id, DirectoryKey.ShardOf(name, shards), parent);
            var call = await CallAsync(() => _grains.GetGrain<IDirectoryGrain>(key.ToString()).LookupAsync(name), resolved.Path).ConfigureAwait(false);
            if (!call.IsOk)
            {
                return FsResult<FsEntry>.Fail(call.Status, call.Message);
            }

            var result = call.Value!;
            RememberShards(mount.Id, parent, result.ShardCount);
            if (result.Status == FsStatus.Stale && result.ShardCount != shards && redirects++ < 3)
            {
                // Sharded (or re-split) since we last looked: the answer names the shard count, so ask the right shard.
                continue;
            }

            if (result.Status == FsStatus.Stale && !refreshed)
            {
                refreshed = true;
                await RefreshMountsAsync(force: true, cancellationToken).ConfigureAwait(false);
                resolved = Match(resolved.Path);
                if (resolved.Place != Place.InMount)
                {
                    return FsResult<FsEntry>.Fail(FsStatus.NotFound, $"{resolved.Path}: no such file or directory (unmounted)");
                }

                mount = resolved.Mount!;
                continue;
            }

            GrainFsMetrics.MetadataLatency.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds, new KeyValuePair<string, object?>("op", "stat"));
            if (result.Status is FsStatus.Ok or FsStatus.NotFound or FsStatus.NotADirectory)
            {
                _cache.Put(resolved.Path, result.Status, result.Entry, TtlFor(mount), mount.Id);
            }

            return result.Status == FsStatus.Ok
                ? FsResult<FsEntry>.Ok(result.Entry!)
                : FsResult<FsEntry>.Fail(result.Status, result.Message ?? $"{resolved.Path}: {result.Status.Describe()}");
        }
    }

    private void RememberShards(long mount, string directory, int count)
    {
        if (count > 1)
        {
            _shards[(mount, directory)] = count;
        }
        else
        {
            _shards.TryRemove((mount, directory), out _);
        }
    }

    /// <summary>
    /// One page of the directory at <paramref name="path"/>. Pass the returned cursor back for the next page;
    /// a null cursor in the result means the listing is complete. Entries come in name order within a shard.
    /// </summary>
    public async ValueTask<FsResult<DirectoryPage>> ListPageAsync(string path, string? cursor = null, int maxEntries = 0, CancellationToken cancellationToken = default)
    {
        var resolved = await ResolveAsync(path, cancellationToken).ConfigureAwait(false);
        switch (resolved.Place)
        {
            case Place.Invalid:
            case Place.Missing:
                return FsResult<DirectoryPage>.Fail(resolved.Status, resolved.Message);
            case Place.Root:
            case Place.Virtual:
                return FsResult<DirectoryPage>.Ok(new DirectoryPage(VirtualChildren(resolved.Path), null));
        }

        var mount = resolved.Mount!;
        var max = maxEntries > 0 ? maxEntries : _options.ListPageSize;
        var (shard, after) = ParseCursor(cursor);
        var directory = resolved.Relative;
        while (true)
        {
            var key = new DirectoryKey(mount.Id, shard, directory);
            var call = await CallAsync(() => _grains.GetGrain<IDirectoryGrain>(key.ToString()).ListAsync(after, max), resolved.Path).ConfigureAwait(false);
            if (!call.IsOk)
            {
                return FsResult<DirectoryPage>.Fail(call.Status, call.Message);
            }

            var page = call.Value!;
            if (page.Status != FsStatus.Ok)
            {
                if (page.Status == FsStatus.Stale)
                {
                    await RefreshMountsAsync(force: true, cancellationToken).ConfigureAwait(false);
                }

                return FsResult<DirectoryPage>.Fail(page.Status, page.Message ?? $"{resolved.Path}: {page.Status.Describe()}");
            }

            RememberShards(mount.Id, directory, page.ShardCount);
            var ttl = TtlFor(mount);
            foreach (var entry in page.Entries)
            {
                _cache.Put(FsPath.Combine(resolved.Path, entry.Name), FsStatus.Ok, entry, ttl, mount.Id);
            }

            string? next;
            if (page.NextAfter is not null)
            {
                next = FormatCursor(shard, page.NextAfter);
            }
            else if (page.ShardCount > 1 && shard < page.ShardCount)
            {
                // The head of a sharded directory (or a finished shard): continue with the next shard.
                next = FormatCursor(shard + 1, null);
            }
            else
            {
                next = null;
            }

            if (page.Entries.Length == 0 && next is not null)
            {
                (shard, after) = ParseCursor(next);
                continue;
            }

            return FsResult<DirectoryPage>.Ok(new DirectoryPage(page.Entries, next));
        }
    }

    /// <summary>Every entry of a directory, page by page. Throws <see cref="GrainFsException"/> when a page fails.</summary>
    public async IAsyncEnumerable<FsEntry> ListAsync(string path, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string? cursor = null;
        do
        {
            var page = await ListPageAsync(path, cursor, 0, cancellationToken).ConfigureAwait(false);
            var value = page.GetValueOrThrow();
            foreach (var entry in value.Entries)
            {
                yield return entry;
            }

            cursor = value.NextCursor;
        }
        while (cursor is not null);
    }

    private FsEntry[] VirtualChildren(string path)
    {
        var names = new SortedDictionary<string, FsEntry>(StringComparer.Ordinal);
        foreach (var mount in _mounts.Mounts)
        {
            if (!FsPath.IsSameOrBelow(mount.Path, path) || mount.Path == path)
            {
                continue;
            }

            var rest = path == FsPath.Root ? mount.Path[1..] : mount.Path[(path.Length + 1)..];
            var slash = rest.IndexOf('/');
            var name = slash < 0 ? rest : rest[..slash];
            var mtime = slash < 0 ? mount.CreatedUtc : DateTime.UnixEpoch;
            names.TryAdd(name, VirtualDirectory(name, mtime));
        }

        return [.. names.Values];
    }

    private static string FormatCursor(int shard, string? after) =>
        string.Create(CultureInfo.InvariantCulture, $"{shard}:{after}");

    private static (int Shard, string? After) ParseCursor(string? cursor)
    {
        if (cursor is null)
        {
            return (0, null);
        }

        var colon = cursor.IndexOf(':');
        if (colon < 0 || !int.TryParse(cursor.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out var shard))
        {
            throw new ArgumentException($"'{cursor}' is not a listing cursor returned by ListPageAsync", nameof(cursor));
        }

        var after = cursor[(colon + 1)..];
        return (shard, after.Length == 0 ? null : after);
    }

    private static string LastName(string path) => path == FsPath.Root ? "/" : path[(path.LastIndexOf('/') + 1)..];

    /// <summary>Calls a grain, turning cluster failures into EIO / ETIMEDOUT values that name what was asked.</summary>
    private async ValueTask<FsResult<T>> CallAsync<T>(Func<ValueTask<T>> call, string what)
    {
        try
        {
            return FsResult<T>.Ok(await call().ConfigureAwait(false));
        }
        catch (TimeoutException e)
        {
            LogCallFailed(_logger, what, e.Message);
            return FsResult<T>.Fail(FsStatus.TimedOut, $"{what}: the cluster did not answer in time");
        }
        catch (Exception e) when (e is OrleansException or SiloUnavailableException or InvalidOperationException or ObjectDisposedException)
        {
            LogCallFailed(_logger, what, e.Message);
            return FsResult<T>.Fail(FsStatus.IoError, $"{what}: cluster error: {e.Message}");
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
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

        if (_host is not null)
        {
            try
            {
                await _host.StopAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or OrleansException)
            {
                LogCallFailed(_logger, "disconnect", e.Message);
            }

            _host.Dispose();
        }

        _stop.Dispose();
        _refreshGate.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Mount table refresh failed: {Reason}")]
    private static partial void LogRefreshFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cluster call for {What} failed: {Reason}")]
    private static partial void LogCallFailed(ILogger logger, string what, string reason);
}

/// <summary>The cluster could not be reached.</summary>
public sealed class GrainFsConnectException(string message, Exception? inner) : Exception(message, inner);
