namespace GrainFs.DataPlane.Blocks;

/// <summary>A block read sequentially from a worker's data port, 1 MiB at a time, over the silo's pooled client: the source of a replica copy.</summary>
public sealed class DataPortStream(DataPortClient client, string endpoint, BlockKey key, int length) : ReadOnlyStream
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly DataPortClient _client = client;
    private long _position;

    /// <inheritdoc />
    public override long Length => length;

    public override int Read(Span<byte> buffer) => throw new NotSupportedException("read a data-port stream asynchronously");

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var want = (int)Math.Min(Math.Min(buffer.Length, 1 << 20), length - _position);
        if (want <= 0)
        {
            return 0;
        }

        var result = await _client.ReadAsync(endpoint, key, _position, buffer[..want], waitForFill: true, Timeout, cancellationToken).ConfigureAwait(false);
        if (result.Status != DataPortStatus.Ok)
        {
            throw new IOException($"data port {endpoint} answered {result.Status} for block {key}{(result.Message is null ? string.Empty : ": " + result.Message)}");
        }

        _position += result.Read;
        return result.Read;
    }
}
