using GrainFs.DataPlane.Blocks;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Orleans.Runtime.Placement;

namespace GrainFs.Grains.Blocks;

/// <summary>
/// Places block grains on their home: rendezvous hashing of the block key over the compatible silos that carry
/// the gpu role (over all of them when none does), by silo name. Decides from locally cached silo metadata, with
/// no remote call, and gives the same answer as a client computing it from the cluster view.
/// </summary>
public sealed class BlockHomePlacementDirector(ISiloMetadataCache metadata) : IPlacementDirector
{
    /// <inheritdoc />
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var silos = context.GetCompatibleSilos(target);
        if (!BlockKey.TryParse(target.GrainIdentity.Key.ToString(), out var key) || silos.Length == 0)
        {
            return Task.FromResult(silos.Length > 0 ? silos[0] : context.LocalSilo);
        }

        var candidates = new List<(SiloAddress Silo, string Name)>(silos.Length);
        foreach (var silo in silos)
        {
            var data = metadata.GetSiloMetadata(silo).Metadata;
            if (data.TryGetValue(SiloMetadataKeys.Roles, out var roles) && HasRole(roles, "gpu"))
            {
                candidates.Add((silo, data.GetValueOrDefault(SiloMetadataKeys.Silo) ?? silo.ToString()));
            }
        }

        if (candidates.Count == 0)
        {
            foreach (var silo in silos)
            {
                candidates.Add((silo, metadata.GetSiloMetadata(silo).Metadata.GetValueOrDefault(SiloMetadataKeys.Silo) ?? silo.ToString()));
            }
        }

        var names = candidates.ConvertAll(c => c.Name);
        return Task.FromResult(candidates[Rendezvous.Pick(key, names)].Silo);
    }

    internal static bool HasRole(string roles, string role)
    {
        foreach (var part in roles.Split(',', StringSplitOptions.TrimEntries))
        {
            if (string.Equals(part, role, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>Places a grain keyed by a silo name on the silo of that name (the local silo when it is not in the cluster).</summary>
public sealed class SiloNamePlacementDirector(ISiloMetadataCache metadata) : IPlacementDirector
{
    /// <inheritdoc />
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var name = target.GrainIdentity.Key.ToString();
        foreach (var silo in context.GetCompatibleSilos(target))
        {
            if (metadata.GetSiloMetadata(silo).Metadata.GetValueOrDefault(SiloMetadataKeys.Silo) == name)
            {
                return Task.FromResult(silo);
            }
        }

        return Task.FromResult(context.LocalSilo);
    }
}
