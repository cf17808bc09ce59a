using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using GrainFs.DataPlane;

namespace GrainFs.Client;

/// <summary>
/// The namespace side of the SDK: mounts, stat and paged listings. A stat costs at most one grain call (to the
/// parent directory, or the right shard of a sharded one), and none when the client's metadata cache holds the answer.
/// </summary>
public sealed class NamespaceClient
{
    private static readonly KeyValuePair<string, object?> Hit = new("result", "hit");
    private static readonly KeyValuePair<string, object?> Miss = new("result", "miss");
    private readonly GrainCalls _calls;
    private readonly MountResolver _mounts;
    private readonly GrainFsClientOptions _options;
    private readonly MetadataCache _cache;
    private readonly ConcurrentDictionary<(long Mount, string Path), int> _shards = new();

    // The version last built for an entry (its block keys take a SHA-256 to compute): reopening a file whose entry is
    // still cached builds nothing. Held only while the entry itself is (the metadata cache, a reader's inode).
    private readonly ConditionalWeakTable<FsEntry, FileVersion> _versions = new();

    internal NamespaceClient(GrainCalls calls, MountResolver mounts, GrainFsClientOptions options, TimeProvider time)
    {
        _calls = calls;
        _mounts = mounts;
        _options = options;
        _cache = new MetadataCache(options.MetadataCacheEntries, time);
        mounts.MountGone += _cache.ForgetMount;
    }

    /// <summary>Entries in the client metadata cache.</summary>
    public int CachedEntries => _cache.Count;

    private IMountTableGrain Table => _calls.Grains.GetGrain<IMountTableGrain>(IMountTableGrain.Key);

    // ---------------------------------------------------------------- mounts

    /// <summary>The mount table; <paramref name="refresh"/> asks the cluster instead of the cached copy.</summary>
    public async ValueTask<FsResult<MountTableSnapshot>> GetMountsAsync(bool refresh = false, CancellationToken cancellationToken = default)
    {
        var status = await _mounts.RefreshAsync(refresh, cancellationToken).ConfigureAwait(false);
        return status.Status == FsStatus.Ok ? FsResult<MountTableSnapshot>.Ok(_mounts.Current) : FsResult<MountTableSnapshot>.Fail(status.Status, status.Message);
    }

    /// <summary>Mounts <paramref name="uri"/> at <paramref name="path"/> with raw key=value options (validated by the cluster).</summary>
    public async ValueTask<FsResult<MountInfo>> MountAsync(string path, string uri, IReadOnlyDictionary<string, string>? options = null, CancellationToken cancellationToken = default)
    {
        var result = await _calls.CallAsync(() => Table.MountAsync(new MountRequest(path, uri, options ?? new Dictionary<string, string>())), $"mount {path}").ConfigureAwait(false);
        if (!result.IsOk)
        {
            return FsResult<MountInfo>.Fail(result.Status, result.Message);
        }

        var outcome = result.Value!;
        await _mounts.RefreshAsync(force: true, cancellationToken).ConfigureAwait(false);
        return outcome.Status == FsStatus.Ok ? FsResult<MountInfo>.Ok(outcome.Mount!) : FsResult<MountInfo>.Fail(outcome.Status, outcome.Message);
    }

    /// <summary>Removes the mount at <paramref name="path"/>.</summary>
    public async ValueTask<FsResult<MountInfo>> UnmountAsync(string path, CancellationToken cancellationToken = default)
    {
        var result = await _calls.CallAsync(() => Table.UnmountAsync(path), $"unmount {path}").ConfigureAwait(false);
        if (!result.IsOk)
        {
            return FsResult<MountInfo>.Fail(result.Status, result.Message);
        }

        var outcome = result.Value!;
        if (outcome.Mount is { } removed)
        {
            _cache.ForgetMount(removed.Id);
        }

        await _mounts.RefreshAsync(force: true, cancellationToken).ConfigureAwait(false);
        return outcome.Status == FsStatus.Ok ? FsResult<MountInfo>.Ok(outcome.Mount!) : FsResult<MountInfo>.Fail(outcome.Status, outcome.Message);
    }

