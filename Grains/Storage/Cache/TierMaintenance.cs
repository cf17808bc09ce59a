using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace GrainFs.Storage.Cache;

/// <summary>
/// The tier store's background work, as a hosted service: TTL expiry, watermark eviction (slowest tier first, so a
/// demotion finds room; a victim is demoted to the next tier when there is one and dropped from the last), and
/// promotion of blocks hit in a lower tier. It runs when the index asks (a tier passed its high watermark, a fill
/// waits for room, a promotion is due) and every <see cref="CacheOptions.MaintenanceInterval"/>; never inside a read.
/// </summary>
public sealed partial class TierMaintenance : BackgroundService
{
    private const int CopyBufferSize = 1 << 20;
    private readonly TierIndex _index;
    private readonly CacheOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private TaskCompletionSource _nextPass = NewPass();
    private bool _stopped;

    /// <summary>Creates the maintenance of an index.</summary>
    public TierMaintenance(TierIndex index, CacheOptions options, TimeProvider time, ILogger logger)
    {
        _index = index;
        _options = options;
        _time = time;
        _logger = logger;
    }

    /// <summary>
    /// Asks for a pass now and completes when a pass that began after this call has finished, for a caller that changed
    /// what a pass acts on and wants its outcome rather than the next <see cref="CacheOptions.MaintenanceInterval"/>: a
    /// TTL set to a time already past, room wanted now, a clock moved forward in a test. The pass runs in the service
    /// (never beside another pass), so this works only while the service runs. Fails with the error a failed pass logged;
    /// canceled when the service stops first.
    /// </summary>
    public Task RequestPassAsync(CancellationToken cancellationToken = default)
    {
        var pass = Volatile.Read(ref _nextPass);
        if (Volatile.Read(ref _stopped))
        {
            pass.TrySetCanceled(CancellationToken.None);
        }

        _index.MaintenanceWanted.Release();
        return pass.Task.WaitAsync(cancellationToken);
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await _index.MaintenanceWanted.WaitAsync(_options.MaintenanceInterval, stoppingToken).ConfigureAwait(false);

                // Callers that asked before this point are answered by this pass; later ones by the next.
                var waiters = Interlocked.Exchange(ref _nextPass, NewPass());
                try
                {
                    await MaintainOnceAsync(stoppingToken).ConfigureAwait(false);
                    waiters.TrySetResult();
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    LogMaintenanceFailed(_logger, e.Message);
                    waiters.TrySetException(e);
                }
                finally
                {
                    // Stopped (or failed unexpectedly) half-way.
                    waiters.TrySetCanceled(CancellationToken.None);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
        finally
        {
            Volatile.Write(ref _stopped, true);
            Volatile.Read(ref _nextPass).TrySetCanceled(CancellationToken.None);
        }
    }

    private static TaskCompletionSource NewPass() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>One pass: TTL expiry, eviction down to the low watermark, promotions.</summary>
    private async Task MaintainOnceAsync(CancellationToken cancellationToken = default)
    {
        var expired = _index.Expired(_time.GetUtcNow().UtcTicks);
        if (expired.Count > 0)
        {
            await TierFiles.FreeAsync(_index, expired, evenUnpersisted: false).ConfigureAwait(false);
        }

        for (var level = _index.Tiers.Count - 1; level >= 0; level--)
        {
            await EvictAsync(_index.Tiers[level], cancellationToken).ConfigureAwait(false);
        }

        await PromoteAsync(cancellationToken).ConfigureAwait(false);
        _index.SignalSpaceFreed();
    }

    private async Task EvictAsync(Tier tier, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested && _index.NextVictim(tier, _options.HighWatermark, _options.LowWatermark) is { } victim)
        {
            var to = _index.ReserveForMove(victim, _index.Tiers.Skip(tier.Level + 1), _options.HighWatermark);
            if (to is null || await MoveAsync(victim, to, promotion: false, cancellationToken).ConfigureAwait(false) == MoveOutcome.Failed)
            {
                await Task.Run(() => TierFiles.Delete(_index, _index.Drop(victim)), CancellationToken.None).ConfigureAwait(false);
            }

            _index.SignalSpaceFreed();
        }
    }

    private async Task PromoteAsync(CancellationToken cancellationToken)
    {
        foreach (var block in _index.TakePromotions())
        {
            var to = _index.ReserveForMove(block, _index.Tiers.Take(block.Tier.Level), _options.LowWatermark);
            if (to is null)
            {
                TierFiles.Delete(_index, _index.Unclaim(block));
                continue;
            }

            if (await MoveAsync(block, to, promotion: true, cancellationToken).ConfigureAwait(false) == MoveOutcome.Failed)
            {
                TierFiles.Delete(_index, _index.Unclaim(block));
            }
        }
    }

    /// <summary>
    /// Copies a claimed block into <paramref name="to"/> (its room reserved) and moves its entry there. After a failed
    /// copy the block stays claimed, for the caller to drop or unclaim; after a free that came meanwhile every copy is gone.
    /// </summary>
    private async Task<MoveOutcome> MoveAsync(CachedBlock block, Tier to, bool promotion, CancellationToken cancellationToken)
    {
        var temp = to.NewTempPath(block.Key);
        var final = to.BlockPath(block.Key);
        var copied = false;
        try
        {
            TierFolders.EnsureFolder(to.TempRoot, to.Permissions);
            await using (var source = new FileStream(block.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, CopyBufferSize, FileOptions.Asynchronous | FileOptions.SequentialScan))
            await using (var target = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, CopyBufferSize, FileOptions.Asynchronous))
            {
                TierFolders.SetFileMode(target.SafeFileHandle, to.Permissions);
                await source.CopyToAsync(target, CopyBufferSize, cancellationToken).ConfigureAwait(false);
            }

            TierFolders.EnsureFolder(Path.GetDirectoryName(final)!, to.Permissions);
            File.Move(temp, final, overwrite: true);
            copied = true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or OperationCanceledException)
        {
            // Stopped or failed half-way: the partial copy goes; the block stays where it was.
            TierFiles.TryDelete(temp);
        }

        var (outcome, deletions) = _index.CompleteMove(block, to, copied, final, promotion);
        if (deletions.Count > 0)
        {
            await Task.Run(() => TierFiles.Delete(_index, deletions), CancellationToken.None).ConfigureAwait(false);
        }

        return outcome;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Tier maintenance failed: {Reason}")]
    private static partial void LogMaintenanceFailed(ILogger logger, string reason);
}
