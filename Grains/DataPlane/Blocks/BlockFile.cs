using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using Microsoft.Win32.SafeHandles;

namespace GrainFs.DataPlane.Blocks;

/// <summary>
/// The on-disk format of a cached block, shared by the workers that write it and the clients that read it
/// short-circuit. A header (4 KiB for blocks up to 32 MiB) holds the key, the data length and an XXH3
/// checksum per 64 KiB chunk; the data follows. Files are written under a temporary name and renamed,
/// so a reader sees either nothing or a whole block.
/// </summary>
/// <remarks>
/// Header layout (little-endian): magic "GFSB" (4) · version (2) · flags (2) · key (20) · data length (4) ·
/// chunk size (4) · chunk count (4) · created ticks (8) · expiry ticks, 0 for none (8) · header checksum (8) ·
/// chunk checksums (8 × count) · zero padding to the header length.
/// </remarks>
public static class BlockFile
{
    /// <summary>"GFSB".</summary>
    public const uint Magic = 0x42534647;

    /// <summary>The format version.</summary>
    public const ushort Version = 1;

    /// <summary>Bytes covered by one checksum.</summary>
    public const int ChunkSize = 64 * 1024;

    /// <summary>The largest block the format holds.</summary>
    public const int MaxBlockSize = 256 * 1024 * 1024;

    /// <summary>Flag: the block is pinned (never evicted).</summary>
    public const ushort FlagPinned = 1;

    /// <summary>Flag: the block holds written data not yet persisted to under-storage. Eviction, TTL and free never drop it: it is the only copy.</summary>
    public const ushort FlagUnpersisted = 2;

    private const int FixedPart = 72;
    private const int ChecksumOffset = 56;

    /// <summary>Header bytes for a block of <paramref name="dataLength"/> bytes (a multiple of 4 KiB).</summary>
    public static int HeaderLength(int dataLength) => Align(FixedPart + (8 * ChunkCount(dataLength)));

    /// <summary>Number of checksummed chunks of a block.</summary>
    public static int ChunkCount(int dataLength) => Math.Max(1, (dataLength + ChunkSize - 1) / ChunkSize);

    private static int Align(int n) => (n + 4095) & ~4095;

    /// <summary>The block's file name in a tier folder: blocks/&lt;2 hex&gt;/&lt;key&gt;.</summary>
    public static string RelativePath(BlockKey key)
    {
        var name = key.ToString();
        return Path.Combine("blocks", name[..2], name);
    }

    /// <summary>The checksum of one chunk.</summary>
    public static ulong Checksum(ReadOnlySpan<byte> chunk) => XxHash3.HashToUInt64(chunk);

    /// <summary>A block's digest from its chunk checksums (as its header holds them): XXH3 of the checksums in order.</summary>
    public static ulong Digest(ReadOnlySpan<ulong> checksums) => XxHash3.HashToUInt64(System.Runtime.InteropServices.MemoryMarshal.AsBytes(checksums));

    /// <summary>The digest of a block's data: what <see cref="Digest(ReadOnlySpan{ulong})"/> gives for the header a worker writes for it.</summary>
    public static ulong Digest(ReadOnlySpan<byte> data)
    {
        var chunks = ChunkCount(data.Length);
        Span<ulong> checksums = chunks <= 256 ? stackalloc ulong[chunks] : new ulong[chunks];
        for (var c = 0; c < chunks; c++)
        {
            var start = c * ChunkSize;
            checksums[c] = Checksum(data.Slice(start, Math.Min(ChunkSize, data.Length - start)));
        }

        return Digest(checksums);
    }

