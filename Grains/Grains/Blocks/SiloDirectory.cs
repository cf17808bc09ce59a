using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Orleans.Runtime.MembershipService.SiloMetadata;

namespace GrainFs.Grains.Blocks;

/// <summary>
/// The GrainFS metadata of every silo (name, host, roles, data port, tiers), for placement and for the clients' cluster
/// view. Orleans' metadata cache fetches a silo's metadata once, when a membership change shows it joining; if that
/// fetch fails (the silo is still starting) it is not tried again until some later membership change, and a cluster
/// that is quiet then never learns the metadata of a silo that was restarted: no block home, no worker, no data port
/// for it. Here a silo missing from that cache is asked by its worker grain (placed by the silo's name from the
/// membership table), at most every <see cref="AskInterval"/>, and its answer kept while the silo is a member.
/// </summary>
public sealed partial class SiloDirectory(ISiloMetadataCache cache, ISiloStatusOracle membership, IGrainFactory grains, ILogger<SiloDirectory> logger)
{
    /// <summary>How often a silo whose metadata is missing is asked again.</summary>
    public static readonly TimeSpan AskInterval = TimeSpan.FromSeconds(2);

    private static readonly IReadOnlyDictionary<string, string> None = new Dictionary<string, string>();
    private readonly ConcurrentDictionary<SiloAddress, IReadOnlyDictionary<string, string>> _asked = new();
    private readonly ConcurrentDictionary<SiloAddress, long> _lastAsked = new();

    /// <summary>The metadata of <paramref name="silo"/>; empty while unknown (then asked for in the background).</summary>
    public IReadOnlyDictionary<string, string> MetadataOf(SiloAddress silo)
    {
        var data = cache.GetSiloMetadata(silo).Metadata;
        if (data.Count > 0)
        {
            return data;
        }

        if (_asked.TryGetValue(silo, out var known))
        {
            return known;
        }

        Ask(silo);
        return None;
    }

    /// <summary>
    /// The active silo named <paramref name="name"/> in the membership table, or null. Placement by name asks this first:
    /// a silo started again is active (and named) in the membership view before this silo has fetched its grain manifest,
    /// and until then Orleans does not count it among the silos compatible with a grain type.
    /// </summary>
    public SiloAddress? ActiveSiloNamed(string name)
    {
        foreach (var silo in membership.GetApproximateSiloStatuses(onlyActive: true).Keys)
        {
            if (membership.TryGetSiloName(silo, out var named) && named == name)
            {
                return silo;
            }
        }

        return null;
    }

    private readonly ConcurrentDictionary<string, bool> _draining = new(StringComparer.Ordinal);

    /// <summary>Marks silo <paramref name="name"/> as being drained (it takes no new files) or not.</summary>
    public void SetDraining(string name, bool draining)
    {
        if (draining)
        {
            _draining[name] = true;
        }
        else
        {
            _draining.TryRemove(name, out _);
        }
    }

    /// <summary>True while silo <paramref name="name"/> is being drained, as far as this silo was told.</summary>
    public bool IsDraining(string name) => !_draining.IsEmpty && _draining.ContainsKey(name);

    /// <summary>The silo's GrainFS name: from the membership table (always there), else its metadata.</summary>
    public string? NameOf(SiloAddress silo) =>
        membership.TryGetSiloName(silo, out var name) ? name : MetadataOf(silo).GetValueOrDefault(SiloMetadataKeys.Silo);

    private void Ask(SiloAddress silo)
    {
        var now = Environment.TickCount64;
        if (_lastAsked.TryGetValue(silo, out var last) && now - last < AskInterval.TotalMilliseconds)
        {
            return;
        }

        _lastAsked[silo] = now;
        if (!membership.TryGetSiloName(silo, out var name))
        {
            return;
        }

        _ = AskAsync(silo, name);
    }

    private async Task AskAsync(SiloAddress silo, string name)
    {
        try
        {
            var data = await grains.GetGrain<IWorkerGrain>(name).GetMetadataAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);

            // A stand-in worker (the silo was gone when the call was placed) answers with its own silo's metadata.
            if (data.GetValueOrDefault(SiloMetadataKeys.Silo) == name && !membership.IsDeadSilo(silo))
            {
                _asked[silo] = data;
                LogFilled(logger, name, silo);
            }
        }
        catch (Exception e) when (e is OrleansException or TimeoutException or SiloUnavailableException)
        {
            LogAskFailed(logger, name, e.Message);
        }

        // Silos that left are forgotten.
        foreach (var gone in _asked.Keys.Where(membership.IsDeadSilo))
        {
            _asked.TryRemove(gone, out _);
            _lastAsked.TryRemove(gone, out _);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Silo metadata of {Name} ({Silo}) learned from its worker (the Orleans metadata cache had missed it)")]
    private static partial void LogFilled(ILogger logger, string name, SiloAddress silo);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Silo metadata of {Name} not learned yet: {Reason}")]
    private static partial void LogAskFailed(ILogger logger, string name, string reason);
}
