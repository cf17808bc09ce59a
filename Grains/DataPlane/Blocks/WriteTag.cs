namespace GrainFs.DataPlane.Blocks;

/// <summary>
/// The version tag of a file written through GrainFS: "gfs:" and a random id, then, once the file is persisted,
/// "/" and the under-storage's own ETag of the object. Block keys of a written file hash only the id (not the path,
/// not the size), so the blocks a writer sends before it knows the final size keep their keys through close and
/// renames; a fill from under-storage checks the object against the ETag after the "/".
/// </summary>
public static class WriteTag
{
    /// <summary>The prefix of every write tag.</summary>
    public const string Prefix = "gfs:";

    /// <summary>A new, unique write tag (no under-storage ETag yet).</summary>
    public static string New() => Prefix + Guid.NewGuid().ToString("N");

    /// <summary>True for a tag made by <see cref="New"/>.</summary>
    public static bool IsWritten(string etag) => etag.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>The identity part of a write tag ("gfs:id"), or the tag itself for any other ETag.</summary>
    public static string IdOf(string etag)
    {
        if (!IsWritten(etag))
        {
            return etag;
        }

        var slash = etag.IndexOf('/', StringComparison.Ordinal);
        return slash < 0 ? etag : etag[..slash];
    }

    /// <summary>The ETag an under-storage read must match: the part after "/" of a persisted write tag, null for a write tag not yet
    /// persisted, the tag itself for a listed file.</summary>
    public static string? UnderStorageETag(string etag)
    {
        if (!IsWritten(etag))
        {
            return etag;
        }

        var slash = etag.IndexOf('/', StringComparison.Ordinal);
        return slash < 0 || slash == etag.Length - 1 ? null : etag[(slash + 1)..];
    }

    /// <summary>The tag once persisted: its id and the object's ETag in under-storage.</summary>
    public static string Persisted(string etag, string underStorageETag) => IdOf(etag) + "/" + underStorageETag;

    /// <summary>The file id of a version: written files by their write id alone, listed files by URI, path, ETag, size and block size.</summary>
    public static (ulong Hi, ulong Lo) FileId(string underStorageUri, string path, string etag, long size, int blockSize) =>
        IsWritten(etag)
            ? BlockKey.FileId(underStorageUri, string.Empty, IdOf(etag), 0, blockSize)
            : BlockKey.FileId(underStorageUri, path, etag, size, blockSize);

    /// <summary>The keys of every block of a written version of <paramref name="size"/> bytes.</summary>
    public static BlockKey[] Keys(string underStorageUri, string etag, long size, int blockSize)
    {
        var file = FileId(underStorageUri, string.Empty, etag, size, blockSize);
        var keys = new BlockKey[(int)((size + blockSize - 1) / blockSize)];
        for (var i = 0; i < keys.Length; i++)
        {
            keys[i] = BlockKey.For(file, i);
        }

        return keys;
    }
}
