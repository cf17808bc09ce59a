using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using System.Text;

namespace GrainFs.DataPlane.Blocks;

/// <summary>
/// The identity of one block: a 128-bit file version id and the block's index in the file. The file id
/// hashes the under-storage URI, the path, the ETag (version), the size and the block size, so a changed
/// object gets new keys and stale bytes are never served under a new version.
/// </summary>
public readonly record struct BlockKey(ulong FileHi, ulong FileLo, int Index) : IComparable<BlockKey>
{
    /// <summary>Bytes of a key on the wire and in block headers (16-byte file id + 4-byte index).</summary>
    public const int Size = 20;

    /// <summary>The file id of a version of a file.</summary>
    public static (ulong Hi, ulong Lo) FileId(string underStorageUri, string path, string etag, long size, int blockSize)
    {
        var text = string.Create(CultureInfo.InvariantCulture, $"{underStorageUri}\n{path}\n{etag}\n{size}\n{blockSize}");
        // SHA-256, not a fast non-cryptographic hash: with a mount's secret block-name key in the text, the result must
        // not be computable or predictable without it (a block key is a capability at the data port). Once per file.
        Span<byte> hash = stackalloc byte[32];
        System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(text), hash);
        return (BinaryPrimitives.ReadUInt64BigEndian(hash), BinaryPrimitives.ReadUInt64BigEndian(hash[8..]));
    }

    /// <summary>The key of block <paramref name="index"/> of a file version.</summary>
    public static BlockKey For((ulong Hi, ulong Lo) file, int index) => new(file.Hi, file.Lo, index);

    /// <summary>Writes the key (big-endian).</summary>
    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, FileHi);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], FileLo);
        BinaryPrimitives.WriteInt32BigEndian(destination[16..], Index);
    }

    /// <summary>Reads a key written by <see cref="Write"/>.</summary>
    public static BlockKey Read(ReadOnlySpan<byte> source) =>
        new(BinaryPrimitives.ReadUInt64BigEndian(source), BinaryPrimitives.ReadUInt64BigEndian(source[8..]), BinaryPrimitives.ReadInt32BigEndian(source[16..]));

    /// <summary>The file name of the block: 32 hex digits, '-', the index in hex.</summary>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{FileHi:x16}{FileLo:x16}-{Index:x}");

    /// <summary>Parses <see cref="ToString"/>.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out BlockKey key)
    {
        key = default;
        if (text.Length < 34 || text[32] != '-'
            || !ulong.TryParse(text[..16], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var hi)
            || !ulong.TryParse(text[16..32], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var lo)
            || !int.TryParse(text[33..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var index))
        {
            return false;
        }

        key = new BlockKey(hi, lo, index);
        return true;
    }

    /// <summary>A stable 64-bit hash of the key (rendezvous hashing, sketches).</summary>
    public ulong Hash64(ulong seed = 0)
    {
        Span<byte> bytes = stackalloc byte[Size];
        Write(bytes);
        return XxHash3.HashToUInt64(bytes, (long)seed);
    }

    /// <inheritdoc />
    public int CompareTo(BlockKey other)
    {
        var c = FileHi.CompareTo(other.FileHi);
        if (c == 0)
        {
            c = FileLo.CompareTo(other.FileLo);
        }

        return c != 0 ? c : Index.CompareTo(other.Index);
    }
}