    /// <summary>Sets who may read and write the mount at <paramref name="path"/> (null leaves a list as it is; '*' is every authenticated identity). Admins only.</summary>
    public async ValueTask<FsResult<MountInfo>> SetAccessAsync(string path, IReadOnlyList<string>? readers, IReadOnlyList<string>? writers, CancellationToken cancellationToken = default)
    {
        var result = await _calls.CallAsync(() => Table.SetAccessAsync(path, readers, writers), $"acl {path}").ConfigureAwait(false);
        if (!result.IsOk)
        {
            return FsResult<MountInfo>.Fail(result.Status, result.Message);
        }

        await _mounts.RefreshAsync(force: true, cancellationToken).ConfigureAwait(false);
        var outcome = result.Value!;
        return outcome.Status == FsStatus.Ok ? FsResult<MountInfo>.Ok(outcome.Mount!) : FsResult<MountInfo>.Fail(outcome.Status, outcome.Message);
    }

    // ---------------------------------------------------------------- stat and list

    /// <summary>
    /// The inode at <paramref name="path"/>: one grain call at most (to its parent directory), none when cached. A path
    /// ending in '/' names a directory (as in POSIX): a file there is ENOTDIR.
    /// </summary>
    public async ValueTask<FsResult<FsEntry>> StatAsync(string path, CancellationToken cancellationToken = default)
    {
        var stat = await StatEntryAsync(path, cancellationToken).ConfigureAwait(false);
        return stat.IsOk && !stat.Value!.IsDirectory && NamesDirectory(path) ? FsResult<FsEntry>.Fail(FsStatus.NotADirectory, $"{path}: not a directory") : stat;
    }

    /// <summary>A path with a trailing '/' (not the root) names a directory.</summary>
    private static bool NamesDirectory(string path) => path.Length > 1 && path[^1] == '/';

    private async ValueTask<FsResult<FsEntry>> StatEntryAsync(string path, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var resolved = await _mounts.ResolveAsync(path, cancellationToken).ConfigureAwait(false);
        switch (resolved.Place)
        {
            case PathPlace.Invalid:
            case PathPlace.Missing:
                return FsResult<FsEntry>.Fail(resolved.Status, resolved.Message);
            case PathPlace.Root:
                return FsResult<FsEntry>.Ok(MountResolver.VirtualDirectory("/", DateTime.UnixEpoch));
            case PathPlace.Virtual:
                return FsResult<FsEntry>.Ok(MountResolver.VirtualDirectory(LastName(resolved.Path), DateTime.UnixEpoch));
            case PathPlace.MountRoot:
                return FsResult<FsEntry>.Ok(MountResolver.VirtualDirectory(LastName(resolved.Path), resolved.Mount!.CreatedUtc) with { Mode = resolved.Mount.Options.Mode ?? 0x1ED });
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
            var call = await WhileListingAsync(() => _calls.RetriedCallAsync(() => _calls.Grains.GetGrain<IDirectoryGrain>(key.ToString()).LookupAsync(name), resolved.Path, cancellationToken), r => r.Status, cancellationToken).ConfigureAwait(false);
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
                await _mounts.RefreshAsync(force: true, cancellationToken).ConfigureAwait(false);
                resolved = _mounts.Match(resolved.Path);
                if (resolved.Place != PathPlace.InMount)
                {
                    return FsResult<FsEntry>.Fail(FsStatus.NotFound, $"{resolved.Path}: no such file or directory (unmounted)");
                }

                mount = resolved.Mount!;
                continue;
            }

            GrainFsMetrics.MetadataLatency.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds, new KeyValuePair<string, object?>("op", "stat"));
            if (result.MissingDirectory is { Length: > 0 } missing)
            {
                // Not cached: the answer is the parent's, which a file made or removed at the parent's path changes.
                var (status, message) = await ResolveMissingDirectoryAsync(mount, missing, result, cancellationToken).ConfigureAwait(false);
                return FsResult<FsEntry>.Fail(status, message);
            }

            if (result.Status is FsStatus.Ok or FsStatus.NotFound or FsStatus.NotADirectory)
            {
                _cache.Put(resolved.Path, result.Status, result.Entry, TtlFor(mount), mount.Id);
            }

