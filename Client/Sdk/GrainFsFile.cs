namespace GrainFs.Client;

/// <summary>
/// An open file of GrainFS: positional reads into the caller's buffer, served block by block from the cache.
/// Sequential reading makes it ask for the next blocks to be filled ahead of the reader. Thread-safe.
/// </summary>
public sealed class GrainFsFile
{
    private readonly BlockReader _reader;
    private readonly IGrainFactory _grains;
    private readonly int _readAhead;
    private int _lastBlock = -1; // a first read of block 0 is the start of a sequential read
    private int _prefetchedUpTo = -1;

    internal GrainFsFile(FileVersion version, BlockReader reader, IGrainFactory grains, int readAhead)
    {
        Version = version;
        _reader = reader;
        _grains = grains;
        _readAhead = readAhead;
    }

    /// <summary>The file version being read (its ETag pins it: a rewritten object is a new version).</summary>
    public FileVersion Version { get; }

    /// <summary>The full GrainFS path.</summary>
    public string Path => Version.Path;

    /// <summary>Bytes in the file.</summary>
    public long Length => Version.Entry.Size;

    /// <summary>
    /// Reads up to <c>destination.Length</c> bytes at <paramref name="offset"/>; fewer only at the end of the file.
    /// Failures (under-storage down for an uncached block, every silo gone) come back as EIO naming the path.
    /// </summary>
    public async ValueTask<FsResult<int>> ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        if (offset < 0)
        {
            return FsResult<int>.Fail(FsStatus.InvalidArgument, $"{Path}: negative offset {offset}");
        }

        _reader.FileRead?.Invoke(Path);
        var total = 0;
        var blockSize = Version.BlockSize;
        while (total < destination.Length && offset + total < Length)
        {
            var position = offset + total;
            var index = (int)(position / blockSize);
            var within = (int)(position - ((long)index * blockSize));
            var want = (int)Math.Min(Math.Min(destination.Length - total, blockSize - within), Length - position);
            var (read, cold) = await _reader.ReadAsync(Version, index, within, destination.Slice(total, want), cancellationToken).ConfigureAwait(false);
            ReadAhead(index, cold);
            if (!read.IsOk)
            {
                return read;
            }

            if (read.Value == 0)
            {
                return FsResult<int>.Fail(FsStatus.IoError, $"{Path}: block {index} ended early (the file changed in under-storage?)");
            }

            total += read.Value;
        }

        return FsResult<int>.Ok(total);
    }

    /// <summary>
    /// Where the <paramref name="length"/> bytes at <paramref name="offset"/> lie on this host when they are all in one
    /// block file this process has read and checked before (false: read them with <see cref="ReadAsync(long, Memory{byte}, CancellationToken)"/>).
    /// </summary>
    public bool TryLocalSpan(long offset, int length, out LocalSpan span)
    {
        span = default;
        var blockSize = Version.BlockSize;
        if (offset < 0 || length <= 0 || offset + length > Length)
        {
            return false;
        }

        var index = (int)(offset / blockSize);
        var within = (int)(offset - ((long)index * blockSize));
        if (within + (long)length > blockSize || !_reader.TryLocalSpan(Version, index, within, length, out span))
        {
            return false;
        }

        _reader.FileRead?.Invoke(Path);
        ReadAhead(index, cold: false);
        return true;
    }

    private void ReadAhead(int index, bool cold)
    {
        var last = Interlocked.Exchange(ref _lastBlock, index);
        if (_readAhead <= 0 || (index != last && index != last + 1) || (!cold && index > Volatile.Read(ref _prefetchedUpTo)))
        {
            // Only a sequential reader that met a cold block, or reads inside the window filled ahead of it, asks for
            // more (so the window moves with the reader instead of draining and stalling on the next cold block);
            // reads of a warm file touch no grain.
            return;
        }

        // Sequential: have the next blocks filled on their homes while this one is being read.
        var until = Math.Min(Version.BlockCount - 1, index + _readAhead);
        var seen = Volatile.Read(ref _prefetchedUpTo);
        var from = Math.Max(index + 1, seen + 1);
        // Claimed from the value seen: a concurrent reader of this file that moved the window first asks for the rest.
        if (from > until || Interlocked.CompareExchange(ref _prefetchedUpTo, until, seen) != seen)
        {
            return;
        }

        for (var i = from; i <= until; i++)
        {
            var grain = _grains.GetGrain<IBlockGrain>(Version.KeyOf(i).ToString());
            var fill = grain.FillAsync(Version.SourceOf(i));
            if (!fill.IsCompleted)
            {
                // Fire-and-forget is safe here: a failed prefetch only means the reader fills the block itself.
                _ = fill.AsTask().ContinueWith(static t => _ = t.Exception, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously);
            }
        }
    }

    /// <summary>A read-only, seekable stream over the file.</summary>
    public Stream OpenStream() => new GrainFsStream(this);
}

/// <summary>A seekable read-only stream over a <see cref="GrainFsFile"/>; failures surface as <see cref="GrainFsException"/>.</summary>
internal sealed class GrainFsStream(GrainFsFile file) : Stream
{
    private long _position;

    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => false;

    public override long Length => file.Length;

    public override long Position
    {
        get => _position;
        set => _position = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value));
    }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var result = await file.ReadAsync(_position, buffer, cancellationToken).ConfigureAwait(false);
        _position += result.GetValueOrThrow();
        return result.Value;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override long Seek(long offset, SeekOrigin origin)
    {
        Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => file.Length + offset,
        };
        return _position;
    }

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
