namespace GrainFs.Tests.Infrastructure;

/// <summary>
/// The system clock, which a test moves forward: <see cref="Advance"/> jumps every later reading ahead, so an
/// interval (a sync interval, a TTL, a retry delay) has passed the moment the test says so, with no sleep. Between
/// jumps time runs as usual, and timers run in real time (a jump fires none early), so the bounded waits of the code
/// under test (long polls, waits for room) behave as in production — which a frozen fake clock would not give a
/// whole cluster. Thread-safe; never goes back.
/// </summary>
public sealed class TestClock : TimeProvider
{
    private long _offsetTicks;

    /// <summary>How far ahead of the system clock this clock reads.</summary>
    public TimeSpan Offset => TimeSpan.FromTicks(Volatile.Read(ref _offsetTicks));

    /// <summary>Moves the clock forward by <paramref name="by"/>.</summary>
    public void Advance(TimeSpan by)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(by, TimeSpan.Zero);
        Interlocked.Add(ref _offsetTicks, by.Ticks);
    }

    /// <inheritdoc />
    public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + Offset;

    /// <inheritdoc />
    public override long GetTimestamp() =>
        System.GetTimestamp() + (long)(Offset.Ticks * ((double)System.TimestampFrequency / TimeSpan.TicksPerSecond));

    /// <inheritdoc />
    public override long TimestampFrequency => System.TimestampFrequency;
}
