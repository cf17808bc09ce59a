using GrainFs.DataPlane;
using GrainFs.DataPlane.Blocks;
using Microsoft.Extensions.Logging;

namespace GrainFs.Storage.Cache;

/// <summary>
/// Runs fills of blocks into the tiers, single-flight: concurrent requests for a block share one under-storage read,
/// and its readers follow the bytes as they arrive (<see cref="BlockFill"/>). A fill reserves its bytes first
/// (waiting for eviction when no tier has room), writes the block file with <see cref="BlockFileWriter"/> under a
/// temporary name, and renames it into place once no deletion of the key is in flight. Every fill is tracked, and
/// disposing the coordinator cancels and awaits them, so nothing writes into a tier after its store is gone.
/// </summary>
public sealed partial class FillCoordinator : IAsyncDisposable
{
    private readonly TierIndex _index;
    private readonly CacheOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly HashSet<BlockFill> _running = [];
    private int _disposed;

    /// <summary>Creates the coordinator of an index.</summary>
    public FillCoordinator(TierIndex index, CacheOptions options, TimeProvider time, ILogger logger)
    {
        _index = index;
        _options = options;
        _time = time;
        _logger = logger;
    }

    /// <summary>Fills running now.</summary>
    public int Running
    {
        get
        {
            lock (_running)
            {
                return _running.Count;
            }
        }
    }

    /// <summary>
    /// Starts filling a block from <paramref name="open"/> (a stream over exactly the block's bytes), or joins the fill
    /// already running. Returns null when the block is already held. <paramref name="flags"/> and
    /// <paramref name="expiresTicks"/> are applied to the block.
    /// </summary>
    public BlockFill? Start(BlockKey key, int length, Func<CancellationToken, ValueTask<Stream>> open, ushort flags = 0, long expiresTicks = 0) =>
        Start(key, length, open, flags, expiresTicks, null);

