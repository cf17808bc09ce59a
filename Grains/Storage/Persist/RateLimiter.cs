namespace GrainFs.Storage.Persist;

/// <summary>
/// A byte-rate limit shared by one silo's uploads: a token bucket that lets at most one second of burst through and
/// makes a taker that overdraws it wait until the debt is paid, so the long-run rate is the configured one.
/// </summary>
public sealed class RateLimiter(long bytesPerSecond, TimeProvider time)
{
    private readonly Lock _lock = new();
    private double _tokens = bytesPerSecond;
    private long _last = time.GetTimestamp();

    /// <summary>Bytes per second (0: unlimited).</summary>
    public long BytesPerSecond => bytesPerSecond;

    /// <summary>Takes <paramref name="bytes"/>, waiting as long as the rate requires.</summary>
    public ValueTask TakeAsync(int bytes, CancellationToken cancellationToken)
    {
        if (bytesPerSecond <= 0 || bytes <= 0)
        {
            return ValueTask.CompletedTask;
        }

        double wait;
        lock (_lock)
        {
            var now = time.GetTimestamp();
            _tokens = Math.Min(bytesPerSecond, _tokens + (time.GetElapsedTime(_last, now).TotalSeconds * bytesPerSecond));
            _last = now;
            _tokens -= bytes;
            wait = _tokens < 0 ? -_tokens / bytesPerSecond : 0;
        }

        return wait <= 0 ? ValueTask.CompletedTask : new ValueTask(Task.Delay(TimeSpan.FromSeconds(wait), time, cancellationToken));
    }
}
