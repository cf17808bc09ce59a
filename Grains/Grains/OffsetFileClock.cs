using System.Globalization;

namespace GrainFs.Grains;

/// <summary>
/// A clock for fault injection: the system clock moved by the offset a file holds (<c>02:00:00</c>, <c>-00:30:00</c>,
/// <c>1.00:00:00</c>), read again whenever the file changes (looked at every <see cref="PollInterval"/>). The fault
/// suite gives it to a silo (<c>GRAINFS_FAULT_CLOCK_FILE</c>) as its <see cref="GrainFsClock"/>, so that TTLs, directory
/// staleness and fill waits see a clock step while the host's clock, Orleans' timers and membership do not. Timers run
/// in real time. A file that cannot be read or parsed keeps the last offset and is reported through <see cref="Errors"/>.
/// </summary>
public sealed class OffsetFileClock : TimeProvider, IDisposable
{
    /// <summary>How often the file is looked at.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);

    private readonly string _path;
    private readonly ITimer _poll;
    private DateTime _seen;
    private long _offsetTicks;
    private string? _lastError;

    /// <summary>Reads <paramref name="path"/> now (it must exist and hold an offset) and then whenever it changes.</summary>
    /// <exception cref="ArgumentException">The file is missing or does not hold an offset (the message names it).</exception>
    public OffsetFileClock(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        _path = Path.GetFullPath(path);
        if (!File.Exists(_path))
        {
            throw new ArgumentException($"the clock offset file '{_path}' does not exist", nameof(path));
        }

        if (Reload() is { } error)
        {
            throw new ArgumentException(error, nameof(path));
        }

        _poll = System.CreateTimer(_ => Reload(), null, PollInterval, PollInterval);
    }

    /// <summary>How far this clock reads ahead of (or, negative, behind) the system clock.</summary>
    public TimeSpan Offset => TimeSpan.FromTicks(Volatile.Read(ref _offsetTicks));

    /// <summary>The last error reading the file, or null once it was read right again.</summary>
    public string? Errors => Volatile.Read(ref _lastError);

    /// <inheritdoc />
    public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + Offset;

    /// <inheritdoc />
    public override long GetTimestamp() =>
        System.GetTimestamp() + (long)(Offset.Ticks * ((double)System.TimestampFrequency / TimeSpan.TicksPerSecond));

    /// <inheritdoc />
    public override long TimestampFrequency => System.TimestampFrequency;

    /// <summary>Parses an offset as the file holds it: a TimeSpan in the invariant form, optionally signed, surrounding blanks ignored.</summary>
    public static bool TryParse(string text, out TimeSpan offset)
    {
        ArgumentNullException.ThrowIfNull(text);
        var trimmed = text.Trim();
        var sign = 1;
        if (trimmed.StartsWith('+'))
        {
            trimmed = trimmed[1..];
        }
        else if (trimmed.StartsWith('-'))
        {
            (sign, trimmed) = (-1, trimmed[1..]);
        }

        if (trimmed.Length > 0 && char.IsDigit(trimmed[0]) && TimeSpan.TryParseExact(trimmed, "c", CultureInfo.InvariantCulture, out offset))
        {
            offset = sign * offset;
            return true;
        }

        offset = TimeSpan.Zero;
        return false;
    }

    /// <inheritdoc />
    public void Dispose() => _poll?.Dispose();

    private string? Reload()
    {
        try
        {
            var written = File.GetLastWriteTimeUtc(_path);
            if (written == _seen && _lastError is null)
            {
                return null;
            }

            var text = File.ReadAllText(_path);
            if (!TryParse(text, out var offset))
            {
                var error = $"the clock offset file '{_path}' holds '{text.Trim()}', not an offset such as 02:00:00 or -00:30:00";
                Volatile.Write(ref _lastError, error);
                return error;
            }

            _seen = written;
            Volatile.Write(ref _offsetTicks, offset.Ticks);
            Volatile.Write(ref _lastError, null);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            var error = $"the clock offset file '{_path}' cannot be read: {e.Message}";
            Volatile.Write(ref _lastError, error);
            return error;
        }
    }
}
