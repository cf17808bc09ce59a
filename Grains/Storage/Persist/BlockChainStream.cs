using GrainFs.DataPlane.Blocks;
using GrainFs.Storage.Cache;
using Microsoft.Win32.SafeHandles;

namespace GrainFs.Storage.Persist;

/// <summary>
/// A written file read back from its blocks on this worker's tiers, in order, for its upload: every chunk checked
/// against its checksum (a corrupt or missing block fails the upload, which is retried, rather than persisting bad
/// bytes), paced by the silo's persist rate. Reads go into the uploader's (pooled) buffers; one block file is open at a time.
/// </summary>
public sealed class BlockChainStream(TierStore store, IReadOnlyList<BlockKey> keys, long length, int blockSize, RateLimiter? rate, string describe) : Stream
{
    private long _position;
    private int _block = -1;
    private SafeFileHandle? _handle;
    private BlockHeader? _header;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => length;

    public override long Position
    {
        get => _position;
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (_position >= length || buffer.IsEmpty)
        {
            return 0;
        }

        var index = (int)(_position / blockSize);
        Open(index);
        var within = _position - ((long)index * blockSize);
        var want = (int)Math.Min(buffer.Length, _header!.DataLength - within);
        var read = BlockFile.ReadVerified(_handle!, _header, within, buffer[..want], verify: true);
        if (read < 0)
        {
            throw new IOException($"{describe}: block {index} ({keys[index]}) failed its checksum on this worker");
        }

        if (read == 0)
        {
            throw new IOException($"{describe}: block {index} ({keys[index]}) ended early");
        }

        _position += read;
        return read;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = Read(buffer.Span);
        if (rate is not null)
        {
            await rate.TakeAsync(read, cancellationToken).ConfigureAwait(false);
        }

        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private void Open(int index)
    {
        if (index == _block)
        {
            return;
        }

        _handle?.Dispose();
        _handle = null;
        if (index >= keys.Count || !store.TryPeek(keys[index], out var block))
        {
            throw Missing(index);
        }

        try
        {
            _handle = File.OpenHandle(block.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw Missing(index);
        }

        _header = block.Header;
        _block = index;
    }

    private IOException Missing(int index) =>
        new($"{describe}: block {index} of {keys.Count} is not on this worker (its tier was wiped?)");

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _handle?.Dispose();
        }

        base.Dispose(disposing);
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
