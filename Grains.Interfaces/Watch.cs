namespace GrainFs;

/// <summary>A client that wants to hear of namespace changes (a FUSE daemon tells its kernel; an SDK client drops cached entries).</summary>
[Alias("grainfs.INamespaceObserver")]
public interface INamespaceObserver : IGrainObserver
{
    /// <summary>These full GrainFS paths changed (a commit, a removal, a rename, new attributes).</summary>
    [Alias("Changed"), Orleans.Concurrency.OneWay]
    Task ChangedAsync(string[] paths);
}

/// <summary>
/// The cluster's namespace change feed: directories publish each change, subscribed clients hear it, so another host's
/// mount sees a closed file at once despite its kernel's attribute timeouts. Subscriptions expire unless renewed.
/// </summary>
[Alias("grainfs.INamespaceWatchGrain")]
public interface INamespaceWatchGrain : IGrainWithIntegerKey
{
    /// <summary>The key of the one feed of a cluster.</summary>
    public const long Key = 0;

    /// <summary>How long a subscription lasts unless renewed.</summary>
    public static readonly TimeSpan SubscriptionLifetime = TimeSpan.FromMinutes(3);

    /// <summary>Subscribes (or renews) an observer.</summary>
    [Alias("Subscribe"), Access(Access.Authenticated)]
    ValueTask SubscribeAsync(INamespaceObserver observer);

    /// <summary>Ends a subscription.</summary>
    [Alias("Unsubscribe"), Access(Access.Authenticated)]
    ValueTask UnsubscribeAsync(INamespaceObserver observer);

    /// <summary>Silo-internal, from directories: these paths changed.</summary>
    [Alias("Publish"), Orleans.Concurrency.OneWay]
    Task PublishAsync(string[] paths);
}
