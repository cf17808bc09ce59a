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

    /// <summary>Parses a grain key written by <see cref="ToString"/>.</summary>
    public static DirectoryKey Parse(string key)
    {
        var first = key.IndexOf(':');
        var second = first < 0 ? -1 : key.IndexOf(':', first + 1);
        if (second < 0
            || !long.TryParse(key.AsSpan(0, first), NumberStyles.None, CultureInfo.InvariantCulture, out var mount)
            || !int.TryParse(key.AsSpan(first + 1, second - first - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var shard))
        {
            throw new FormatException($"'{key}' is not a directory key (mountId:shard:path)");
        }

        return new DirectoryKey(mount, shard, key[(second + 1)..]);
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
