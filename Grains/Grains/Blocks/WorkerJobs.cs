using System.Collections.Concurrent;
using GrainFs.DataPlane.Blocks;
using GrainFs.Storage.Cache;
using GrainFs.Storage.UnderStorage;
using Microsoft.Extensions.Logging;

namespace GrainFs.Grains.Blocks;

/// <summary>
/// A worker's long-running work, off its grain: loads (pre-warm batches, a few fills at once) with progress a client
/// follows, and replica copies whose outcome goes to the block's grain. Every job is tracked and awaited when the silo
/// stops; a finished load nobody asked about again is forgotten after <see cref="Retention"/>.
/// </summary>
public sealed partial class WorkerJobs(BlockFiller filler, IGrainFactory grains, LocalSilo silo, GrainFsClock time, DataPortClient dataPort, ILogger<WorkerJobs> logger) : IAsyncDisposable
{
    /// <summary>Fills one load runs at once (several loads run at once; an object store serves a bounded number of streams well).</summary>
    public const int MaxParallelFills = 8;

    /// <summary>How long a finished load's outcome is kept for a client that has not collected it.</summary>
    public static readonly TimeSpan Retention = TimeSpan.FromMinutes(10);

    private readonly ConcurrentDictionary<long, Load> _loads = new();
    private readonly ConcurrentDictionary<Task, byte> _running = new();
    private long _nextLoad;

    private TierStore Store => filler.Store;

    /// <summary>Starts a load; returns its id.</summary>
    /// <summary>When a TTL set now ends, on this worker's clock (the one expiries are compared with); null for none.</summary>
    public long? ExpiresTicks(TimeSpan? ttl) => ttl is { } t ? (time.GetUtcNow() + t).UtcTicks : null;

    public long StartLoad(BlockSource[] blocks, bool? pin, TimeSpan? ttl)
    {
        Forget(time.GetUtcNow());
        var id = Interlocked.Increment(ref _nextLoad);
        var load = new Load(blocks.Length);
        _loads[id] = load;
        Track(RunLoadAsync(load, blocks, pin, ExpiresTicks(ttl)));
        return id;
    }

    /// <summary>Where a load stands, when it is done or after at most <paramref name="maxWait"/>; a finished load is forgotten once reported.</summary>
    public async ValueTask<LoadStatus> WaitLoadAsync(long id, TimeSpan maxWait)
    {
        if (!_loads.TryGetValue(id, out var load))
        {
            return new LoadStatus(true, 0, 0, 0, 1, $"load {id} is not known to the worker of {silo.Name} (the silo restarted?)");
        }

        await Task.WhenAny(load.Finished.Task, Task.Delay(maxWait, time)).ConfigureAwait(false);
        var status = load.Status();
        if (status.Done)
        {
            _loads.TryRemove(id, out _);
        }

        return status;
    }

    /// <summary>
    /// Starts copying a block from another worker (a replica), each chunk checked against the <paramref name="checksums"/>
    /// its home recorded; false when it is held here already.
    /// </summary>
    public bool StartCopy(BlockKey key, int length, string fromEndpoint, ulong[] checksums)
    {
        var fill = StartCopyFill(key, length, fromEndpoint, checksums);
        if (fill is null)
        {
            return false;
        }

        Track(ReportCopyAsync(fill, key, fromEndpoint));
        return true;
    }

    /// <summary>Starts copying a block from another worker's data port into this store; null when it is held here already.</summary>
    private BlockFill? StartCopyFill(BlockKey key, int length, string fromEndpoint, ulong[] checksums, ushort flags = 0, long expiresTicks = 0)
    {
        var source = new RecordedChecksumStream(new DataPortStream(dataPort, fromEndpoint, key, length), key, length, checksums, fromEndpoint);
        var fill = Store.StartFill(key, length, _ => ValueTask.FromResult<Stream>(source), flags, expiresTicks);
        if (fill is null)
        {
            source.Dispose();
        }

        return fill;
    }

    /// <summary>
    /// Starts adopting blocks from another worker (a drain): each copied from its data port and checked, then given its
    /// pin and what is left of its TTL; returns the job's id (followed like a load).
    /// </summary>
    public long StartAdopt(BlockCopy[] blocks)
    {
        Forget(time.GetUtcNow());
        var id = Interlocked.Increment(ref _nextLoad);
        var load = new Load(blocks.Length);
        _loads[id] = load;
        Track(RunAdoptAsync(load, blocks));
        return id;
    }

