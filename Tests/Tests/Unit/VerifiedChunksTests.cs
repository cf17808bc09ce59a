using GrainFs.DataPlane.Blocks;

namespace GrainFs.Tests.Unit;

public sealed class VerifiedChunksTests
{
    private const int Chunk = BlockFile.ChunkSize;

    [Fact]
    public void A_read_is_covered_only_once_every_chunk_it_touches_was_checked()
    {
        var set = new VerifiedChunks(4 << 20);
        Assert.False(set.Covers(0, 1 << 20));
        set.Mark(0, 1 << 20);
        Assert.True(set.Covers(0, 1 << 20));
        Assert.True(set.Covers(Chunk + 5, 100));
        Assert.False(set.Covers(1 << 20, 1 << 20));
        Assert.False(set.Covers((1 << 20) - 10, 20)); // straddles into the unchecked second MiB
        set.Mark(1 << 20, 3 << 20);
        Assert.True(set.Covers(0, 4 << 20));
    }

    [Fact]
    public void A_partial_chunk_marks_the_whole_chunk_it_was_checked_in()
    {
        var set = new VerifiedChunks(3 * Chunk);
        set.Mark(Chunk + 100, 10);
        Assert.True(set.Covers(Chunk, Chunk));
        Assert.False(set.Covers(0, Chunk));
        Assert.False(set.Covers(2 * Chunk, 1));
    }

    [Fact]
    public void Reads_past_the_end_of_a_short_block_count_only_its_chunks()
    {
        // A 100 KB file is one block of two chunks; a 1 MiB read of it reads up to its end.
        var set = new VerifiedChunks(100_000);
        Assert.False(set.Covers(0, 1 << 20));
        set.Mark(0, 100_000);
        Assert.True(set.Covers(0, 1 << 20));
        Assert.True(set.Covers(100_000, 4096));
    }

    [Fact]
    public void Blocks_of_more_than_64_chunks_use_every_word_of_the_bitmap()
    {
        var set = new VerifiedChunks(200 * Chunk);
        set.Mark(0, 130 * Chunk);
        Assert.True(set.Covers(129 * Chunk, Chunk));
        Assert.False(set.Covers(130 * Chunk, 1));
        set.Mark(130 * Chunk, 70 * Chunk);
        Assert.True(set.Covers(0, 200 * Chunk));
    }
}
