using Microsoft.Extensions.Logging;

namespace GrainFs.Tests.Cluster;

/// <summary>One GrainFS log event of a test silo: its name (the <c>[LoggerMessage]</c> method's), its values by name, its text.</summary>
public sealed record SiloLogEvent(string Category, LogLevel Level, string Name, IReadOnlyDictionary<string, object?> Values, string Message)
{
    /// <summary>A named value of the event as text ("" when absent).</summary>
    public string this[string key] => Values.TryGetValue(key, out var value) ? Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? string.Empty : string.Empty;
}

/// <summary>
/// The GrainFS log events (categories <c>GrainFs.*</c>, Debug and up) of one in-process test silo, kept so a test can
/// wait for an event that has happened or will happen: what the silo reports it did, rather than a poll of its state.
/// Holds the last <see cref="Capacity"/> events.
/// </summary>
public sealed class SiloLog : ILoggerProvider
{
    /// <summary>Events kept.</summary>
    public const int Capacity = 20_000;

    private readonly Lock _gate = new();
    private readonly Queue<SiloLogEvent> _events = new();
    private readonly List<(string Name, Func<SiloLogEvent, bool> Match, TaskCompletionSource<SiloLogEvent> Seen)> _waiters = [];

    /// <summary>
    /// The first kept event named <paramref name="name"/> that <paramref name="match"/> accepts, or the next one to come;
    /// fails with a <see cref="TimeoutException"/> naming the event when none comes within <paramref name="timeout"/>.
    /// </summary>
    public async Task<SiloLogEvent> WaitForAsync(string name, Func<SiloLogEvent, bool> match, TimeSpan timeout)
    {
        var seen = new TaskCompletionSource<SiloLogEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            foreach (var e in _events)
            {
                if (e.Name == name && match(e))
                {
                    return e;
                }
            }

            _waiters.Add((name, match, seen));
        }

        try
        {
            return await seen.Task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"no log event {name} matching the test's condition within {timeout.TotalSeconds:0.#} s");
        }
        finally
        {
            lock (_gate)
            {
                _waiters.RemoveAll(w => w.Seen == seen);
            }
        }
    }

    /// <summary>The events kept so far, oldest first.</summary>
    public IReadOnlyList<SiloLogEvent> Snapshot()
    {
        lock (_gate)
        {
            return [.. _events];
        }
    }

    private void Add(SiloLogEvent e)
    {
        List<TaskCompletionSource<SiloLogEvent>>? matched = null;
        lock (_gate)
        {
            if (_events.Count == Capacity)
            {
                _events.Dequeue();
            }

            _events.Enqueue(e);
            foreach (var (name, match, seen) in _waiters)
            {
                if (name == e.Name && match(e))
                {
                    (matched ??= []).Add(seen);
                }
            }
        }

        foreach (var seen in matched ?? [])
        {
            seen.TrySetResult(e);
        }
    }

    ILogger ILoggerProvider.CreateLogger(string categoryName) => new Logger(this, categoryName);

    void IDisposable.Dispose()
    {
    }

    private sealed class Logger(SiloLog log, string category) : ILogger
    {
        private readonly bool _kept = category.StartsWith("GrainFs", StringComparison.Ordinal);

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => _kept && logLevel >= LogLevel.Debug;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            var values = new Dictionary<string, object?>(StringComparer.Ordinal);
            if (state is IEnumerable<KeyValuePair<string, object?>> pairs)
            {
                foreach (var (key, value) in pairs)
                {
                    values[key] = value;
                }
            }

            log.Add(new SiloLogEvent(category, logLevel, eventId.Name ?? string.Empty, values, formatter(state, exception)));
        }
    }
}