    /// <summary>Builds a header.</summary>
    public static byte[] EncodeHeader(BlockHeader header)
    {
        var bytes = new byte[HeaderLength(header.DataLength)];
        var span = bytes.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(span[4..], Version);
        BinaryPrimitives.WriteUInt16LittleEndian(span[6..], header.Flags);
        header.Key.Write(span[8..28]);
        BinaryPrimitives.WriteInt32LittleEndian(span[28..], header.DataLength);
        BinaryPrimitives.WriteInt32LittleEndian(span[32..], ChunkSize);
        BinaryPrimitives.WriteInt32LittleEndian(span[36..], header.Checksums.Length);
        BinaryPrimitives.WriteInt64LittleEndian(span[40..], header.CreatedTicks);
        BinaryPrimitives.WriteInt64LittleEndian(span[48..], header.ExpiresTicks);
        for (var i = 0; i < header.Checksums.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(span[(FixedPart + (8 * i))..], header.Checksums[i]);
        }

        BinaryPrimitives.WriteUInt64LittleEndian(span[ChecksumOffset..], HeaderChecksum(span, header.Checksums.Length));
        return bytes;
    }

    private static ulong HeaderChecksum(ReadOnlySpan<byte> header, int chunks)
    {
        var hasher = new XxHash3();
        hasher.Append(header[..ChecksumOffset]);
        hasher.Append(header.Slice(FixedPart, 8 * chunks));
        return hasher.GetCurrentHashAsUInt64();
    }

    /// <summary>Parses and checks a header; null when the bytes are not a valid header.</summary>
    public static BlockHeader? DecodeHeader(ReadOnlySpan<byte> span)
    {
        if (span.Length < FixedPart || BinaryPrimitives.ReadUInt32LittleEndian(span) != Magic || BinaryPrimitives.ReadUInt16LittleEndian(span[4..]) != Version)
        {
            return null;
        }

        var length = BinaryPrimitives.ReadInt32LittleEndian(span[28..]);
        var chunkSize = BinaryPrimitives.ReadInt32LittleEndian(span[32..]);
        var chunks = BinaryPrimitives.ReadInt32LittleEndian(span[36..]);
        if (length < 0 || length > MaxBlockSize || chunkSize != ChunkSize || chunks != ChunkCount(length) || span.Length < FixedPart + (8 * chunks))
        {
            return null;
        }

        if (BinaryPrimitives.ReadUInt64LittleEndian(span[ChecksumOffset..]) != HeaderChecksum(span, chunks))
        {
            return null;
        }

        var sums = new ulong[chunks];
        for (var i = 0; i < chunks; i++)
        {
            sums[i] = BinaryPrimitives.ReadUInt64LittleEndian(span[(FixedPart + (8 * i))..]);
        }

        return new BlockHeader(
            BlockKey.Read(span[8..28]),
            length,
            BinaryPrimitives.ReadUInt16LittleEndian(span[6..]),
            BinaryPrimitives.ReadInt64LittleEndian(span[40..]),
            BinaryPrimitives.ReadInt64LittleEndian(span[48..]),
            sums);
    }

    /// <summary>Reads and checks the header of an open block file; null when it is not a valid block.</summary>
    public static BlockHeader? ReadHeader(SafeFileHandle handle)
    {
        var first = ArrayPool<byte>.Shared.Rent(4096);
        try
        {
            var read = RandomAccess.Read(handle, first.AsSpan(0, 4096), 0);
            if (read < FixedPart)
            {
                return null;
            }

            var chunks = BinaryPrimitives.ReadInt32LittleEndian(first.AsSpan(36));
            var needed = FixedPart + (8L * chunks);
            if (chunks <= 0 || needed > 64 * 1024)
            {
                return null;
            }

            if (needed <= read)
            {
                return DecodeHeader(first.AsSpan(0, read));
            }

            var whole = new byte[Align((int)needed)];
            read = RandomAccess.Read(handle, whole, 0);
            return DecodeHeader(whole.AsSpan(0, read));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(first);
        }
    }

