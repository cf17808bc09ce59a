using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace GrainFs.Fuse;

/// <summary>
/// What the VFS learns changed elsewhere, on its way to the kernel (inval_entry, inval_inode). The VFS raises its events
/// inside its own calls, possibly on behalf of a request on that very inode or directory whose reply the kernel waits
/// for while holding the lock a notification needs; so an event is only queued, and one worker on the thread pool tells
/// the kernel. Bounded: beyond <see cref="Capacity"/> waiting, invalidations are dropped (counted and logged), and the
/// kernel's entry and attribute timeouts still bound what it keeps.
/// </summary>
internal sealed partial class InvalidationQueue : IDisposable
{
    /// <summary>Invalidations that may wait.</summary>
    public const int Capacity = 16_384;

    private readonly Channel<Invalidation> _queue;
    private readonly Func<ulong, string?, int> _notify;
    private readonly ILogger _logger;
    private readonly Task _worker;
    private long _dropped;

    /// <param name="notify">Tells the kernel: (parent, name) for an entry, (inode, null) for an inode; returns 0 or -errno.</param>
    /// <param name="logger">Where failures and drops are reported.</param>
    public InvalidationQueue(Func<ulong, string?, int> notify, ILogger logger)
    {
        _notify = notify;
        _logger = logger;
        _queue = Channel.CreateBounded<Invalidation>(
            new BoundedChannelOptions(Capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.DropWrite },
            _ => Interlocked.Increment(ref _dropped));
        _worker = Task.Run(RunAsync);
    }

    /// <summary>A name in a directory changed (created, removed, renamed, replaced).</summary>
    public void Entry(ulong parent, string name) => _queue.Writer.TryWrite(new Invalidation(parent, name));

    /// <summary>An inode's attributes or data changed.</summary>
    public void Inode(ulong ino) => _queue.Writer.TryWrite(new Invalidation(ino, null));

    /// <summary>Takes no more, and waits (bounded) for the worker to pass on or drop what is queued.</summary>
    public void Dispose()
    {
        _queue.Writer.TryComplete();
        _worker.Wait(TimeSpan.FromSeconds(10));
    }

    private async Task RunAsync()
    {
        var reader = _queue.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (reader.TryRead(out var invalidation))
            {
                var result = _notify(invalidation.Ino, invalidation.Name);
                // ENOENT: the kernel holds no such inode or name, so there is nothing to drop.
                if (result != 0 && result != -Native.ENOENT)
                {
                    LogFailed(_logger, invalidation.Ino, invalidation.Name ?? string.Empty, -result);
                }
            }

            if (Interlocked.Exchange(ref _dropped, 0) is var dropped and > 0)
            {
                LogDropped(_logger, dropped);
            }
        }
    }

    /// <summary>A name in a directory (<see cref="Name"/> set, <see cref="Ino"/> the parent) or an inode (<see cref="Name"/> null).</summary>
    private readonly record struct Invalidation(ulong Ino, string? Name);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Count} kernel cache invalidations dropped (queue full): the kernel may show old names or attributes until its timeouts pass")]
    private static partial void LogDropped(ILogger logger, long count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Kernel cache invalidation of inode {Ino} '{Name}' failed: errno {Errno}")]
    private static partial void LogFailed(ILogger logger, ulong ino, string name, int errno);
}
