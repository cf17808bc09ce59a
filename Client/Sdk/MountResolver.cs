namespace GrainFs.Client;

/// <summary>Where a path lies: the virtual root, a directory above mounts, a mount root, a path inside a mount, nowhere.</summary>
public enum PathPlace
{
    /// <summary>Not a valid path.</summary>
    Invalid,

    /// <summary>The virtual root "/".</summary>
    Root,

    /// <summary>A directory above one or more mounts (it holds only mount points).</summary>
    Virtual,

    /// <summary>A mount point.</summary>
    MountRoot,

    /// <summary>Inside a mount.</summary>
    InMount,

    /// <summary>Under no mount.</summary>
    Missing,
}

/// <summary>A path resolved against the mount table.</summary>
/// <param name="Place">Where it lies.</param>
/// <param name="Path">The normalized path.</param>
/// <param name="Mount">Its mount (mount roots and paths in mounts).</param>
/// <param name="Relative">The path relative to the mount root ("" at the root).</param>
/// <param name="Status">Ok, or why it could not be resolved.</param>
/// <param name="Message">The reason, naming the path.</param>
public readonly record struct ResolvedPath(PathPlace Place, string Path, MountInfo? Mount, string Relative, FsStatus Status, string? Message);

/// <summary>
/// The client's copy of the mount table, with its version, and path resolution against it: resolving costs no grain
/// call. The version is checked in the background (by the SDK's refresh loop) and whenever a path is under no known
/// mount, so a mount made by another client is seen by the next lookup.
/// </summary>
public sealed class MountResolver
{
    private readonly GrainCalls _calls;
    private readonly SemaphoreSlim _refreshGate = new(1, 1);
    private MountTableSnapshot _mounts = new(-1, []);

    internal MountResolver(GrainCalls calls)
    {
        _calls = calls;
    }

    /// <summary>Raised with a mount's id when it disappears from the table (its cached entries must go).</summary>
    internal event Action<long>? MountGone;

    /// <summary>The table as last fetched.</summary>
    public MountTableSnapshot Current => _mounts;

    private IMountTableGrain Table => _calls.Grains.GetGrain<IMountTableGrain>(IMountTableGrain.Key);

    /// <summary>Fetches the table when its version changed (or always, with <paramref name="force"/>); true when it changed.</summary>
    public async ValueTask<FsResult<bool>> RefreshAsync(bool force, CancellationToken cancellationToken)
    {
        await _refreshGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!force && _mounts.Version >= 0)
            {
                var version = await _calls.RetriedCallAsync(() => Table.GetVersionAsync(), "mount table").ConfigureAwait(false);
                if (!version.IsOk)
                {
                    return FsResult<bool>.Fail(version.Status, version.Message);
                }

                if (version.Value == _mounts.Version)
                {
                    return FsResult<bool>.Ok(false);
                }
            }

            var snapshot = await _calls.RetriedCallAsync(() => Table.GetTableAsync(), "mount table").ConfigureAwait(false);
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
                    MountGone?.Invoke(gone.Id);
                }
            }

            return FsResult<bool>.Ok(old.Version != _mounts.Version);
        }
        finally
        {
            _refreshGate.Release();
        }
    }

    /// <summary>Resolves a path; a path under no known mount checks the table's version once before it is called missing.</summary>
    public async ValueTask<ResolvedPath> ResolveAsync(string path, CancellationToken cancellationToken)
    {
        var status = FsPath.TryNormalize(path, out var normalized, out var error);
        if (status != FsStatus.Ok)
        {
            return new ResolvedPath(PathPlace.Invalid, path, null, string.Empty, status, error);
        }

        if (_mounts.Version < 0)
        {
            var refreshed = await RefreshAsync(force: true, cancellationToken).ConfigureAwait(false);
            if (!refreshed.IsOk)
            {
                return new ResolvedPath(PathPlace.Invalid, normalized, null, string.Empty, refreshed.Status, refreshed.Message);
            }
        }

        var resolved = Match(normalized);
        if (resolved.Place == PathPlace.Missing)
        {
            // Maybe mounted since we last looked, by another client: one version check (refreshes are serialised, so
            // this one starts after the lookup did and sees any mount that completed before it). The kernel's
            // negative entries and the callers' caches keep such lookups rare.
            var refreshed = await RefreshAsync(force: false, cancellationToken).ConfigureAwait(false);
            if (refreshed.IsOk)
            {
                resolved = Match(normalized);
            }
        }

        return resolved;
    }

    /// <summary>Resolves a normalized path against the table as it is.</summary>
    public ResolvedPath Match(string path)
    {
        if (path == FsPath.Root)
        {
            return new ResolvedPath(PathPlace.Root, path, null, string.Empty, FsStatus.Ok, null);
        }

        var isAncestor = false;
        foreach (var mount in _mounts.Mounts)
        {
            if (mount.Path == path)
            {
                return new ResolvedPath(PathPlace.MountRoot, path, mount, string.Empty, FsStatus.Ok, null);
            }

            if (FsPath.IsSameOrBelow(path, mount.Path))
            {
                return new ResolvedPath(PathPlace.InMount, path, mount, path[(mount.Path.Length + 1)..], FsStatus.Ok, null);
            }

            isAncestor |= FsPath.IsSameOrBelow(mount.Path, path);
        }

        return isAncestor
            ? new ResolvedPath(PathPlace.Virtual, path, null, string.Empty, FsStatus.Ok, null)
            : new ResolvedPath(PathPlace.Missing, path, null, string.Empty, FsStatus.NotFound, $"{path}: no such file or directory (not under any mount)");
    }

    /// <summary>The children of the root or of a directory above mounts: the next component of every mount below it.</summary>
    public FsEntry[] VirtualChildren(string path)
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

    /// <summary>A directory that exists only in the namespace (the root, directories above mounts).</summary>
    public static FsEntry VirtualDirectory(string name, DateTime mtime) => new(name, FsKind.Directory, 0, mtime, string.Empty, 0x1ED);
}
