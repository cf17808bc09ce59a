using System.Collections.Concurrent;
using GrainFs.DataPlane.Blocks;
using GrainFs.Grains.Namespace;
using GrainFs.Storage.Cache;
using GrainFs.Storage.UnderStorage;

namespace GrainFs.Grains.Blocks;

/// <summary>The key of a block and the fill started for it (null when already held).</summary>
public readonly record struct FillStart(FsStatus Status, string? Message, BlockKey Key, BlockFill? Fill);

/// <summary>
/// Starts fills of blocks into this silo's tier store from their mount's under-storage: resolves the mount
/// (cached for a few seconds), derives the block key from the file version, and opens exactly the block's range
/// with the version checked, so a changed object is never stored under its old key.
/// </summary>
public sealed class BlockFiller(TierStore store, UnderStorageRegistry registry, IGrainFactory grains, GrainFsClock time)
{
    private static readonly TimeSpan MountCacheTime = TimeSpan.FromSeconds(5);
    private readonly ConcurrentDictionary<long, (MountInfo? Mount, long Until)> _mounts = new();

    /// <summary>The store fills go to.</summary>
    public TierStore Store => store;

    /// <summary>The key of a block of a mount's file version.</summary>
    public static BlockKey KeyOf(MountInfo mount, BlockSource source) =>
        BlockKey.For(WriteTag.FileId(mount.BlockNamespace, source.Path, source.ETag, source.FileSize, source.BlockSize), source.Index);

    /// <summary>The mount of a block source, or null when it no longer exists.</summary>
    public async ValueTask<MountInfo?> ResolveAsync(long mountId)
    {
        var now = time.GetUtcNow().UtcTicks;
        if (_mounts.TryGetValue(mountId, out var cached) && cached.Until > now)
        {
            return cached.Mount;
        }

        var mount = await grains.GetGrain<IMountTableGrain>(IMountTableGrain.Key).ResolveAsync(mountId).ConfigureAwait(false);
        _mounts[mountId] = (mount, now + MountCacheTime.Ticks);
        return mount;
    }

    /// <summary>
    /// Starts (or joins) the fill of block <paramref name="key"/> from a source a reader sent to the data port: null once
    /// started, or why not. The source must give <paramref name="key"/> under the mount's block-name key (which only
    /// readers of the mount get), so a client can fill only blocks it may read.
    /// </summary>
    public async ValueTask<string?> StartFromDataPortAsync(BlockKey key, FillSource source)
    {
        var start = await StartAsync(new BlockSource(source.MountId, source.Path, source.ETag, source.FileSize, source.BlockSize, source.Index), expectedKey: key).ConfigureAwait(false);
        return start.Status != FsStatus.Ok ? start.Message : start.Fill is { Completion.IsFaulted: true } fill ? fill.Completion.Exception!.GetBaseException().Message : null;
    }

    /// <summary>Starts (or joins) the fill of a block; the status says why it could not start.</summary>
    public async ValueTask<FillStart> StartAsync(BlockSource source, ushort flags = 0, long expiresTicks = 0, BlockKey? expectedKey = null)
    {
        // The path comes from a caller: refused before the mount is even resolved when it could leave the mount by its words.
        var pathError = source.Path.Length == 0 ? "the path is empty (a block belongs to a file)"
            : FsPath.CheckRelative(source.Path, out var invalid) != FsStatus.Ok ? invalid : null;
        if (pathError is not null)
        {
            return new FillStart(FsStatus.InvalidArgument, $"block source of mount {source.MountId}: {pathError}", default, null);
        }

        var mount = await ResolveAsync(source.MountId).ConfigureAwait(false);
        if (mount is null)
        {
            return new FillStart(FsStatus.Stale, $"mount {source.MountId} no longer exists", default, null);
        }

        if (source.Index < 0 || source.BlockSize <= 0 || source.Offset >= Math.Max(1, source.FileSize))
        {
            return new FillStart(FsStatus.InvalidArgument, $"{mount.Path}/{source.Path}: block {source.Index} is outside the file", default, null);
        }

        var key = KeyOf(mount, source);
        if (expectedKey is { } expected && expected != key)
        {
            // Nothing starts: a caller who does not know the mount's block-name key cannot have blocks filled.
            return new FillStart(FsStatus.InvalidArgument, $"block source {source.Path}#{source.Index} of mount {source.MountId} does not match block {expected}", key, null);
        }

        if (WriteTag.IsWritten(source.ETag) && WriteTag.UnderStorageETag(source.ETag) is null)
        {
            // Not persisted yet: under-storage holds no copy (or an older version), so only the write worker can serve it.
            return new FillStart(FsStatus.IoError, $"{mount.Path}/{source.Path}: block {source.Index} is not persisted yet and the write worker holding it does not have it", key, null);
        }

        IUnderStorage storage;
        try
        {
            storage = registry.Get(mount);
        }
        catch (UnderStorageException e)
        {
            return new FillStart(FsStatus.IoError, e.Message, key, null);
        }

        var fill = store.StartFill(key, source.Length, ct => storage.OpenReadAsync(source.Path, source.Offset, source.Length, WriteTag.UnderStorageETag(source.ETag), ct), flags, expiresTicks);
        return new FillStart(FsStatus.Ok, null, key, fill);
    }
}
