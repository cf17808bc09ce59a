using GrainFs.DataPlane.Blocks;
using GrainFs.Storage.UnderStorage;

namespace GrainFs.Grains.Blocks;

/// <summary>
/// A block's placement state on its home silo. Fills are single-flight twice over: the grain handles one call at a
/// time, and the tier store joins concurrent fills of a key. The grain holds no bytes and little state: what the
/// local tier store holds is the truth, so a reactivation (or a restarted silo, whose store re-indexes its files)
/// finds the block again.
/// </summary>
[BlockHomePlacement]
internal sealed class BlockGrain(BlockFiller filler, LocalSilo silo) : Grain, IBlockGrain
{
    private readonly List<string> _replicas = [];

    public async ValueTask<BlockLocation> FillAsync(BlockSource source)
    {
        var start = await filler.StartAsync(source);
        if (start.Status != FsStatus.Ok)
        {
            return Fail(start.Status, start.Message);
        }

        if (start.Key.ToString() != this.GetPrimaryKeyString())
        {
            return Fail(FsStatus.InvalidArgument, $"block source {source.Path}#{source.Index} does not match block {this.GetPrimaryKeyString()}");
        }

        if (start.Fill is { } fill && fill.Completion.IsFaulted)
        {
            return Fail(FsStatus.IoError, Describe(fill.Completion.Exception));
        }

        return new BlockLocation(FsStatus.Ok, null, silo.Name, silo.DataEndpoint, start.Fill is null);
    }

    public async ValueTask<BlockLocation> RefillAsync(BlockSource source)
    {
        if (BlockKey.TryParse(this.GetPrimaryKeyString(), out var key))
        {
            await filler.Store.DiscardAsync(key);
        }

        return await FillAsync(source);
    }

    public ValueTask<BlockState> GetStateAsync()
    {
        var text = this.GetPrimaryKeyString();
        if (BlockKey.TryParse(text, out var key) && filler.Store.TryPeek(key, out var block))
        {
            var header = block.Header;
            return ValueTask.FromResult(new BlockState(text, silo.Name, block.Tier.Name, header.DataLength, header.Pinned,
                header.ExpiresTicks == 0 ? null : new DateTime(header.ExpiresTicks, DateTimeKind.Utc), header.Checksums.Length, [.. _replicas]));
        }

        return ValueTask.FromResult(new BlockState(text, silo.Name, null, 0, false, null, 0, [.. _replicas]));
    }

    public async ValueTask<BlockLocation> ReplicateAsync(BlockSource source, string targetSilo)
    {
        if (targetSilo == silo.Name || _replicas.Contains(targetSilo))
        {
            return new BlockLocation(FsStatus.Ok, null, targetSilo, string.Empty, true);
        }

        if (_replicas.Count >= IBlockGrain.MaxReplicas)
        {
            return Fail(FsStatus.Busy, $"block {this.GetPrimaryKeyString()} already has {IBlockGrain.MaxReplicas} replicas");
        }

        var located = await FillAsync(source);
        if (located.Status != FsStatus.Ok)
        {
            return located;
        }

        var copy = await GrainFactory.GetGrain<IWorkerGrain>(targetSilo).CopyBlockAsync(this.GetPrimaryKeyString(), source.Length, silo.DataEndpoint);
        if (copy.Failures > 0)
        {
            return Fail(FsStatus.IoError, copy.FirstError);
        }

        _replicas.Add(targetSilo);
        return new BlockLocation(FsStatus.Ok, null, targetSilo, string.Empty, true);
    }

    private BlockLocation Fail(FsStatus status, string? message) => new(status, message, silo.Name, silo.DataEndpoint, false);

    internal static string Describe(AggregateException? error) =>
        error?.InnerException is UnderStorageException u ? u.Message : error?.InnerException?.Message ?? "fill failed";
}
