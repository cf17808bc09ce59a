using System.Buffers;

namespace GrainFs.DataPlane.Blocks;

/// <summary>
/// A block's bytes from another worker (a replica copy), let through one 64 KiB chunk at a time and only once the chunk
/// matches the checksum the block's home recorded when it filled the block (<see cref="BlockHeader.Checksums"/>), not
/// one computed over what arrived. A chunk that does not match ends the copy with an <see cref="IOException"/> before any
/// of its bytes reach the caller, so the replica's block file never holds a byte its home did not vouch for.
/// </summary>
public sealed class RecordedChecksumStream : ReadOnlyStream
{
    private readonly Stream _source;
    private readonly BlockKey _key;
    private readonly string _from;
    private readonly ulong[] _checksums;
    private readonly int _length;
    private byte[]? _chunk;
    private int _chunkIndex;
    private int _start;
    private int _end;

    /// <summary>
    /// Checks the <paramref name="length"/> bytes of block <paramref name="key"/> that <paramref name="source"/> gives
    /// (copied from <paramref name="from"/>) against <paramref name="checksums"/>, one per chunk.
    /// </summary>
    public RecordedChecksumStream(Stream source, BlockKey key, int length, ulong[] checksums, string from)
    {
        ArgumentNullException.ThrowIfNull(checksums);
        if (checksums.Length != BlockFile.ChunkCount(length))
        {
            throw new ArgumentException($"block {key} of {length} bytes has {BlockFile.ChunkCount(length)} chunks; {checksums.Length} checksums were given", nameof(checksums));
        }

        _source = source;
        _key = key;
        _from = from;
        _checksums = checksums;
        _length = length;
    }

    /// <inheritdoc />
    public override long Length => _length;

    /// <inheritdoc />
    public override int Read(Span<byte> buffer) => throw new NotSupportedException("read a replica copy asynchronously");

    /// <inheritdoc />
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.IsEmpty)
        {
            return 0;
        }

        if (_start == _end)
        {
            if (_chunkIndex == _checksums.Length)
            {
                return 0;
            }

            await NextChunkAsync(cancellationToken).ConfigureAwait(false);
        }

        var count = Math.Min(buffer.Length, _end - _start);
        _chunk.AsSpan(_start, count).CopyTo(buffer.Span);
        _start += count;
        return count;
    }

    private async Task NextChunkAsync(CancellationToken cancellationToken)
    {
        _chunk ??= ArrayPool<byte>.Shared.Rent(BlockFile.ChunkSize);
        var size = (int)Math.Min(BlockFile.ChunkSize, _length - ((long)_chunkIndex * BlockFile.ChunkSize));
        try
        {
            await _source.ReadExactlyAsync(_chunk.AsMemory(0, size), cancellationToken).ConfigureAwait(false);
        }
        catch (EndOfStreamException e)
        {
            throw new IOException($"the copy of block {_key} from {_from} ended inside chunk {_chunkIndex}", e);
        }

        if (BlockFile.Checksum(_chunk.AsSpan(0, size)) != _checksums[_chunkIndex])
        {
            throw new IOException($"the copy of block {_key} from {_from}: chunk {_chunkIndex} does not match the checksum its home recorded; the copy is dropped");
        }

        _chunkIndex++;
        _start = 0;
        _end = size;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _source.Dispose();
            if (_chunk is not null)
            {
                ArrayPool<byte>.Shared.Return(_chunk);
                _chunk = null;
            }
        }

        base.Dispose(disposing);
    }
}