    /// <summary>
    /// As <see cref="Start(BlockKey, int, Func{CancellationToken, ValueTask{Stream}}, ushort, long)"/>, placed as
    /// <paramref name="placement"/> says: on one tier only (written blocks go to the write tier), synced to disk before
    /// the fill completes (a writer's acknowledgement means the bytes survive a crash).
    /// </summary>
    public BlockFill? Start(BlockKey key, int length, Func<CancellationToken, ValueTask<Stream>> open, ushort flags, long expiresTicks, FillPlacement? placement)
    {
        if (length < 0 || length > BlockFile.MaxBlockSize)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, $"a block holds 0 to {BlockFile.MaxBlockSize} bytes");
        }

        var fill = _index.BeginFill(key, length, out var started);
        if (started)
        {
            lock (_running)
            {
                if (_disposed != 0)
                {
                    var stopped = new ObjectDisposedException(nameof(FillCoordinator), "the tier store is stopping");
                    _index.AbortFill(fill!, null, 0);
                    fill!.Fail(stopped);
                    throw stopped;
                }

                _running.Add(fill!);
            }

            // Tracked: the fill is in _running until RunAsync ends, and DisposeAsync waits for it.
            _ = RunAsync(fill!, open, flags, expiresTicks, placement);
        }

        return fill;
    }

    /// <summary>Attempts of a fill whose source's body breaks off (a connection reset mid-body), 50 ms × n apart.</summary>
    public const int BrokenOffAttempts = 10;

    private async Task RunAsync(BlockFill fill, Func<CancellationToken, ValueTask<Stream>> open, ushort flags, long expiresTicks, FillPlacement? placement)
    {
        // Off the caller's thread (a grain turn, a data-port connection): the fill is the coordinator's work.
        await Task.Yield();
        var key = fill.Key;
        var need = BlockFile.HeaderLength(fill.Length) + (long)fill.Length;
        Tier? tier = null;
        var attempts = 0;
        var brokenOff = 0;
        try
        {
            BlockHeader header;
            while (true)
            {
                tier ??= await ReserveAsync(need, placement?.Tier, _stop.Token).ConfigureAwait(false);
                fill.Place(tier);
                try
                {
                    // The tier's tmp folder may have been removed behind the store's back (a cleaner, a person): made
                    // again, at one stat per fill, rather than failing every later fill of the tier.
                    TierFolders.EnsureFolder(tier.TempRoot, tier.Permissions);
                    await using var source = new StallGuardStream(await open(_stop.Token).ConfigureAwait(false), _options.FillStallTimeout, _stop.Token);
                    header = await BlockFileWriter.WriteAsync(fill.TempPath, key, fill.Length, source, flags, _time.GetUtcNow().UtcTicks, expiresTicks, fill.Publish, _stop.Token, durable: placement?.Durable == true, mode: tier.Permissions.FileMode).ConfigureAwait(false);
                    break;
                }
                catch (FillStalledException e) when (e.BrokeOff ? ++brokenOff < BrokenOffAttempts : ++attempts < _options.FillAttempts)
                {
                    // The source stopped sending or broke off (a stalled or reset S3 body): asked again on a new request,
                    // into the same room; a body that broke off failed at once, so it is asked again sooner and more often.
                    fill.Restart();
                    TierFiles.TryDelete(fill.TempPath);
                    LogStalled(_logger, key.ToString(), e.Message, e.BrokeOff ? brokenOff : attempts, e.BrokeOff ? BrokenOffAttempts : _options.FillAttempts);
                    if (e.BrokeOff)
                    {
                        await Task.Delay(TimeSpan.FromMilliseconds(50 * brokenOff), _stop.Token).ConfigureAwait(false);
                    }
                }
                catch (IOException e) when (DiskErrors.IsFault(e) && placement?.Tier is null)
                {
                    // The tier's disk failed the fill (full although its accounting had room, or an I/O error): out of
                    // service for a while, and the fill starts again on another tier (a new GET; what readers already
                    // got was right, what they wait for comes from the new file).
                    fill.Restart();
                    TierFiles.TryDelete(fill.TempPath);
                    _index.Release(tier, need);
                    var failed = tier;
                    tier = null;
                    _index.TakeOutOfService(failed, e.Message, _options.TierFaultPause);
                    LogTierFault(_logger, failed.Name, failed.Root, e.Message, _options.TierFaultPause.TotalSeconds);
                }
            }

            var final = tier.BlockPath(key);
            TierFolders.EnsureFolder(Path.GetDirectoryName(final)!, tier.Permissions);
            await _index.WaitForRemovalsAsync(key, _stop.Token).ConfigureAwait(false);
            File.Move(fill.TempPath, final, overwrite: true);
            if (placement?.Durable == true)
            {
                // The rename is durable once its directory is synced.
                DiskSync.Directory(Path.GetDirectoryName(final)!);
            }
            _index.CompleteFill(fill, tier, header, need);
            fill.Complete();
        }
        catch (Exception e)
        {
            if (fill.TempPath.Length > 0)
            {
                TierFiles.TryDelete(fill.TempPath);
            }

            _index.AbortFill(fill, tier, need);
            LogFillFailed(_logger, key.ToString(), e.Message);
            fill.Fail(e);
        }
        finally
        {
            lock (_running)
            {
                _running.Remove(fill);
            }
        }
    }

    /// <summary>Reserves <paramref name="bytes"/> in the fastest tier with room (or on <paramref name="only"/>), waiting for eviction when none has.</summary>
    private async Task<Tier> ReserveAsync(long bytes, Tier? only, CancellationToken cancellationToken)
    {
        var deadline = _time.GetUtcNow() + (only is null ? _options.SpaceWait : _options.WriteSpaceWait);
        while (true)
        {
            var tier = _index.TryReserve(bytes, _options.HighWatermark, out var freed, only);
            if (tier is not null)
            {
                return tier;
            }

            var left = deadline - _time.GetUtcNow();
            if (left <= TimeSpan.Zero)
            {
                throw only is null
                    ? new TierFullException($"no tier has {ByteSize.Format(bytes)} free after {_options.SpaceWait.TotalSeconds:0} s of eviction (everything pinned or being read?)")
                    : new TierFullException($"the write tier {only.Name} ({only.Root}) has no {ByteSize.Format(bytes)} free after {_options.WriteSpaceWait.TotalSeconds:0} s: it holds {ByteSize.Format(only.Used)} of {ByteSize.Format(only.Capacity)}, files not yet persisted are never evicted");
            }

            await Task.WhenAny(freed, Task.Delay(TimeSpan.FromMilliseconds(Math.Min(500, left.TotalMilliseconds)), _time, cancellationToken)).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    /// <summary>Cancels the fills still running and waits for every one of them to end (their files removed).</summary>
    public async ValueTask DisposeAsync()
    {
        BlockFill[] running;
        lock (_running)
        {
            if (_disposed != 0)
            {
                return;
            }

            _disposed = 1;
            running = [.. _running];
        }

        await _stop.CancelAsync().ConfigureAwait(false);

        foreach (var fill in running)
        {
            try
            {
                await fill.Completion.ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Cancelled or failed: its files are gone and its readers were told.
            }
        }

        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Tier {Tier} ({Root}) failed a fill ({Reason}): out of service for {Seconds} s, fills go to the other tiers")]
    private static partial void LogTierFault(ILogger logger, string tier, string root, string reason, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Fill of block {Key}: {Reason}; asking the source again (attempt {Attempt} of {Attempts} failed)")]
    private static partial void LogStalled(ILogger logger, string key, string reason, int attempt, int attempts);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Fill of block {Key} failed: {Reason}")]
    private static partial void LogFillFailed(ILogger logger, string key, string reason);
}

/// <summary>
/// A fill's source sent nothing for longer than <see cref="CacheOptions.FillStallTimeout"/>, or its body broke off (a
/// connection reset mid-body): the fill asks again on a new request.
/// </summary>
public sealed class FillStalledException : IOException
{
    public FillStalledException(string message)
        : base(message)
    {
    }

    public FillStalledException(string message, Exception inner)
        : base(message, inner)
    {
    }

    /// <summary>The body broke off (a connection reset) rather than stalled: it failed fast, so it is worth more attempts.</summary>
    public bool BrokeOff { get; init; }
}

/// <summary>
/// A fill's source with a deadline on every read: a read that brings nothing for <c>timeout</c> is cancelled and fails
/// with <see cref="FillStalledException"/> (a body that stalls would otherwise hold the block's readers and its room
/// forever). One timer per fill, reset for each read.
/// </summary>
internal sealed class StallGuardStream(Stream inner, TimeSpan timeout, CancellationToken stop) : ReadOnlyStream
{
    private readonly CancellationTokenSource _deadline = CancellationTokenSource.CreateLinkedTokenSource(stop);

    // Fills read their source asynchronously; a synchronous read would have no deadline.
    public override int Read(Span<byte> buffer) => throw new NotSupportedException("a fill's source is read asynchronously");

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (!_deadline.TryReset())
        {
            stop.ThrowIfCancellationRequested();
            throw new FillStalledException($"the source sent nothing for {timeout.TotalSeconds:0.#} s");
        }

        _deadline.CancelAfter(timeout);

        // The coordinator reads with its own stop token, which the deadline already follows: no second link per read.
        using var both = cancellationToken.CanBeCanceled && cancellationToken != stop ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _deadline.Token) : null;
        try
        {
            return await inner.ReadAsync(buffer, both?.Token ?? _deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!stop.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new FillStalledException($"the source sent nothing for {timeout.TotalSeconds:0.#} s");
        }
        catch (IOException e) when (e is not FillStalledException)
        {
            // The body broke off (an S3 connection reset mid-body): worth a new request, as a stall is.
            throw new FillStalledException($"the source's body broke off: {e.Message}", e) { BrokeOff = true };
        }
        finally
        {
            _deadline.CancelAfter(Timeout.InfiniteTimeSpan);
        }
    }

    public override async ValueTask DisposeAsync()
    {
        _deadline.Dispose();
        await inner.DisposeAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _deadline.Dispose();
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>Where a fill goes: one tier only, synced to disk.</summary>
/// <param name="Tier">The only tier the block may go to (null: the fastest with room).</param>
/// <param name="Durable">Sync the block file and its directory before the fill completes.</param>
public sealed record FillPlacement(Tier? Tier, bool Durable);

/// <summary>No tier (or not the one required) has room, and nothing can be evicted to make it.</summary>
public sealed class TierFullException(string message) : IOException(message);

/// <summary>fsync of folders (files are synced through their handles).</summary>
public static partial class DiskSync
{
    /// <summary>Syncs a directory's entries (a rename or create inside it becomes durable).</summary>
    public static void Directory(string path)
    {
        var fd = Open(path, 0x10000 /* O_RDONLY | O_DIRECTORY */);
        if (fd < 0)
        {
            return;
        }

        try
        {
            _ = Fsync(fd);
        }
        finally
        {
            _ = Close(fd);
        }
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "open", StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "fsync")]
    private static partial int Fsync(int fd);

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}

/// <summary>File operations of the tier store, done outside the index lock.</summary>
internal static class TierFiles
{
    /// <summary>Deletes files, then ends their removals (so fills of those keys may rename theirs into place).</summary>
    public static void Delete(TierIndex index, List<(string Path, TierIndex.Removal Removal)> deletions)
    {
        foreach (var (path, removal) in deletions)
        {
            TryDelete(path);
            index.EndRemoval(removal);
        }
    }

    /// <summary>Frees blocks: out of the index at once, their files deleted on the thread pool. Returns how many were held and their bytes.</summary>
    public static async Task<(int Freed, long Bytes)> FreeAsync(TierIndex index, IEnumerable<BlockKey> keys, bool evenUnpersisted)
    {
        var deletions = index.DetachForFree(keys, evenUnpersisted, out var freed, out var bytes);
        if (deletions.Count > 0)
        {
            await Task.Run(() => Delete(index, deletions)).ConfigureAwait(false);
        }
        else if (freed > 0)
        {
            index.SignalSpaceFreed();
        }

        return (freed, bytes);
    }

    public static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            System.Diagnostics.Debug.WriteLine($"could not delete {path}: {e.Message}");
        }
    }
}
