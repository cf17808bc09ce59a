using GrainFs.DataPlane;
using GrainFs.DataPlane.Blocks;
using Microsoft.Extensions.Logging;

namespace GrainFs.Storage.Cache;

/// <summary>
/// Brings a tier store back at start: creates the tier folders (the silo's own, with their modes), drops the temporary files of an interrupted run, and
/// indexes the block files already there (newest first, each checked against its header), so a restarted worker
/// finds its blocks again. Files that are not valid blocks, or that no longer fit a (since shrunk) tier, are removed.
/// </summary>
public static partial class TierRecovery
{
    /// <summary>Recovers every tier of <paramref name="index"/>, on the thread pool.</summary>
    public static Task RecoverAsync(TierIndex index, ILogger logger, CancellationToken cancellationToken = default) =>
        Task.Run(
            () =>
            {
                foreach (var tier in index.Tiers)
                {
                    Recover(index, tier, logger);
                }
            },
            cancellationToken);

    private static void Recover(TierIndex index, Tier tier, ILogger logger)
    {
        // Checked again here, not only at configuration: a folder another user made in between is refused all the same.
        if (TierFolders.Prepare(tier.Root, tier.Permissions) is { } before)
        {
            LogTierModeChanged(logger, tier.Name, tier.Root, before, UnixFiles.Octal((int)tier.Permissions.FolderMode));
        }

        if (Directory.Exists(tier.TempRoot))
        {
            Directory.Delete(tier.TempRoot, recursive: true);
        }

        TierFolders.EnsureFolder(tier.TempRoot, tier.Permissions);
        var found = 0;
        var dropped = 0;
        var files = new DirectoryInfo(Path.Combine(tier.Root, "blocks")).EnumerateFiles("*", SearchOption.AllDirectories)
            .OrderByDescending(f => f.LastWriteTimeUtc)
            .ToList();
        foreach (var file in files)
        {
            if (ReadBlock(file) is { } header && index.TryRecover(tier, header))
            {
                TierFolders.Adopt(file, tier.Permissions);
                found++;
            }
            else
            {
                dropped++;
                TierFiles.TryDelete(file.FullName);
            }
        }

        LogTierReady(logger, tier.Name, tier.Root, ByteSize.Format(tier.Capacity), found, ByteSize.Format(tier.Used), dropped);
    }

    private static BlockHeader? ReadBlock(FileInfo file)
    {
        if (!BlockKey.TryParse(file.Name, out var key))
        {
            return null;
        }

        try
        {
            using var handle = File.OpenHandle(file.FullName);
            var header = BlockFile.ReadHeader(handle);
            return header is not null && header.Key == key && header.FileLength == file.Length ? header : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Tier {Tier} folder {Path} had mode {Before}; now {After}")]
    private static partial void LogTierModeChanged(ILogger logger, string tier, string path, string before, string after);

    [LoggerMessage(Level = LogLevel.Information, Message = "Tier {Tier} at {Path}: capacity {Capacity}, found {Blocks} blocks ({Used}), dropped {Dropped} invalid files")]
    private static partial void LogTierReady(ILogger logger, string tier, string path, string capacity, int blocks, string used, int dropped);
}
