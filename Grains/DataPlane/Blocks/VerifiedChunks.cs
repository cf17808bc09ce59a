namespace GrainFs.DataPlane.Blocks;

/// <summary>
/// Which chunks of one block file a process has already checked against the block's checksums, so a reader that
/// takes a block in several requests (1 MiB reads of a 4 MiB block) checks each chunk once, not on every read.
/// Thread-safe; one small bitmap per block.
/// </summary>
public sealed class VerifiedChunks
{
    private readonly ulong[] _bits;
    private readonly int _dataLength;

    /// <summary>A set for a block of <paramref name="dataLength"/> bytes, with no chunk checked yet.</summary>
    public VerifiedChunks(int dataLength)
    {
        _dataLength = dataLength;
        _bits = new ulong[(BlockFile.ChunkCount(dataLength) + 63) / 64];
    }

    /// <summary>True when every chunk touched by <paramref name="count"/> bytes at <paramref name="offset"/> has been checked.</summary>
    public bool Covers(long offset, int count)
    {
        var (first, last) = Range(offset, count);
        for (var c = first; c <= last; c++)
        {
            if ((Volatile.Read(ref _bits[c >> 6]) & (1UL << (c & 63))) == 0)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Records that the chunks touched by <paramref name="count"/> bytes at <paramref name="offset"/> passed their checksums.</summary>
    public void Mark(long offset, int count)
    {
        var (first, last) = Range(offset, count);
        for (var c = first; c <= last; c++)
        {
            Interlocked.Or(ref _bits[c >> 6], 1UL << (c & 63));
        }
    }

    private (int First, int Last) Range(long offset, int count)
    {
        // A read past the block's end reads only up to it, so only the chunks up to the end count.
        var end = Math.Min(_dataLength, offset + Math.Max(1, count));
        var last = Math.Max(0, BlockFile.ChunkCount(_dataLength) - 1);
        var first = (int)Math.Min(offset / BlockFile.ChunkSize, last);
        return (first, (int)Math.Min((end - 1) / BlockFile.ChunkSize, last));
    }
}
