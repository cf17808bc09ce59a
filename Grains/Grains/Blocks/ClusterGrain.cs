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

            var name = data.GetValueOrDefault(SiloMetadataKeys.Silo) ?? member.Name;
            silos.Add(new SiloInfo(
                name,
                member.SiloAddress.ToString(),
                data.GetValueOrDefault(SiloMetadataKeys.Host) ?? string.Empty,
                (data.GetValueOrDefault(SiloMetadataKeys.Roles) ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                endpoint,
                (data.GetValueOrDefault(SiloMetadataKeys.Tiers) ?? string.Empty).Split('|', StringSplitOptions.RemoveEmptyEntries),
                long.TryParse(data.GetValueOrDefault(SiloMetadataKeys.CacheCapacity), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var capacity) ? capacity : 0,
                directory.IsDraining(name)));
        }

        silos.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return ValueTask.FromResult(silos.ToArray());
    }

    public ValueTask<SiloMember[]> GetMembersAsync()
    {
        var members = new Dictionary<string, (ClusterMember Member, SiloMember Info)>(StringComparer.Ordinal);
        foreach (var member in membership.CurrentSnapshot.Members.Values)
        {
            var data = member.Status == SiloStatus.Dead ? null : directory.MetadataOf(member.SiloAddress);
            var name = data?.GetValueOrDefault(SiloMetadataKeys.Silo) ?? member.Name;
            var info = new SiloMember(
                name,
                member.SiloAddress.ToString(),
                member.Status == SiloStatus.Active && directory.IsDraining(name) ? "draining" : StateOf(member.Status),
                data?.GetValueOrDefault(SiloMetadataKeys.Host) ?? string.Empty,
                (data?.GetValueOrDefault(SiloMetadataKeys.Roles) ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                data?.GetValueOrDefault(SiloMetadataKeys.DataPort) ?? string.Empty,
                data?.GetValueOrDefault(SiloMetadataKeys.Version) ?? string.Empty);

            // A silo started again under its name is one member: its newest incarnation.
            if (!members.TryGetValue(name, out var known) || member.SiloAddress.Generation > known.Member.SiloAddress.Generation)
            {
                members[name] = (member, info);
            }
        }

        return ValueTask.FromResult(members.Values.Select(m => m.Info).OrderBy(m => m.Name, StringComparer.Ordinal).ToArray());
    }

    private static string StateOf(SiloStatus status) => status switch
    {
        SiloStatus.Created or SiloStatus.Joining => "joining",
        SiloStatus.Active => "active",
        SiloStatus.ShuttingDown => "shutting down",
        SiloStatus.Stopping => "stopping",
        SiloStatus.Dead => "dead",
        _ => status.ToString().ToLowerInvariant(),
    };
}
