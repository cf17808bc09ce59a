using GrainFs.Fuse;
using Microsoft.Extensions.Logging.Abstractions;

namespace GrainFs.Tests.Fuse;

/// <summary>The queue between the VFS's invalidation events and the kernel, with a fake kernel.</summary>
public class InvalidationQueueTests
{
    [Fact]
    public async Task Entries_and_inodes_reach_the_kernel_in_the_order_raised_and_raising_never_waits_for_it()
    {
        var seen = new List<(ulong Ino, string? Name)>();
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // The kernel is busy (waiting for the reply of the very request that raised the event): raising must not wait.
        using var kernelBusy = new ManualResetEventSlim(false);
        using var queue = new InvalidationQueue((ino, name) =>
        {
            kernelBusy.Wait();
            lock (seen)
            {
                seen.Add((ino, name));
                if (seen.Count == 3)
                {
                    all.SetResult();
                }
            }

            return -Native.ENOENT; // not cached: ignored
        }, NullLogger.Instance);

        queue.Entry(1, "a");
        queue.Inode(5);
        queue.Entry(1, "b");
        Assert.False(all.Task.IsCompleted);
        kernelBusy.Set();
        await all.Task.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal([(1UL, "a"), (5UL, null), (1UL, "b")], seen);
    }

    [Fact]
    public async Task Nothing_is_passed_on_after_dispose()
    {
        var calls = 0;
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var queue = new InvalidationQueue((_, _) =>
        {
            Interlocked.Increment(ref calls);
            first.TrySetResult();
            return 0;
        }, NullLogger.Instance);
        queue.Inode(2);
        await first.Task.WaitAsync(TimeSpan.FromSeconds(10));
        queue.Dispose();

        queue.Inode(3);
        queue.Entry(1, "late");
        Assert.Equal(1, Volatile.Read(ref calls));
    }
}
