namespace GrainFs.Grains;

/// <summary>
/// The clock GrainFS's own silo components read: directory staleness and re-list retry delays, mount creation times,
/// block TTLs, fill waits for room, the mount cache of fills and the retention of finished loads. It is a registration
/// of its own, apart from the <see cref="TimeProvider"/> that Orleans resolves for its timers, membership and
/// activation collection, so that a test can drive GrainFS's time without stopping or rushing the cluster's.
/// <c>AddGrainFs</c> registers <see cref="System"/> unless a <see cref="GrainFsClock"/> is registered before it.
/// </summary>
public sealed class GrainFsClock : TimeProvider
{
    private readonly TimeProvider _time;

    /// <summary>A clock that reads <paramref name="time"/>.</summary>
    public GrainFsClock(TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        _time = time;
    }

    /// <summary>The system clock, what a silo runs on.</summary>
    public static new GrainFsClock System { get; } = new(TimeProvider.System);

    /// <inheritdoc />
    public override DateTimeOffset GetUtcNow() => _time.GetUtcNow();

    /// <inheritdoc />
    public override long GetTimestamp() => _time.GetTimestamp();

    /// <inheritdoc />
    public override long TimestampFrequency => _time.TimestampFrequency;

    /// <inheritdoc />
    public override TimeZoneInfo LocalTimeZone => _time.LocalTimeZone;

    /// <inheritdoc />
    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        _time.CreateTimer(callback, state, dueTime, period);
}
