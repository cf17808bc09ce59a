using GrainFs.DataPlane.Blocks;

namespace GrainFs.Client;

/// <summary>
/// The client's copy of the cluster: silos with their data ports, tier folders and roles. Block homes are
/// computed from it (rendezvous hashing over gpu-role silos), so finding a warm block asks no grain. Refreshed
/// in the background and whenever a silo stops answering.
/// </summary>
internal sealed class ClusterView(IGrainFactory grains, TimeProvider time)
{
    internal static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan SuspicionTime = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan RefreshTimeout = TimeSpan.FromSeconds(5);
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> _suspects = new(StringComparer.Ordinal);
    private Snapshot _current = new([], [], [], 0);

    internal sealed record Snapshot(SiloInfo[] Silos, SiloInfo[] Homes, string[] HomeNames, long FetchedTicks);

    /// <summary>The current view, fetched when older than 10 s.</summary>
    public async ValueTask<Snapshot> GetAsync(CancellationToken cancellationToken = default)
    {
        var current = _current;
        if (current.Silos.Length > 0 && time.GetUtcNow().UtcTicks - current.FetchedTicks < MaxAge.Ticks)
        {
            return current;
        }

        return await RefreshAsync(current.FetchedTicks, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Fetches a new view unless one newer than <paramref name="staleTicks"/> arrived meanwhile.</summary>
    public async ValueTask<Snapshot> RefreshAsync(long staleTicks, CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_current.FetchedTicks > staleTicks && _current.Silos.Length > 0)
            {
                return _current;
            }

            SiloInfo[] silos;
            try
            {
                // Bounded: during a failover the call may go to a silo that just died; the old view is better than a stall.
                silos = await grains.GetGrain<IClusterGrain>(0).GetSilosAsync().AsTask().WaitAsync(RefreshTimeout, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is TimeoutException or OrleansException or SiloUnavailableException && _current.Silos.Length > 0)
            {
                return _current;
            }

            SiloInfo[] homes = [.. BlockHomes.Candidates(silos, s => s.Roles)];
            _current = new Snapshot(silos, homes, Array.ConvertAll(homes, h => h.Name), time.GetUtcNow().UtcTicks);
            return _current;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>A silo whose data port failed: blocks are homed elsewhere for a while (the cluster will declare it dead soon).</summary>
    public void Suspect(string siloName) => _suspects[siloName] = time.GetUtcNow().UtcTicks + SuspicionTime.Ticks;

    /// <summary>True while <paramref name="siloName"/> is suspected (its data port failed within <see cref="SuspicionTime"/>).</summary>
    public bool IsSuspected(string siloName) =>
        !_suspects.IsEmpty && _suspects.TryGetValue(siloName, out var until) && until > time.GetUtcNow().UtcTicks;

    /// <summary>The home silo of a block in a view (leaving out suspected silos while others remain), or null when the view has no silo.</summary>
    public SiloInfo? Home(Snapshot view, BlockKey key)
    {
        if (!_suspects.IsEmpty)
        {
            var now = time.GetUtcNow().UtcTicks;
            foreach (var (name, until) in _suspects)
            {
                if (until <= now)
                {
                    // Suspicion over: forgotten, so reads stop paying for this filter once no silo is suspected.
                    _suspects.TryRemove(KeyValuePair.Create(name, until));
                }
            }

            var names = new List<string>(view.HomeNames.Length);
            var homes = new List<SiloInfo>(view.Homes.Length);
            foreach (var home in view.Homes)
            {
                if (_suspects.TryGetValue(home.Name, out var until) && until > now)
                {
                    continue;
                }

                names.Add(home.Name);
                homes.Add(home);
            }

            if (homes.Count > 0 && homes.Count < view.Homes.Length)
            {
                return homes[Rendezvous.Pick(key, names)];
            }
        }

        var index = Rendezvous.Pick(key, view.HomeNames);
        return index < 0 ? null : view.Homes[index];
    }
}
