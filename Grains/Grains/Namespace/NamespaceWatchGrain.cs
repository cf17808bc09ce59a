using Microsoft.Extensions.Logging;

namespace GrainFs.Grains.Namespace;

/// <summary>
/// Fans namespace changes out to the subscribed clients (one-way calls, so a slow or dead client holds nobody up).
/// Subscriptions live in memory and expire unless renewed: a reactivation loses them only until the clients renew.
/// </summary>
internal sealed partial class NamespaceWatchGrain(GrainFsClock time, ILogger<NamespaceWatchGrain> logger) : Grain, INamespaceWatchGrain
{
    private readonly Dictionary<INamespaceObserver, DateTime> _observers = [];

    public ValueTask SubscribeAsync(INamespaceObserver observer)
    {
        _observers[observer] = time.GetUtcNow().UtcDateTime + INamespaceWatchGrain.SubscriptionLifetime;
        return ValueTask.CompletedTask;
    }

    public ValueTask UnsubscribeAsync(INamespaceObserver observer)
    {
        _observers.Remove(observer);
        return ValueTask.CompletedTask;
    }

    public Task PublishAsync(string[] paths)
    {
        var now = time.GetUtcNow().UtcDateTime;
        foreach (var (observer, until) in _observers.ToList())
        {
            if (until < now)
            {
                _observers.Remove(observer);
                continue;
            }

            try
            {
                _ = observer.ChangedAsync(paths);
            }
            catch (Exception e) when (e is OrleansException or InvalidOperationException)
            {
                _observers.Remove(observer);
                LogDropped(logger, e.Message);
            }
        }

        return Task.CompletedTask;
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Dropped a namespace observer: {Reason}")]
    private static partial void LogDropped(ILogger logger, string reason);
}
