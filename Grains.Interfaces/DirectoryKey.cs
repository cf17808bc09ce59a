using System.Globalization;

namespace GrainFs;

/// <summary>
/// The identity of a directory grain: the mount's id, the shard (0 for the head) and the directory's
/// path relative to the mount root ("" for the root). Written as "mountId:shard:path".
/// </summary>
public readonly record struct DirectoryKey(long MountId, int Shard, string Path)
{
    /// <summary>The head (shard 0) of the same directory.</summary>
    public DirectoryKey Head => this with { Shard = 0 };

    /// <summary>The grain key string.</summary>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{MountId}:{Shard}:{Path}");

    /// <summary>
    /// Parses a grain key written by <see cref="ToString"/>; throws <see cref="ArgumentException"/> naming the key when it
    /// is not one, or when its path could leave the mount (see <see cref="FsPath.CheckRelative"/>).
    /// </summary>
    public static DirectoryKey Parse(string key) =>
        TryParse(key, out var parsed, out var error) ? parsed : throw new ArgumentException(error, nameof(key));

    /// <summary>Parses a grain key; false with a reason naming it when it is not a key or its path is not a clean relative path.</summary>
    public static bool TryParse(string? key, out DirectoryKey parsed, out string? error)
    {
        parsed = default;
        key ??= string.Empty;
        var first = key.IndexOf(':');
        var second = first < 0 ? -1 : key.IndexOf(':', first + 1);
        if (second < 0
            || !long.TryParse(key.AsSpan(0, first), NumberStyles.None, CultureInfo.InvariantCulture, out var mount)
            || !int.TryParse(key.AsSpan(first + 1, second - first - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var shard))
        {
            error = $"'{key}' is not a directory key (mountId:shard:path)";
            return false;
        }

        var path = key[(second + 1)..];
        if (FsPath.CheckRelative(path, out var pathError) != FsStatus.Ok)
        {
            error = $"directory key '{key.Replace("\0", "\\0", StringComparison.Ordinal)}': {pathError}";
            return false;
        }

        parsed = new DirectoryKey(mount, shard, path);
        error = null;
        return true;
    }

    /// <summary>The shard (1..count) that holds <paramref name="name"/> in a directory split into <paramref name="count"/> shards;
    /// 0 when the directory is not sharded.</summary>
    public static int ShardOf(string name, int count)
    {
        if (count <= 1)
        {
            return 0;
        }

        // FNV-1a over the UTF-16 code units: stable across processes and runtimes, unlike string.GetHashCode.
        var hash = 14695981039346656037UL;
        foreach (var c in name)
        {
            hash = (hash ^ (byte)c) * 1099511628211UL;
            hash = (hash ^ (byte)(c >> 8)) * 1099511628211UL;
        }

        return 1 + (int)(hash % (ulong)count);
    }
}
