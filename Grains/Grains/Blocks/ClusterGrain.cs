using Orleans.Concurrency;

namespace GrainFs.Grains.Blocks;

/// <summary>Answers with the active silos and their GrainFS metadata, from this silo's membership view.</summary>
[StatelessWorker]
internal sealed class ClusterGrain(IClusterMembershipService membership, SiloDirectory directory) : Grain, IClusterGrain
{
    public ValueTask<SiloInfo[]> GetSilosAsync()
    {
        var silos = new List<SiloInfo>();
        foreach (var member in membership.CurrentSnapshot.Members.Values)
        {
            if (member.Status != SiloStatus.Active)
            {
                continue;
            }

            var data = directory.MetadataOf(member.SiloAddress);
            if (!data.TryGetValue(SiloMetadataKeys.DataPort, out var endpoint))
            {
                // Metadata not learned yet (asked for now): a client will see this silo on its next refresh.
                continue;
            }

            silos.Add(new SiloInfo(
                data.GetValueOrDefault(SiloMetadataKeys.Silo) ?? member.Name,
                member.SiloAddress.ToString(),
                data.GetValueOrDefault(SiloMetadataKeys.Host) ?? string.Empty,
                (data.GetValueOrDefault(SiloMetadataKeys.Roles) ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                endpoint,
                (data.GetValueOrDefault(SiloMetadataKeys.Tiers) ?? string.Empty).Split('|', StringSplitOptions.RemoveEmptyEntries),
                long.TryParse(data.GetValueOrDefault(SiloMetadataKeys.CacheCapacity), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var capacity) ? capacity : 0));
        }

        silos.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return ValueTask.FromResult(silos.ToArray());
    }
}
