using Microsoft.Extensions.Logging;

namespace GrainFs.Grains.Namespace;

/// <summary>
/// Fans namespace changes out to the subscribed clients (one-way calls, so a slow or dead client holds nobody up).
/// Subscriptions live in memory and expire unless renewed: a reactivation loses them only until the clients renew.
/// </summary>
internal sealed partial class NamespaceWatchGrain(GrainFsClock time, GrainFs.Grains.Security.MountAccess access, GrainFs.Grains.Security.CallerIdentity caller, ILogger<NamespaceWatchGrain> logger) : Grain, INamespaceWatchGrain
{
    private readonly Dictionary<INamespaceObserver, (DateTime Until, GrainFs.DataPlane.Security.Principal? Who)> _observers = [];

    // Each subscriber hears only of paths in mounts it may read (an admin, or a silo, of all).
    public ValueTask SubscribeAsync(INamespaceObserver observer)
    {
        _observers[observer] = (time.GetUtcNow().UtcDateTime + INamespaceWatchGrain.SubscriptionLifetime, caller.Current);
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
        foreach (var (observer, (until, who)) in _observers.ToList())
        {
            if (until < now)
            {
                _observers.Remove(observer);
                continue;
            }

            var visible = who is null || who.IsAdmin ? paths : [.. paths.Where(p => access.MayReadPath(who, p))];
            if (visible.Length == 0)
            {
                continue;
            }

            try
            {
                _ = observer.ChangedAsync(visible);
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
