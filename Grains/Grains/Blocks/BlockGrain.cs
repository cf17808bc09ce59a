using GrainFs.DataPlane.Blocks;
using GrainFs.Storage.UnderStorage;
using Microsoft.Extensions.Logging;

namespace GrainFs.Grains.Blocks;

/// <summary>
/// A block's placement state on its home silo. Fills are single-flight twice over: the grain handles one call at a
/// time, and the tier store joins concurrent fills of a key. The grain holds no bytes and little state: what the
/// local tier store holds is the truth, so a reactivation (or a restarted silo, whose store re-indexes its files)
/// finds the block again. Each call is short: a fill is started, never awaited here, and a replica is copied by the
/// target worker, which reports back.
/// </summary>
[BlockHomePlacement]
internal sealed partial class BlockGrain(BlockFiller filler, LocalSilo silo, ILogger<BlockGrain> logger) : Grain, IBlockGrain
{
    private readonly List<string> _replicas = [];
    private readonly List<string> _pending = [];
    private BlockKey _key;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var text = this.GetPrimaryKeyString();
        if (!BlockKey.TryParse(text, out _key))
        {
            throw new ArgumentException($"'{text}' is not a block key (32 hex digits, '-', the block index in hex)");
        }

        return Task.CompletedTask;
    }

    public async ValueTask<BlockLocation> FillAsync(BlockSource source)
    {
        // Checked before anything starts: a source that is not this block's fills nothing.
        var start = await filler.StartAsync(source, expectedKey: _key);
        if (start.Status != FsStatus.Ok)
        {
            return Fail(start.Status, start.Message);
        }

        if (start.Fill is { } fill && fill.Completion.IsFaulted)
        {
            return Fail(FsStatus.IoError, Describe(fill.Completion.Exception));
        }

        return new BlockLocation(FsStatus.Ok, null, silo.Name, silo.DataEndpoint, start.Fill is null);
    }

    public async ValueTask<BlockLocation> RefillAsync(BlockSource source)
    {
        await filler.Store.DiscardAsync(_key);
        return await FillAsync(source);
    }

    public ValueTask<BlockState> GetStateAsync()
    {
        if (filler.Store.TryPeek(_key, out var block))
        {
            var header = block.Header;
            return ValueTask.FromResult(new BlockState(_key.ToString(), silo.Name, block.Tier.Name, header.DataLength, header.Pinned,
                header.ExpiresTicks == 0 ? null : new DateTime(header.ExpiresTicks, DateTimeKind.Utc), header.Checksums.Length, [.. _replicas]));
        }

        return ValueTask.FromResult(new BlockState(_key.ToString(), silo.Name, null, 0, false, null, 0, [.. _replicas]));
    }

    public async ValueTask<BlockLocation> ReplicateAsync(BlockSource source, string targetSilo)
    {
        if (targetSilo == silo.Name || _replicas.Contains(targetSilo) || _pending.Contains(targetSilo))
        {
            return new BlockLocation(FsStatus.Ok, null, targetSilo, string.Empty, _replicas.Contains(targetSilo));
        }

        if (_replicas.Count + _pending.Count >= IBlockGrain.MaxReplicas)
        {
            return Fail(FsStatus.Busy, $"block {_key} already has {IBlockGrain.MaxReplicas} replicas");
        }

        var located = await FillAsync(source);
        if (located.Status != FsStatus.Ok)
        {
            return located;
        }

        // The copy is checked against the checksums recorded here when the block was filled: only a block held in full
        // has them, so one still filling is replicated on a later request.
        if (!filler.Store.TryPeek(_key, out var held) || held.Header.DataLength != source.Length)
        {
            return Fail(FsStatus.Busy, $"block {_key} is still being filled on {silo.Name}; it is replicated once held");
        }

        var copy = await GrainFactory.GetGrain<IWorkerGrain>(targetSilo).CopyBlockAsync(_key, source.Length, silo.DataEndpoint, held.Header.Checksums);
        if (copy.Failures > 0)
        {
            return Fail(FsStatus.IoError, copy.FirstError);
        }

        if (copy.Blocks > 0)
        {
            // Held there already.
            _replicas.Add(targetSilo);
            LogReplicaRecorded(logger, _key.ToString(), targetSilo, _replicas.Count, IBlockGrain.MaxReplicas);
            return new BlockLocation(FsStatus.Ok, null, targetSilo, string.Empty, true);
        }

        _pending.Add(targetSilo);
        return new BlockLocation(FsStatus.Ok, null, targetSilo, string.Empty, false);
    }

    public Task ReplicaReadyAsync(string replicaSilo, bool copied)
    {
        _pending.Remove(replicaSilo);
        if (copied && !_replicas.Contains(replicaSilo))
        {
            _replicas.Add(replicaSilo);
            LogReplicaRecorded(logger, _key.ToString(), replicaSilo, _replicas.Count, IBlockGrain.MaxReplicas);
        }

        return Task.CompletedTask;
    }

    private BlockLocation Fail(FsStatus status, string? message) => new(status, message, silo.Name, silo.DataEndpoint, false);

    internal static string Describe(AggregateException? error) =>
        error?.InnerException is UnderStorageException u ? u.Message : error?.InnerException?.Message ?? "fill failed";

    // Once per replica of a hot block (at most MaxReplicas each): Debug, so a large dataset read remotely does not flood the log.
    [LoggerMessage(Level = LogLevel.Debug, EventName = "ReplicaRecorded", Message = "Block {Key} has a replica on {Silo} ({Replicas} of at most {MaxReplicas}); that host now reads it short-circuit")]
    private static partial void LogReplicaRecorded(ILogger logger, string key, string silo, int replicas, int maxReplicas);
}
