using Microsoft.Extensions.Options;

namespace GrainFs.Grains.Namespace;

/// <summary>Checks <see cref="NamespaceOptions"/> (configuration section GrainFs:Namespace) at start-up; one failure per bad value, naming its key.</summary>
public sealed class NamespaceOptionsValidator : IValidateOptions<NamespaceOptions>
{
    /// <summary>The most entries a list page may be asked to carry.</summary>
    public const int MAX_PAGE_ENTRIES = 100_000;

    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, NamespaceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (options.ShardThreshold < 1)
        {
            failures.Add($"GrainFs:Namespace:ShardThreshold must be at least 1 (was {options.ShardThreshold})");
        }

        if (options.TargetShardEntries < 1)
        {
            failures.Add($"GrainFs:Namespace:TargetShardEntries must be at least 1 (was {options.TargetShardEntries})");
        }

        if (options.MaxPageEntries is < 1 or > MAX_PAGE_ENTRIES)
        {
            failures.Add($"GrainFs:Namespace:MaxPageEntries must be between 1 and {MAX_PAGE_ENTRIES} (was {options.MaxPageEntries})");
        }

        if (options.SyncRetryDelay < TimeSpan.Zero)
        {
            failures.Add("GrainFs:Namespace:SyncRetryDelay must not be negative");
        }

        if (options.SyncAnswerWait <= TimeSpan.Zero || options.SyncAnswerWait > TimeSpan.FromSeconds(20))
        {
            failures.Add($"GrainFs:Namespace:SyncAnswerWait must be more than 0 and at most 00:00:20, inside a grain call's timeout (was {options.SyncAnswerWait})");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