    /// <summary>
    /// Reads <paramref name="destination"/>.Length bytes of block data at <paramref name="offset"/>, checking the
    /// checksum of every chunk it touches (<paramref name="verify"/>). Returns bytes read, or -1 when a checksum fails.
    /// Chunk-aligned reads go straight into the caller's buffer; others read whole chunks into a pooled buffer.
    /// </summary>
    public static int ReadVerified(SafeFileHandle handle, BlockHeader header, long offset, Span<byte> destination, bool verify)
    {
        var dataStart = HeaderLength(header.DataLength);
        var end = Math.Min(header.DataLength, offset + destination.Length);
        if (offset >= end)
        {
            return 0;
        }

        var count = (int)(end - offset);
        if (!verify)
        {
            // Unchecked, but whole: a file shorter than its header says (truncated behind the worker's back) is no block.
            return ReadFully(handle, destination[..count], dataStart + offset) == count ? count : -1;
        }

        var firstChunk = (int)(offset / ChunkSize);
        var lastChunk = (int)((end - 1) / ChunkSize);
        var aligned = offset % ChunkSize == 0 && (end % ChunkSize == 0 || end == header.DataLength);
        if (aligned)
        {
            var read = ReadFully(handle, destination[..count], dataStart + offset);
            if (read != count)
            {
                return -1;
            }

            for (var c = firstChunk; c <= lastChunk; c++)
            {
                var start = (int)(((long)c * ChunkSize) - offset);
                var length = Math.Min(ChunkSize, header.DataLength - (c * ChunkSize));
                if (Checksum(destination.Slice(start, length)) != header.Checksums[c])
                {
                    return -1;
                }
            }

            return count;
        }

        var spanStart = (long)firstChunk * ChunkSize;
        var spanLength = (int)(Math.Min(header.DataLength, ((long)lastChunk + 1) * ChunkSize) - spanStart);
        var scratch = ArrayPool<byte>.Shared.Rent(spanLength);
        try
        {
            var buffer = scratch.AsSpan(0, spanLength);
            if (ReadFully(handle, buffer, dataStart + spanStart) != spanLength)
            {
                return -1;
            }

            for (var c = firstChunk; c <= lastChunk; c++)
            {
                var start = (int)(((long)c * ChunkSize) - spanStart);
                var length = Math.Min(ChunkSize, header.DataLength - (c * ChunkSize));
                if (Checksum(buffer.Slice(start, length)) != header.Checksums[c])
                {
                    return -1;
                }
            }

            buffer.Slice((int)(offset - spanStart), count).CopyTo(destination);
            return count;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    private static int ReadFully(SafeFileHandle handle, Span<byte> destination, long fileOffset)
    {
        var total = 0;
        while (total < destination.Length)
        {
            var read = RandomAccess.Read(handle, destination[total..], fileOffset + total);
            if (read == 0)
            {
                break;
            }

            total += read;
        }

        return total;
    }
}

/// <summary>A decoded block header.</summary>
/// <param name="Key">The block.</param>
/// <param name="DataLength">Bytes of data.</param>
/// <param name="Flags">Flags (<see cref="BlockFile.FlagPinned"/>).</param>
/// <param name="CreatedTicks">When it was written (UTC ticks).</param>
/// <param name="ExpiresTicks">When its TTL ends (UTC ticks), 0 for none.</param>
/// <param name="Checksums">XXH3 of each 64 KiB chunk.</param>
public sealed record BlockHeader(BlockKey Key, int DataLength, ushort Flags, long CreatedTicks, long ExpiresTicks, ulong[] Checksums)
{
    /// <summary>True when pinned.</summary>
    public bool Pinned => (Flags & BlockFile.FlagPinned) != 0;

    /// <summary>True when the block is the only copy of written data (see <see cref="BlockFile.FlagUnpersisted"/>).</summary>
    public bool Unpersisted => (Flags & BlockFile.FlagUnpersisted) != 0;

    /// <summary>True when neither eviction nor a TTL may drop the block.</summary>
    public bool Kept => (Flags & (BlockFile.FlagPinned | BlockFile.FlagUnpersisted)) != 0;

    /// <summary>Header plus data: the bytes the block occupies in its tier.</summary>
    public long FileLength => BlockFile.HeaderLength(DataLength) + (long)DataLength;
}