            return result.Status == FsStatus.Ok
                ? FsResult<FsEntry>.Ok(result.Entry!)
                : FsResult<FsEntry>.Fail(result.Status, result.Message ?? $"{resolved.Path}: {result.Status.Describe()}");
        }
    }

    /// <summary>
    /// One page of the directory at <paramref name="path"/>. Pass the returned cursor back for the next page;
    /// a null cursor in the result means the listing is complete. Entries come in name order within a shard.
    /// </summary>
    public async ValueTask<FsResult<DirectoryPage>> ListPageAsync(string path, string? cursor = null, int maxEntries = 0, CancellationToken cancellationToken = default)
    {
        var resolved = await _mounts.ResolveAsync(path, cancellationToken).ConfigureAwait(false);
        switch (resolved.Place)
        {
            case PathPlace.Invalid:
            case PathPlace.Missing:
                return FsResult<DirectoryPage>.Fail(resolved.Status, resolved.Message);
            case PathPlace.Root:
            case PathPlace.Virtual:
                return FsResult<DirectoryPage>.Ok(new DirectoryPage(_mounts.VirtualChildren(resolved.Path), null));
        }

        var mount = resolved.Mount!;
        var max = maxEntries > 0 ? maxEntries : _options.ListPageSize;
        var (shard, after) = ParseCursor(cursor);
        var directory = resolved.Relative;
        while (true)
        {
            var key = new DirectoryKey(mount.Id, shard, directory);
            var call = await WhileListingAsync(() => _calls.RetriedCallAsync(() => _calls.Grains.GetGrain<IDirectoryGrain>(key.ToString()).ListAsync(after, max), resolved.Path, cancellationToken), p => p.Status, cancellationToken).ConfigureAwait(false);
            if (!call.IsOk)
            {
                return FsResult<DirectoryPage>.Fail(call.Status, call.Message);
            }

            var page = call.Value!;
            if (page.Status != FsStatus.Ok)
            {
                if (page.Status == FsStatus.Stale)
                {
                    await _mounts.RefreshAsync(force: true, cancellationToken).ConfigureAwait(false);
                }

                if (page.Status is FsStatus.NotFound or FsStatus.NotADirectory && directory.Length > 0)
                {
                    var (status, message) = await ResolveMissingDirectoryAsync(mount, directory, new LookupResult(page.Status, null, 1, page.Message), cancellationToken).ConfigureAwait(false);
                    return FsResult<DirectoryPage>.Fail(status, message);
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

    /// <summary>
    /// Makes a directory grain call, asking again while the directory answers EBUSY (it is still being listed from
    /// under-storage: the grain answers within a few seconds however long the listing takes), for up to
    /// <see cref="GrainFsClientOptions.DirectorySyncTimeout"/>; then ETIMEDOUT naming the directory's last answer.
    /// </summary>
    private async ValueTask<FsResult<T>> WhileListingAsync<T>(Func<ValueTask<FsResult<T>>> call, Func<T, FsStatus> statusOf, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var pause = TimeSpan.FromMilliseconds(50);
        while (true)
        {
            var result = await call().ConfigureAwait(false);
            if (!result.IsOk || statusOf(result.Value!) != FsStatus.Busy)
            {
                return result;
            }

            if (Stopwatch.GetElapsedTime(started) >= _options.DirectorySyncTimeout)
            {
                return FsResult<T>.Fail(FsStatus.TimedOut, $"{MessageOf(result.Value!)} after {_options.DirectorySyncTimeout.TotalSeconds:F0} s (DirectorySyncTimeout)");
            }

            await Task.Delay(pause, cancellationToken).ConfigureAwait(false);
            pause = TimeSpan.FromMilliseconds(Math.Min(1000, pause.TotalMilliseconds * 2));
        }
    }

    private static string? MessageOf<T>(T answer) => answer switch
    {
        LookupResult lookup => lookup.Message,
        ListPage page => page.Message,
        _ => null,
    };

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

    // ---------------------------------------------------------------- file versions

    /// <summary>The version of the file at <paramref name="path"/> (EISDIR for a directory), as the block layer needs it.</summary>
    public async ValueTask<FsResult<FileVersion>> VersionOfAsync(string path, CancellationToken cancellationToken)
    {
        if (NamesDirectory(path) && FsPath.TryNormalize(path, out _, out _) == FsStatus.Ok)
        {
            // A file is never opened by a name that says directory.
            var named = await StatAsync(path, cancellationToken).ConfigureAwait(false);
            return FsResult<FileVersion>.Fail(named.IsOk ? FsStatus.IsADirectory : named.Status, named.IsOk ? $"{path}: is a directory" : named.Message);
        }

        var resolved = await _mounts.ResolveAsync(path, cancellationToken).ConfigureAwait(false);
        if (resolved.Place != PathPlace.InMount)
        {
            return resolved.Place is PathPlace.Invalid or PathPlace.Missing
                ? FsResult<FileVersion>.Fail(resolved.Status, resolved.Message)
                : FsResult<FileVersion>.Fail(FsStatus.IsADirectory, $"{resolved.Path}: is a directory");
        }

        var stat = await StatAsync(resolved.Path, cancellationToken).ConfigureAwait(false);
        if (!stat.IsOk)
        {
            return FsResult<FileVersion>.Fail(stat.Status, stat.Message);
        }

        var entry = stat.Value!;
        if (entry.IsDirectory)
        {
            return FsResult<FileVersion>.Fail(FsStatus.IsADirectory, $"{resolved.Path}: is a directory");
        }

        if (!_versions.TryGetValue(entry, out var version) || !ReferenceEquals(version.Mount, resolved.Mount) || !string.Equals(version.Path, resolved.Path, StringComparison.Ordinal))
        {
            version = new FileVersion(resolved.Mount!, resolved.Path, resolved.Relative, entry);
            _versions.AddOrUpdate(entry, version);
        }

        return FsResult<FileVersion>.Ok(version);
    }

    /// <summary>Every file at or under <paramref name="path"/>, with its version.</summary>
    public async Task<FsResult<List<FileVersion>>> FilesUnderAsync(string path, CancellationToken cancellationToken)
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
            var resolved = await _mounts.ResolveAsync(directory, cancellationToken).ConfigureAwait(false);
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

    // ---------------------------------------------------------------- writes (routing and cache upkeep)

    /// <summary>Forgets what this client cached of <paramref name="path"/> (and, for a directory, under it): it changed it.</summary>
    internal void Changed(string path, bool subtree = false)
    {
        if (subtree)
        {
            _cache.ForgetUnder(path);
        }
        else
        {
            _cache.Forget(path);
        }
    }

    /// <summary>
    /// Calls the directory grain holding the child <paramref name="relative"/> of <paramref name="mount"/> (the right shard of a
    /// sharded directory, learning the shard count from a Stale answer as lookups do); cluster failures come back as EIO.
    /// With <paramref name="retried"/> (a call that may be made twice with the same effect: a commit of a written version)
    /// it is made again when its answer is lost (<see cref="GrainCalls.RetriedCallAsync{T}"/>).
    /// </summary>
    internal async ValueTask<LookupResult> CallDirectoryAsync(MountInfo mount, string relative, string display, Func<IDirectoryGrain, string, ValueTask<LookupResult>> call, bool retried = false)
    {
        var (parent, name) = FsPath.SplitRelative(relative);
        for (var redirects = 0; ; redirects++)
        {
            var key = DirectoryKeyOf(mount.Id, parent, name);
            var grain = _calls.Grains.GetGrain<IDirectoryGrain>(key.ToString());
            var result = retried
                ? await _calls.RetriedCallAsync(() => call(grain, name), display).ConfigureAwait(false)
                : await _calls.CallAsync(() => call(grain, name), display).ConfigureAwait(false);
            if (!result.IsOk)
            {
                return new LookupResult(result.Status, null, 1, result.Message);
            }

            var answer = result.Value!;
            var known = _shards.TryGetValue((mount.Id, parent), out var count) ? count : 1;
            RememberShards(mount.Id, parent, answer.ShardCount);
            if (answer.Status == FsStatus.Stale && answer.ShardCount != known && redirects < 3)
            {
                continue;
            }

            if (answer.MissingDirectory is { Length: > 0 } missing)
            {
                var (status, message) = await ResolveMissingDirectoryAsync(mount, missing, answer, CancellationToken.None).ConfigureAwait(false);
                return answer with { Status = status, Message = message };
            }

            return answer;
        }
    }

    /// <summary>
    /// A directory grain that says it is missing or not a directory answers from its last listing, which a later change of
    /// its parent (a file made or removed at its path) does not reach. Its parent's entry decides, as path resolution does
    /// in the kernel: a path through a file is ENOTDIR, a path through nothing ENOENT.
    /// </summary>
    private async ValueTask<(FsStatus Status, string? Message)> ResolveMissingDirectoryAsync(MountInfo mount, string directory, LookupResult answer, CancellationToken cancellationToken)
    {
        var path = FsPath.Combine(mount.Path, directory);
        var stat = await StatAsync(path, cancellationToken).ConfigureAwait(false);
        if (stat.IsOk)
        {
            return stat.Value!.IsDirectory ? (answer.Status, answer.Message) : (FsStatus.NotADirectory, $"{path}: not a directory");
        }

        return stat.Status is FsStatus.NotFound or FsStatus.NotADirectory ? (stat.Status, stat.Message) : (answer.Status, answer.Message);
    }

    /// <summary>The key of the directory grain (shard) that holds <paramref name="name"/> of <paramref name="parent"/>, as far as this client knows.</summary>
    internal DirectoryKey DirectoryKeyOf(long mountId, string parent, string name)
    {
        var shards = _shards.TryGetValue((mountId, parent), out var known) ? known : 1;
        return new DirectoryKey(mountId, DirectoryKey.ShardOf(name, shards), parent);
    }

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
}
