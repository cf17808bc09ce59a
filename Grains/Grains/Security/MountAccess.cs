using GrainFs.DataPlane.Security;

namespace GrainFs.Grains.Security;

/// <summary>
/// Who may read and write each mount (mount options readers= and writers=, or <c>grainfs fs acl</c>), cached on every
/// silo from the mount table by version. A cached copy is used as it is and refreshed in the background when older than
/// <see cref="RefreshAfter"/>; an unknown mount id waits for a refresh, so a new mount or a new grant applies at once
/// and a revocation within <see cref="RefreshAfter"/>.
/// </summary>
public sealed class MountAccess(IGrainFactory grains)
{
    /// <summary>How stale the cached table may get before a refresh.</summary>
    public static readonly TimeSpan RefreshAfter = TimeSpan.FromSeconds(2);

    private readonly Lock _gate = new();
    private Table _table = new(-1, new Dictionary<long, MountInfo>(), DateTimeOffset.MinValue);
    private Task? _refresh;

    /// <summary>Null when <paramref name="principal"/> may read (or, with <paramref name="write"/>, write) mount <paramref name="mountId"/>; else why not.</summary>
    public async ValueTask<string?> CheckAsync(Principal principal, long mountId, bool write)
    {
        if (principal.IsAdmin)
        {
            return null;
        }

        var table = _table;
        if (DateTimeOffset.UtcNow - table.Loaded > RefreshAfter)
        {
            _ = RefreshAsync();
        }

        if (!table.Mounts.TryGetValue(mountId, out var mount) || Decide(principal, mount, write) is not null)
        {
            // A mount made or a right granted since the last refresh: look again before refusing.
            await RefreshAsync().ConfigureAwait(false);
            table = _table;
            if (!table.Mounts.TryGetValue(mountId, out mount))
            {
                return $"mount {mountId} does not exist";
            }
        }

        return Decide(principal, mount, write);
    }

    /// <summary>Null when <paramref name="principal"/> may see changes under <paramref name="mountId"/> (cached table only).</summary>
    public bool MayRead(Principal principal, long mountId) =>
        principal.IsAdmin || (_table.Mounts.TryGetValue(mountId, out var mount) && Decide(principal, mount, write: false) is null);

    /// <summary>True when <paramref name="principal"/> may read the mount holding namespace path <paramref name="path"/> (cached table only).</summary>
    public bool MayReadPath(Principal principal, string path)
    {
        if (principal.IsAdmin)
        {
            return true;
        }

        var table = _table;
        if (DateTimeOffset.UtcNow - table.Loaded > RefreshAfter)
        {
            _ = RefreshAsync();
        }

        MountInfo? best = null;
        foreach (var mount in table.Mounts.Values)
        {
            if ((path == mount.Path || path.StartsWith(mount.Path + "/", StringComparison.Ordinal)) && (best is null || mount.Path.Length > best.Path.Length))
            {
                best = mount;
            }
        }

        return best is not null && Decide(principal, best, write: false) is null;
    }

    /// <summary>Null when allowed, else the reason naming the mount and who holds the right.</summary>
    public static string? Decide(Principal principal, MountInfo mount, bool write)
    {
        if (principal.IsAdmin)
        {
            return null;
        }

        var writers = mount.Options.Writers ?? [];
        var readers = mount.Options.Readers ?? [];
        var allowed = Grants(writers, principal.Name) || (!write && Grants(readers, principal.Name));
        if (allowed)
        {
            return null;
        }

        var holders = write ? writers : [.. readers, .. writers];
        return $"{principal.Name} may not {(write ? "write" : "read")} {mount.Path} (it grants {(write ? "writers" : "readers")}: {(holders.Count == 0 ? "admins only" : string.Join(", ", holders.Distinct(StringComparer.Ordinal)))})";
    }

    private static bool Grants(IReadOnlyList<string> names, string name)
    {
        foreach (var n in names)
        {
            if (n == "*" || string.Equals(n, name, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    private Task RefreshAsync()
    {
        lock (_gate)
        {
            if (_refresh is { IsCompleted: false } running)
            {
                return running;
            }

            _refresh = LoadAsync();
            return _refresh;
        }
    }

    private async Task LoadAsync()
    {
        try
        {
            await LoadTableAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is OrleansException or TimeoutException)
        {
            // The mount table is unreachable for now: decisions use the table already cached; the next call retries.
        }
    }

    private async Task LoadTableAsync()
    {
        var mountTable = grains.GetGrain<IMountTableGrain>(IMountTableGrain.Key);
        var version = await mountTable.GetVersionAsync().ConfigureAwait(false);
        if (version == _table.Version)
        {
            _table = _table with { Loaded = DateTimeOffset.UtcNow };
            return;
        }

        var snapshot = await mountTable.GetTableAsync().ConfigureAwait(false);
        _table = new Table(snapshot.Version, snapshot.Mounts.ToDictionary(m => m.Id), DateTimeOffset.UtcNow);
    }

    private sealed record Table(long Version, Dictionary<long, MountInfo> Mounts, DateTimeOffset Loaded);
}
