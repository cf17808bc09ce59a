using GrainFs.DataPlane.Blocks;
using Orleans.Runtime.Placement;

namespace GrainFs.Grains.Blocks;

/// <summary>
/// Places block grains on their home: rendezvous hashing of the block key over the compatible silos that may be
/// homes (<see cref="BlockHomes"/>: the gpu role, all of them when none has it), by silo name. Decides from locally
/// cached silo metadata, with no remote call, and gives the same answer as a client computing it from the cluster view.
/// </summary>
public sealed class BlockHomePlacementDirector(SiloDirectory directory) : IPlacementDirector
{
    /// <inheritdoc />
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var silos = context.GetCompatibleSilos(target);
        if (!BlockKey.TryParse(target.GrainIdentity.Key.ToString(), out var key) || silos.Length == 0)
        {
            return Task.FromResult(silos.Length > 0 ? silos[0] : context.LocalSilo);
        }

        var candidates = BlockHomes.Candidates(silos, s => RolesOf(directory.MetadataOf(s)));
        var names = candidates.ConvertAll(s => directory.NameOf(s) ?? s.ToString());
        return Task.FromResult(candidates[Rendezvous.Pick(key, names)]);
    }

    private static string[] RolesOf(IReadOnlyDictionary<string, string> data) =>
        data.TryGetValue(SiloMetadataKeys.Roles, out var roles) ? roles.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) : [];
}

/// <summary>Places a grain keyed by a silo name on the silo of that name (the local silo when it is not in the cluster).</summary>
public sealed class SiloNamePlacementDirector(SiloDirectory directory) : IPlacementDirector
{
    /// <inheritdoc />
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var name = target.GrainIdentity.Key.ToString();
        if (directory.ActiveSiloNamed(name) is { } active)
        {
            return Task.FromResult(active);
        }

        foreach (var silo in context.GetCompatibleSilos(target))
        {
            if (directory.NameOf(silo) == name)
            {
                return Task.FromResult(silo);
            }
        }

        return Task.FromResult(context.LocalSilo);
    }
}
