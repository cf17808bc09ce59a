namespace GrainFs.DataPlane.Blocks;

/// <summary>
/// The kind of a cache tier. Its value is the tier's <see cref="DataSource"/> on the data port (3 is taken there by
/// under-storage, so a new kind takes 4 or more); its speed rank is its place in <see cref="TierKinds.All"/>.
/// </summary>
public enum TierKind : byte
{
    /// <summary>Memory: a tmpfs folder such as /dev/shm.</summary>
    Mem = 0,

    /// <summary>A local SSD.</summary>
    Ssd = 1,

    /// <summary>A local HDD.</summary>
    Hdd = 2,
}

/// <summary>Names and conversions of <see cref="TierKind"/>: the one place a tier is named as text.</summary>
public static class TierKinds
{
    /// <summary>Every kind, fastest first.</summary>
    public static readonly IReadOnlyList<TierKind> All = [TierKind.Mem, TierKind.Ssd, TierKind.Hdd];

    /// <summary>The kind's speed rank: 0 for the fastest.</summary>
    public static int Rank(this TierKind kind)
    {
        for (var i = 0; i < All.Count; i++)
        {
            if (All[i] == kind)
            {
                return i;
            }
        }

        throw new ArgumentOutOfRangeException(nameof(kind), kind, "not a tier kind");
    }

    /// <summary>The kind's name in settings, reports and metrics: MEM, SSD, HDD.</summary>
    public static string Label(this TierKind kind) => kind switch
    {
        TierKind.Mem => "MEM",
        TierKind.Ssd => "SSD",
        TierKind.Hdd => "HDD",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "not a tier kind"),
    };

    /// <summary>Where the data port says a read came from.</summary>
    public static DataSource Source(this TierKind kind) => (DataSource)(byte)kind;

    /// <summary>Parses MEM, SSD or HDD (any case).</summary>
    public static bool TryParse(string text, out TierKind kind)
    {
        foreach (var candidate in All)
        {
            if (string.Equals(candidate.Label(), text.Trim(), StringComparison.OrdinalIgnoreCase))
            {
                kind = candidate;
                return true;
            }
        }

        kind = default;
        return false;
    }

    /// <summary>"MEM, SSD, HDD", for messages.</summary>
    public static string Known => string.Join(", ", All.Select(k => k.Label()));
}
