using Microsoft.Extensions.Options;

namespace GrainFs.Storage.Cache;

/// <summary>
/// Checks <see cref="CacheOptions"/> (configuration section GrainFs:Cache) at start-up: the tier and policy rules of
/// <see cref="CacheOptions.Validate"/>, which the tier store applies too, and the maintenance timings. One failure per
/// problem, each naming its key.
/// </summary>
public sealed class CacheOptionsValidator : IValidateOptions<CacheOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, CacheOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = options.Validate().ToList();
        if (options.MaintenanceInterval <= TimeSpan.Zero)
        {
            failures.Add($"GrainFs:Cache:MaintenanceInterval = '{options.MaintenanceInterval}': a duration above 00:00:00");
        }

        if (options.FillStallTimeout <= TimeSpan.Zero || options.FillStallTimeout > TimeSpan.FromDays(1))
        {
            failures.Add($"GrainFs:Cache:FillStallTimeout = '{options.FillStallTimeout}': must be above zero and at most a day");
        }

        if (options.FillAttempts is < 1 or > 100)
        {
            failures.Add($"GrainFs:Cache:FillAttempts = '{options.FillAttempts}': must be 1 to 100");
        }

        if (options.TierFaultPause < TimeSpan.Zero)
        {
            failures.Add($"GrainFs:Cache:TierFaultPause = '{options.TierFaultPause}': must not be negative");
        }

        if (options.SpaceWait < TimeSpan.Zero)
        {
            failures.Add($"GrainFs:Cache:SpaceWait = '{options.SpaceWait}': must not be negative");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
