using GrainFs.DataPlane;
using Microsoft.Extensions.Options;

namespace GrainFs.Storage.Persist;

/// <summary>How a silo's persist queue uploads written files to under-storage (configuration section GrainFs:Persist).</summary>
public sealed class PersistOptions
{
    /// <summary>The configuration section.</summary>
    public const string SECTION = "GrainFs:Persist";

    /// <summary>Default <see cref="Parallel"/>.</summary>
    public const int DEFAULT_PARALLEL = 2;

    /// <summary>Bytes per second this silo uploads at most, as a size ("100MiB"); "0" (the default) is unlimited.</summary>
    public string Rate { get; set; } = "0";

    /// <summary>Files uploaded at once.</summary>
    public int Parallel { get; set; } = DEFAULT_PARALLEL;

    /// <summary>The first retry delay after a failed upload; it doubles up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest retry delay.</summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a sealed file may wait for its commit before recovery drops it as abandoned (the writer died before its close returned).</summary>
    public TimeSpan AbandonAfter { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary><see cref="Rate"/> in bytes per second (0: unlimited); -1 when it does not parse.</summary>
    public long RateBytesPerSecond => ByteSize.TryParse(Rate, out var bytes, out _) && bytes >= 0 ? bytes : -1;
}

/// <summary>Checks <see cref="PersistOptions"/>, one failure per problem, naming its key.</summary>
public sealed class PersistOptionsValidator : IValidateOptions<PersistOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, PersistOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (options.RateBytesPerSecond < 0)
        {
            failures.Add($"GrainFs:Persist:Rate = '{options.Rate}': a size per second such as 100MiB, or 0 for unlimited");
        }

        if (options.Parallel is < 1 or > 64)
        {
            failures.Add($"GrainFs:Persist:Parallel = '{options.Parallel}': 1 to 64 files at once");
        }

        if (options.RetryDelay <= TimeSpan.Zero || options.MaxRetryDelay < options.RetryDelay)
        {
            failures.Add($"GrainFs:Persist: RetryDelay ({options.RetryDelay}) must be above zero and at most MaxRetryDelay ({options.MaxRetryDelay})");
        }

        if (options.AbandonAfter <= TimeSpan.Zero)
        {
            failures.Add($"GrainFs:Persist:AbandonAfter = '{options.AbandonAfter}': a duration above zero");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
