using GrainFs.DataPlane;
using GrainFs.DataPlane.Blocks;

namespace GrainFs.Storage.Cache;

/// <summary>One tier: a folder with a capacity. MEM on tmpfs (/dev/shm), SSD and HDD on local disks.</summary>
/// <param name="Kind">MEM, SSD or HDD.</param>
/// <param name="Path">The folder (created if missing).</param>
/// <param name="Capacity">Bytes the tier may hold, block headers included.</param>
[System.ComponentModel.TypeConverter(typeof(TierSpecConverter))]
public sealed record TierSpec(TierKind Kind, string Path, long Capacity)
{
    /// <summary>The kind's name: MEM, SSD or HDD.</summary>
    public string Name => Kind.Label();

    /// <summary>Parses MEM=/dev/shm/grainfs:4GiB; false with a reason naming the text.</summary>
    public static bool TryParse(string text, out TierSpec spec, out string? error)
    {
        spec = new TierSpec(TierKind.Mem, string.Empty, 0);
        var eq = text.IndexOf('=');
        var colon = text.LastIndexOf(':');
        if (eq <= 0 || colon <= eq + 1)
        {
            error = $"'{text}' is not a tier (write NAME=FOLDER:CAPACITY, e.g. MEM=/dev/shm/grainfs:4GiB)";
            return false;
        }

        if (!TierKinds.TryParse(text[..eq], out var kind))
        {
            error = $"'{text}': unknown tier '{text[..eq]}' (use {TierKinds.Known})";
            return false;
        }

        var folder = text[(eq + 1)..colon].Trim();
        if (!System.IO.Path.IsPathRooted(folder))
        {
            error = $"'{text}': the tier folder must be an absolute path";
            return false;
        }

        if (!ByteSize.TryParse(text[(colon + 1)..], out var capacity, out var sizeError) || capacity <= 0)
        {
            error = $"'{text}': capacity {sizeError ?? "must be more than 0"}";
            return false;
        }

        spec = new TierSpec(kind, folder, capacity);
        error = null;
        return true;
    }

    /// <summary>The text form, e.g. MEM=/dev/shm/grainfs:4 GiB.</summary>
    public override string ToString() => $"{Name}={Path}:{ByteSize.Format(Capacity)}";
}

/// <summary>How a worker's tier store behaves. Bound from GrainFs:Cache.</summary>
public sealed class CacheOptions
{
    /// <summary>Default eviction policy.</summary>
    public const string DEFAULT_POLICY = "tinylfu";

    /// <summary>Default high watermark.</summary>
    public const double DEFAULT_HIGH_WATERMARK = 0.95;

    /// <summary>Default low watermark.</summary>
    public const double DEFAULT_LOW_WATERMARK = 0.85;

    /// <summary>The tiers, fastest first.</summary>
    public List<TierSpec> Tiers { get; set; } = [];

    /// <summary>lru or tinylfu.</summary>
    public string Policy { get; set; } = DEFAULT_POLICY;

    /// <summary>Eviction starts when a tier is fuller than this share of its capacity.</summary>
    public double HighWatermark { get; set; } = DEFAULT_HIGH_WATERMARK;

    /// <summary>Eviction stops when a tier is back under this share.</summary>
    public double LowWatermark { get; set; } = DEFAULT_LOW_WATERMARK;

