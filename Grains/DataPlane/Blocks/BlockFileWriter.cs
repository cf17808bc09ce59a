using System.Buffers;
using System.IO.Hashing;
using Microsoft.Win32.SafeHandles;

namespace GrainFs.DataPlane.Blocks;

/// <summary>
/// Writes block files in the <see cref="BlockFile"/> format: data streamed in behind the header with an XXH3 checksum
/// per chunk computed on the way, the header written last (so a file without a valid header is never a block), all
/// into a temporary file that the caller renames into place. Pooled buffers, positional writes on one handle.
/// </summary>
public static class BlockFileWriter
{
    private const int BufferSize = 256 * 1024;

    /// <summary>
    /// Writes exactly <paramref name="length"/> bytes from <paramref name="source"/> into a new file at
    /// <paramref name="tempPath"/> and returns its header. <paramref name="progress"/> hears the data bytes written so
    /// far after each write (readers of a block being filled follow it). <paramref name="mode"/>, when given, is the new
    /// file's permission bits. Throws <see cref="IOException"/> when the
    /// source ends early; the caller removes the file on any failure.
    /// </summary>
    public static async Task<BlockHeader> WriteAsync(
        string tempPath,
        BlockKey key,
        int length,
        Stream source,
        ushort flags,
        long createdTicks,
        long expiresTicks,
        Action<long>? progress,
        CancellationToken cancellationToken,
        bool durable = false,
        UnixFileMode? mode = null)
    {
        var headerLength = BlockFile.HeaderLength(length);
        var checksums = new ulong[BlockFile.ChunkCount(length)];
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            using var file = File.OpenHandle(tempPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read | FileShare.Delete, FileOptions.Asynchronous, preallocationSize: headerLength + (long)length);
            if (mode is { } bits && !OperatingSystem.IsWindows())
            {
                // Exact, whatever the umask: who may read the block directly is the tier's to say.
                File.SetUnixFileMode(file, bits);
            }

            var hasher = new XxHash3();
            var inChunk = 0;
            var chunk = 0;
            long written = 0;
            while (written < length)
            {
                var read = await source.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, length - written)), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                await RandomAccess.WriteAsync(file, buffer.AsMemory(0, read), headerLength + written, cancellationToken).ConfigureAwait(false);
                var piece = buffer.AsSpan(0, read);
                while (!piece.IsEmpty)
                {
                    var take = Math.Min(piece.Length, BlockFile.ChunkSize - inChunk);
                    hasher.Append(piece[..take]);
                    inChunk += take;
                    piece = piece[take..];
                    if (inChunk == BlockFile.ChunkSize)
                    {
                        checksums[chunk++] = hasher.GetCurrentHashAsUInt64();
                        hasher.Reset();
                        inChunk = 0;
                    }
                }

                written += read;
                progress?.Invoke(written);
            }

            if (written != length)
            {
                throw new IOException($"the source gave {written} of the block's {length} bytes (the file shrank?)");
            }

            if (inChunk > 0 || length == 0)
            {
                checksums[chunk] = hasher.GetCurrentHashAsUInt64();
            }

            var header = new BlockHeader(key, length, flags, createdTicks, expiresTicks, checksums);
            await RandomAccess.WriteAsync(file, BlockFile.EncodeHeader(header), 0, cancellationToken).ConfigureAwait(false);
            if (durable)
            {
                // fsync(2) of the data and the header: the block survives a crash from here on.
                RandomAccess.FlushToDisk(file);
            }

            return header;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Rewrites the header of an existing block file in place (flags, expiry); the data and checksums stay.</summary>
    public static async Task RewriteHeaderAsync(string path, BlockHeader header, CancellationToken cancellationToken = default)
    {
        using SafeFileHandle handle = File.OpenHandle(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, FileOptions.Asynchronous);
        await RandomAccess.WriteAsync(handle, BlockFile.EncodeHeader(header), 0, cancellationToken).ConfigureAwait(false);
    }
}
