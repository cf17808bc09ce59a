using GrainFs.DataPlane;
using GrainFs.DataPlane.Blocks;
using GrainFs.Storage.Cache;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace GrainFs.Silo.Hosting;

/// <summary>
/// Fills in <see cref="CacheOptions"/> after binding and before validation: when no tier is configured, the defaults
/// this machine affords (<see cref="DefaultTiers"/>, under the silo's state folder and named after the silo); tiers
/// fastest first; the policy name in lower case.
/// </summary>
/// <param name="silo">The silo options, for the state folder and the silo name.</param>
/// <param name="siloSection">The configuration section of the silo options, read only when they are invalid (see <see cref="PostConfigure"/>).</param>
public sealed class CacheOptionsSetup(IOptionsMonitor<GrainFsSiloOptions> silo, IConfigurationSection siloSection) : IPostConfigureOptions<CacheOptions>
{
    /// <summary>The most a default MEM tier takes: the cache must not starve the training job.</summary>
    public const long DEFAULT_MEM_TIER_MAX = 1L << 30;

    /// <summary>The most a default SSD tier takes.</summary>
    public const long DEFAULT_SSD_TIER_MAX = 20L << 30;

    /// <summary>The least a default tier takes, however small the machine.</summary>
    public const long DEFAULT_TIER_MIN = 64L << 20;

    /// <inheritdoc />
    public void PostConfigure(string? name, CacheOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Tiers.Count == 0)
        {
            var settings = SiloOptions();
            options.Tiers.AddRange(DefaultTiers(settings.Data, settings.SiloName));
        }

        options.Tiers.Sort((a, b) => a.Kind.Rank().CompareTo(b.Kind.Rank()));
        options.Policy = options.Policy.Trim().ToLowerInvariant();
    }

    /// <summary>
    /// The validated silo options; when they are invalid (their own failures are reported for them), the same binding
    /// and setup without the checks, so that the cache is still validated with the defaults it would get.
    /// </summary>
    private GrainFsSiloOptions SiloOptions()
    {
        try
        {
            return silo.CurrentValue;
        }
        catch (OptionsValidationException)
        {
            var unvalidated = new GrainFsSiloOptions();
            _ = OptionsBinding.BindConvertible(siloSection, unvalidated);
            new GrainFsSiloOptionsSetup().PostConfigure(Options.DefaultName, unvalidated);
            return unvalidated;
        }
    }

    /// <summary>
    /// The default MEM tier folder, <c>/dev/shm/grainfs-&lt;uid&gt;-&lt;silo&gt;</c>: named after the silo's user, so that
    /// silos of different users never share one. /dev/shm is writable by every local user, so another user can still
    /// make that folder first; the silo then refuses to start (the folder is not its user's), rather than caching into it.
    /// </summary>
    public static string DefaultMemPath(string siloName)
    {
        var safeName = string.Concat(siloName.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_'));
        var uid = OperatingSystem.IsWindows() ? 0 : UnixFiles.EffectiveUserId;
        return string.Create(System.Globalization.CultureInfo.InvariantCulture, $"/dev/shm/grainfs-{uid}-{safeName}");
    }

    /// <summary>
    /// The tiers a silo gets when none are configured: a modest MEM tier on /dev/shm (at most 1 GiB and 5% of the
    /// machine's memory, so the training job keeps its RAM) and an SSD tier under the data folder (at most 20 GiB and
    /// half of the free space).
    /// </summary>
    public static IEnumerable<TierSpec> DefaultTiers(string data, string siloName)
    {
        var memory = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (Directory.Exists("/dev/shm") && memory > 0)
        {
            yield return new TierSpec(TierKind.Mem, DefaultMemPath(siloName), Math.Max(DEFAULT_TIER_MIN, Math.Min(DEFAULT_MEM_TIER_MAX, memory / 20)));
        }

        long free;
        try
        {
            Directory.CreateDirectory(data);
            free = new DriveInfo(data).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            free = 2L << 30;
        }

        yield return new TierSpec(TierKind.Ssd, Path.Combine(data, "cache"), Math.Max(DEFAULT_TIER_MIN, Math.Min(DEFAULT_SSD_TIER_MAX, free / 2)));
    }
}