    /// <summary>How often the background maintenance runs even when nothing signals it (TTL expiry).</summary>
    public TimeSpan MaintenanceInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a fill waits for eviction to make room before it fails.</summary>
    public TimeSpan SpaceWait { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a fill's source may send nothing before the read is given up and the source asked again (a stalled S3 body).</summary>
    public TimeSpan FillStallTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How many times a fill asks its source before it fails (after stalls).</summary>
    public int FillAttempts { get; set; } = 3;

    /// <summary>How long a tier whose disk failed a fill (full although its accounting had room, an I/O error) takes no fills before it is tried again.</summary>
    public TimeSpan TierFaultPause { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The tier that takes the blocks of files written through this silo (MEM, SSD or HDD); null: SSD when the silo has one, else its first tier.</summary>
    public string? WriteTier { get; set; }

    /// <summary>How long a write waits for room on the write tier (eviction of persisted blocks) before it fails with ENOSPC.</summary>
    public TimeSpan WriteSpaceWait { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The group whose members may read block files straight from the tier folders (short-circuit reads by a FUSE daemon
    /// or a loader running as another user): folders 0750 with this group, block files 0640. Null: only the silo's user
    /// may (folders 0700, files 0600), and clients running as other users read through the data port.
    /// </summary>
    public string? ShortCircuitGroup { get; set; }

    /// <summary>The write tier's kind: <see cref="WriteTier"/> when set, else SSD when configured, else the first tier's.</summary>
    public TierKind WriteTierKind =>
        WriteTier is { Length: > 0 } named && TierKinds.TryParse(named, out var kind)
            ? kind
            : Tiers.Any(t => t.Kind == TierKind.Ssd) ? TierKind.Ssd : Tiers.Count > 0 ? Tiers[0].Kind : TierKind.Ssd;

    /// <summary>Checks the values; one message per problem, naming the key.</summary>
    public IEnumerable<string> Validate()
    {
        if (WriteTier is { Length: > 0 } writeTier)
        {
            if (!TierKinds.TryParse(writeTier, out var kind))
            {
                yield return $"GrainFs:Cache:WriteTier = '{writeTier}': use MEM, SSD or HDD";
            }
            else if (Tiers.Count > 0 && Tiers.All(t => t.Kind != kind))
            {
                yield return $"GrainFs:Cache:WriteTier = '{writeTier}': this silo has no {kind.Label()} tier (tiers: {string.Join(", ", Tiers.Select(t => t.Name))})";
            }
        }

        if (Tiers.Count == 0)
        {
            yield return "GrainFs:Cache:Tiers: at least one tier is needed";
        }

        var seen = new HashSet<TierKind>();
        foreach (var tier in Tiers)
        {
            if (!seen.Add(tier.Kind))
            {
                yield return $"GrainFs:Cache:Tiers: tier {tier.Name} is given twice";
            }

            if (tier.Capacity < 1024 * 1024)
            {
                yield return $"GrainFs:Cache:Tiers: tier {tier.Name} capacity {ByteSize.Format(tier.Capacity)} is below 1 MiB";
            }
        }

        foreach (var tier in Tiers)
        {
            if (tier.Path.Length > 0 && System.IO.Path.IsPathRooted(tier.Path) && TierFolders.Problem(tier.Path) is { } problem)
            {
                yield return $"GrainFs:Cache:Tiers: tier {tier.Name} folder {problem}";
            }
        }

        if (ShortCircuitGroup is { Length: > 0 } group)
        {
            if (OperatingSystem.IsWindows())
            {
                yield return $"GrainFs:Cache:ShortCircuitGroup = '{group}': not supported on Windows";
            }
            else if (!UnixFiles.TryGetGroupId(group.Trim(), out var gid))
            {
                yield return $"GrainFs:Cache:ShortCircuitGroup = '{group}': no such group";
            }
            else if (!UnixFiles.MayUseGroup(gid))
            {
                yield return $"GrainFs:Cache:ShortCircuitGroup = '{group}': this silo's user {UnixFiles.DescribeUser(UnixFiles.EffectiveUserId)} is not a member of group {UnixFiles.DescribeGroup(gid)}, so it cannot give its tier folders that group";
            }
        }

        var paths = Tiers.Select(t => System.IO.Path.GetFullPath(t.Path)).ToList();
        if (paths.Distinct(StringComparer.Ordinal).Count() != paths.Count)
        {
            yield return "GrainFs:Cache:Tiers: two tiers share a folder";
        }

        if (!EvictionPolicies.Names.Contains(Policy))
        {
            yield return $"GrainFs:Cache:Policy = '{Policy}': use one of {string.Join(", ", EvictionPolicies.Names)}";
        }

        if (LowWatermark is <= 0 or >= 1 || HighWatermark is <= 0 or > 1 || LowWatermark >= HighWatermark)
        {
            yield return $"GrainFs:Cache: watermarks must satisfy 0 < LowWatermark ({LowWatermark}) < HighWatermark ({HighWatermark}) <= 1";
        }
    }
}
