namespace GrainFs.Storage.UnderStorage;

/// <summary>
/// Exponential backoff with full jitter for throttling and transient under-storage errors
/// (the AWS "full jitter" scheme: a random delay in [0, min(cap, base·2^attempt)]).
/// </summary>
public sealed class RetryPolicy
{
    /// <summary>Default attempts including the first.</summary>
    public const int DEFAULT_MAX_ATTEMPTS = 5;

    /// <summary>A policy with the defaults: 5 attempts, 100 ms base, 5 s cap.</summary>
    public static RetryPolicy Default { get; } = new(DEFAULT_MAX_ATTEMPTS, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(5));

    /// <summary>Creates a policy.</summary>
    public RetryPolicy(int maxAttempts, TimeSpan baseDelay, TimeSpan maxDelay)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxAttempts, 1);
        MaxAttempts = maxAttempts;
        BaseDelay = baseDelay;
        MaxDelay = maxDelay;
    }

    /// <summary>Attempts including the first.</summary>
    public int MaxAttempts { get; }

    /// <summary>The delay scale of the first retry.</summary>
    public TimeSpan BaseDelay { get; }

    /// <summary>The longest delay between attempts.</summary>
    public TimeSpan MaxDelay { get; }

    /// <summary>The delay before retry number <paramref name="attempt"/> (1-based).</summary>
    public TimeSpan DelayBefore(int attempt)
    {
        var ceiling = Math.Min(MaxDelay.TotalMilliseconds, BaseDelay.TotalMilliseconds * Math.Pow(2, attempt - 1));
        return TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * ceiling);
    }

    /// <summary>
    /// Runs <paramref name="operation"/>, retrying while <paramref name="isTransient"/> says the failure is
    /// worth another try and attempts remain. The last failure is rethrown.
    /// </summary>
    public async Task<T> ExecuteAsync<T>(
        Func<CancellationToken, Task<T>> operation,
        Func<Exception, bool> isTransient,
        Action<Exception, int>? onRetry,
        CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await operation(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (attempt < MaxAttempts && !cancellationToken.IsCancellationRequested && isTransient(e))
            {
                onRetry?.Invoke(e, attempt);
                await Task.Delay(DelayBefore(attempt), cancellationToken).ConfigureAwait(false);
            }
        }
    }
}
