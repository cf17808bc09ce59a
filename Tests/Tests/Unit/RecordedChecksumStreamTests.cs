using System.Security.Cryptography;
using GrainFs.DataPlane.Blocks;

namespace GrainFs.Tests.Unit;

/// <summary>
/// A replica copy is checked against the checksums the block's home recorded, chunk by chunk, and a chunk that does not
/// match never reaches the block file being written.
/// </summary>
public class RecordedChecksumStreamTests
{
    private static readonly BlockKey Key = new(7, 8, 0);

    private static ulong[] ChecksumsOf(byte[] data) =>
        [.. Enumerable.Range(0, BlockFile.ChunkCount(data.Length)).Select(c => BlockFile.Checksum(data.AsSpan(c * BlockFile.ChunkSize, Math.Min(BlockFile.ChunkSize, data.Length - (c * BlockFile.ChunkSize)))))];

    private static async Task<(byte[] Passed, Exception? Error)> DrainAsync(Stream stream, int readSize)
    {
        var passed = new MemoryStream();
        var buffer = new byte[readSize];
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer)) > 0)
            {
                passed.Write(buffer, 0, n);
            }

            return (passed.ToArray(), null);
        }
        catch (IOException e)
        {
            return (passed.ToArray(), e);
        }
    }

    [Theory]
    [InlineData(0, 4096)]
    [InlineData(1000, 4096)]
    [InlineData((4 * BlockFile.ChunkSize) + 123, 1 << 20)]
    [InlineData((4 * BlockFile.ChunkSize) + 123, 1000)]
    public async Task A_copy_that_matches_the_recorded_checksums_passes_whole(int length, int readSize)
    {
        var data = RandomNumberGenerator.GetBytes(length);
        using var stream = new RecordedChecksumStream(new MemoryStream(data), Key, length, ChecksumsOf(data), "10.0.0.2:9000");
        var (passed, error) = await DrainAsync(stream, readSize);
        Assert.Null(error);
        Assert.Equal(data, passed);
    }

    [Fact]
    public async Task A_chunk_that_differs_from_the_recorded_checksum_ends_the_copy_before_any_of_its_bytes()
    {
        // The source serves bytes its home never recorded: one byte of the third chunk is not what was filled.
        var recorded = RandomNumberGenerator.GetBytes((5 * BlockFile.ChunkSize) + 10);
        var served = recorded.ToArray();
        served[(2 * BlockFile.ChunkSize) + 17] ^= 0x40;
        using var stream = new RecordedChecksumStream(new MemoryStream(served), Key, recorded.Length, ChecksumsOf(recorded), "10.0.0.2:9000");
        var (passed, error) = await DrainAsync(stream, 1 << 20);
        var message = Assert.IsType<IOException>(error).Message;
        Assert.Contains("chunk 2 does not match the checksum its home recorded", message, StringComparison.Ordinal);
        Assert.Contains("10.0.0.2:9000", message, StringComparison.Ordinal);
        Assert.Equal(recorded.AsSpan(0, 2 * BlockFile.ChunkSize).ToArray(), passed);
    }

    [Fact]
    public async Task Checksums_computed_over_the_received_bytes_are_not_what_is_checked()
    {
        // Bytes and checksums that agree with each other, but not with what the home recorded, are refused.
        var recorded = RandomNumberGenerator.GetBytes(3 * BlockFile.ChunkSize);
        var forged = RandomNumberGenerator.GetBytes(recorded.Length);
        using var stream = new RecordedChecksumStream(new MemoryStream(forged), Key, recorded.Length, ChecksumsOf(recorded), "10.0.0.3:9000");
        var (passed, error) = await DrainAsync(stream, 4096);
        Assert.IsType<IOException>(error);
        Assert.Empty(passed);
    }

    [Fact]
    public async Task A_copy_that_ends_early_or_a_wrong_number_of_checksums_is_an_error()
    {
        var data = RandomNumberGenerator.GetBytes(2 * BlockFile.ChunkSize);
        using var stream = new RecordedChecksumStream(new MemoryStream(data[..BlockFile.ChunkSize]), Key, data.Length, ChecksumsOf(data), "10.0.0.2:9000");
        var (_, error) = await DrainAsync(stream, 4096);
        Assert.Contains("ended inside chunk 1", Assert.IsType<IOException>(error).Message, StringComparison.Ordinal);

        var wrong = Assert.Throws<ArgumentException>(() => new RecordedChecksumStream(new MemoryStream(data), Key, data.Length, [1UL], "10.0.0.2:9000"));
        Assert.Contains("2 chunks; 1 checksums were given", wrong.Message, StringComparison.Ordinal);
    }
}