    private async Task RunAdoptAsync(Load load, BlockCopy[] blocks)
    {
        await Task.Yield();
        // Copies are filled with their pin and TTL; only blocks held here already take them afterwards.
        var held = new List<BlockCopy>();
        var running = new List<BlockFill>(MaxParallelFills);
        try
        {
            foreach (var block in blocks)
            {
                BlockFill? fill;
                try
                {
                    fill = StartCopyFill(block.Key, block.Length, block.FromEndpoint, block.Checksums, block.Pinned ? BlockFile.FlagPinned : (ushort)0, ExpiresTicks(block.Ttl) ?? 0);
                }
                catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
                {
                    load.Failed($"{block.Key}: {e.Message}");
                    continue;
                }

                if (fill is null)
                {
                    held.Add(block);
                    load.Filled(0);
                    continue;
                }

                running.Add(fill);
                if (running.Count >= MaxParallelFills)
                {
                    // Bounded: wait for the oldest before starting more.
                    await SettleAsync(load, running[0]).ConfigureAwait(false);
                    running.RemoveAt(0);
                }
            }

            foreach (var fill in running)
            {
                await SettleAsync(load, fill).ConfigureAwait(false);
            }

            var pinned = held.Where(b => b.Pinned).Select(b => b.Key).ToList();
            if (pinned.Count > 0)
            {
                await Store.SetFlagsAsync(pinned, true, null).ConfigureAwait(false);
            }

            foreach (var block in held.Where(b => b.Ttl is not null))
            {
                await Store.SetFlagsAsync([block.Key], null, ExpiresTicks(block.Ttl)).ConfigureAwait(false);
            }
        }
        finally
        {
            load.Finish(time.GetUtcNow());
        }
    }

    private async Task ReportCopyAsync(BlockFill fill, BlockKey key, string fromEndpoint)
    {
        var copied = true;
        try
        {
            await fill.Completion.ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or TimeoutException or OperationCanceledException or ObjectDisposedException)
        {
            copied = false;
            LogCopyFailed(logger, key.ToString(), fromEndpoint, e.Message);
        }

        try
        {
            await grains.GetGrain<IBlockGrain>(key.ToString()).ReplicaReadyAsync(silo.Name, copied).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OrleansException or TimeoutException)
        {
            // The block's home is gone; the replica is simply not counted there.
            LogCopyFailed(logger, key.ToString(), fromEndpoint, e.Message);
        }
    }

    private async Task RunLoadAsync(Load load, BlockSource[] blocks, bool? pin, long? expiresTicks)
    {
        await Task.Yield();
        var flags = pin == true ? BlockFile.FlagPinned : (ushort)0;
        var expires = expiresTicks ?? 0;
        var held = new List<BlockKey>();
        var running = new List<BlockFill>(MaxParallelFills);
        try
        {
            foreach (var source in blocks)
            {
                FillStart start;
                try
                {
                    start = await filler.StartAsync(source, flags, expires).ConfigureAwait(false);
                }
                catch (Exception e) when (e is OrleansException or TimeoutException or ObjectDisposedException)
                {
                    load.Failed(e.Message);
                    continue;
                }

                if (start.Status != FsStatus.Ok)
                {
                    load.Failed(start.Message);
                    continue;
                }

                if (start.Fill is null)
                {
                    held.Add(start.Key);
                    load.Filled(0);
                    continue;
                }

                running.Add(start.Fill);
                if (running.Count >= MaxParallelFills)
                {
                    // Bounded: wait for the oldest before starting more.
                    await SettleAsync(load, running[0]).ConfigureAwait(false);
                    running.RemoveAt(0);
                }
            }

            foreach (var fill in running)
            {
                await SettleAsync(load, fill).ConfigureAwait(false);
            }

            if (held.Count > 0 && (pin is not null || expiresTicks is not null))
            {
                await Store.SetFlagsAsync(held, pin, expiresTicks).ConfigureAwait(false);
            }
        }
        finally
        {
            load.Finish(time.GetUtcNow());
        }
    }

    private static async Task SettleAsync(Load load, BlockFill fill)
    {
        try
        {
            await fill.Completion.ConfigureAwait(false);
            load.Filled(fill.Length);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            load.Failed(e is UnderStorageException u ? u.Message : e.Message);
        }
    }

    private void Track(Task task)
    {
        _running[task] = 0;
        _ = task.ContinueWith(static (t, jobs) => ((ConcurrentDictionary<Task, byte>)jobs!).TryRemove(t, out _), _running, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private void Forget(DateTimeOffset now)
    {
        foreach (var (id, load) in _loads)
        {
            if (load.FinishedAt is { } at && now - at > Retention)
            {
                _loads.TryRemove(id, out _);
            }
        }
    }

    /// <summary>Waits for every job to end (the tier store cancels their fills when it stops).</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var task in _running.Keys)
        {
            try
            {
                await task.ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                LogJobFailed(logger, e.Message);
            }
        }
    }

    /// <summary>One load's counters.</summary>
    private sealed class Load(int total)
    {
        private readonly Lock _gate = new();
        private int _blocks;
        private long _bytes;
        private int _failures;
        private string? _firstError;

        public TaskCompletionSource Finished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public DateTimeOffset? FinishedAt { get; private set; }

        public void Filled(long bytes)
        {
            lock (_gate)
            {
                _blocks++;
                _bytes += bytes;
            }
        }

        public void Failed(string? message)
        {
            lock (_gate)
            {
                _failures++;
                _firstError ??= message;
            }
        }

        public void Finish(DateTimeOffset now)
        {
            FinishedAt = now;
            Finished.TrySetResult();
        }

        public LoadStatus Status()
        {
            lock (_gate)
            {
                return new LoadStatus(Finished.Task.IsCompleted, total, _blocks, _bytes, _failures, _firstError);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Replica copy of block {Key} from {Endpoint} failed: {Reason}")]
    private static partial void LogCopyFailed(ILogger logger, string key, string endpoint, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A worker job failed: {Reason}")]
    private static partial void LogJobFailed(ILogger logger, string reason);
}
