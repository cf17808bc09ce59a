using Microsoft.Extensions.Logging;

namespace GrainFs.Client;

/// <summary>
/// Hears the cluster's namespace changes (<see cref="INamespaceWatchGrain"/>): drops the client's cached entries of a
/// changed path at once and tells the client's users (<see cref="GrainFsClient.PathsChanged"/>), so another host's
/// close is seen in well under a second. The subscription is renewed well inside its lifetime.
/// </summary>
internal sealed partial class NamespaceWatcher : INamespaceObserver, IAsyncDisposable
{
    private readonly IGrainFactory _grains;
    private readonly NamespaceClient _namespace;
    private readonly Action<string[]> _changed;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly INamespaceObserver _reference;
    private readonly Task _renewals;

    public NamespaceWatcher(IGrainFactory grains, NamespaceClient @namespace, Action<string[]> changed, TimeProvider time, ILogger logger)
    {
        _grains = grains;
        _namespace = @namespace;
        _changed = changed;
        _logger = logger;
        _reference = grains.CreateObjectReference<INamespaceObserver>(this);
        _renewals = RenewAsync(time, _stop.Token);
    }

    private INamespaceWatchGrain Feed => _grains.GetGrain<INamespaceWatchGrain>(INamespaceWatchGrain.Key);

    public Task ChangedAsync(string[] paths)
    {
        foreach (var path in paths)
        {
            _namespace.Changed(path, subtree: true);
        }

        try
        {
            _changed(paths);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            LogHandlerFailed(_logger, e.Message);
        }

        return Task.CompletedTask;
    }

    private async Task RenewAsync(TimeProvider time, CancellationToken cancellationToken)
    {
        var every = INamespaceWatchGrain.SubscriptionLifetime / 3;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Feed.SubscribeAsync(_reference).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OrleansException or TimeoutException or SiloUnavailableException or InvalidOperationException)
            {
                LogSubscribeFailed(_logger, e.Message);
                every = TimeSpan.FromSeconds(5);
            }

            try
            {
                await Task.Delay(every, time, cancellationToken).ConfigureAwait(false);
                every = INamespaceWatchGrain.SubscriptionLifetime / 3;
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _renewals.ConfigureAwait(false);
        try
        {
            await Feed.UnsubscribeAsync(_reference).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OrleansException or TimeoutException or SiloUnavailableException or InvalidOperationException or ObjectDisposedException)
        {
            // The subscription expires on its own.
            LogSubscribeFailed(_logger, e.Message);
        }

        _grains.DeleteObjectReference<INamespaceObserver>(_reference);
        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not subscribe to namespace changes (retrying): {Reason}")]
    private static partial void LogSubscribeFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A namespace change handler failed: {Reason}")]
    private static partial void LogHandlerFailed(ILogger logger, string reason);
}
