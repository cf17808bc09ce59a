using System.Buffers;
using GrainFs.DataPlane.Blocks;

namespace GrainFs.Client;

/// <summary>
/// A file being written: positional writes at any offset until it is closed; the file becomes visible to every client
/// at <see cref="CloseAsync"/>, whole. Bytes go block by block to the write worker's data port (never in grain
/// messages) from pooled buffers: a block is sent as soon as it is full, a few in flight at once, while the writer
/// fills the next. A block written again after it was sent is read back and sent again at close. Calls are serialized.
/// </summary>
public sealed partial class GrainFsWriter
{
    /// <summary>Blocks buffered at once before the oldest is sent (it is sent again at close if it changes).</summary>
    public const int MaxBufferedBlocks = 8;

    /// <summary>Block uploads in flight at once.</summary>
    public const int MaxInFlight = 4;

    private readonly GrainFsClient _client;
    private readonly MountInfo _mount;
    private readonly string _relative;
    private readonly string _writer;
    private readonly bool _exclusive;
    private readonly SiloInfo _worker;
    private readonly SiloInfo? _standby;
    private readonly int _blockSize;
    private readonly (ulong Hi, ulong Lo) _fileId;
    private readonly SortedDictionary<int, Buffered> _buffered = [];
    private readonly Dictionary<int, int> _sent = [];

    // The digest of each block as sent (BlockFile.Digest), so the workers' copies are checked against it at the seal.
    private readonly Dictionary<int, ulong> _digests = [];
    private readonly List<(int Index, Task<(FsStatus Status, string? Message)> Upload)> _inFlight = [];
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly bool _quota;
    private long _reserved;
    private bool _fileReserved;
    private int _mode;
    private int _uid;
    private int _gid;
    private DateTime? _mtime;
    private FsStatus _failed;
    private string? _failure;
    private bool _dirty = true;

    private sealed class Buffered(byte[] data)
    {
        public byte[] Data { get; } = data;

        public int Filled { get; set; }
    }

    internal GrainFsWriter(GrainFsClient client, MountInfo mount, string path, string relative, CreateOptions options, WriteType writeType, SiloInfo worker, SiloInfo? standby = null)
    {
        _standby = standby;
        _client = client;
        _mount = mount;
        Path = path;
        _relative = relative;
        _exclusive = options.Exclusive;
        _mode = options.Mode & 0xFFF;
        _uid = options.Uid;
        _gid = options.Gid;
        WriteType = writeType;
        _worker = worker;
        _blockSize = mount.Options.BlockSize;
        Tag = WriteTag.New();
        _writer = Tag;
        _fileId = WriteTag.FileId(mount.BlockNamespace, string.Empty, Tag, 0, _blockSize);
        _quota = mount.Options.QuotaBytes > 0 || mount.Options.QuotaFiles > 0;
    }

    /// <summary>The full GrainFS path.</summary>
    public string Path { get; }

    /// <summary>Bytes written so far (the highest offset written).</summary>
    public long Length { get; private set; }

    /// <summary>The write type in effect.</summary>
    public WriteType WriteType { get; }

    /// <summary>True once closed (committed) or aborted.</summary>
    public bool IsClosed { get; private set; }

    /// <summary>The version's write tag.</summary>
    public string Tag { get; }

    /// <summary>The silo whose worker takes the blocks.</summary>
    public string Worker => _worker.Name;

    internal string WriterId => _writer;

    private IMountUsageGrain Usage => _client.Grains.GetGrain<IMountUsageGrain>(_mount.Id);

    internal async ValueTask<FsResult<bool>> ReserveFileAsync()
    {
        if (!_quota)
        {
            return FsResult<bool>.Ok(true);
        }

        var reserved = await Usage.ReserveAsync(0, 1).ConfigureAwait(false);
        _fileReserved = reserved.Status == FsStatus.Ok;
        return _fileReserved ? FsResult<bool>.Ok(true) : FsResult<bool>.Fail(reserved.Status, reserved.Message);
    }

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/> (any offset: holes read as zeros). EDQUOT / ENOSPC / EIO on failure.</summary>
    public async ValueTask<FsResult<int>> WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        if (offset < 0)
        {
            return FsResult<int>.Fail(FsStatus.InvalidArgument, $"{Path}: negative offset {offset}");
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (Refusal() is { } refused)
            {
                return FsResult<int>.Fail(refused.Status, refused.Message);
            }

            var total = data.Length;
            while (!data.IsEmpty)
            {
                var index = (int)(offset / _blockSize);
                var within = (int)(offset - ((long)index * _blockSize));
                var take = Math.Min(data.Length, _blockSize - within);
                var block = await BufferOfAsync(index, cancellationToken).ConfigureAwait(false);
                if (block is null)
                {
                    return FsResult<int>.Fail(_failed, _failure);
                }

                if (within > block.Filled)
                {
                    // A hole: reads as zeros.
                    block.Data.AsSpan(block.Filled, within - block.Filled).Clear();
                }

                data.Span[..take].CopyTo(block.Data.AsSpan(within));
                _dirty = true;
                block.Filled = Math.Max(block.Filled, within + take);
                Length = Math.Max(Length, offset + take);
                offset += take;
                data = data[take..];
                if (block.Filled == _blockSize)
                {
                    await SendAsync(index, cancellationToken).ConfigureAwait(false);
                }
            }

            while (_buffered.Count > MaxBufferedBlocks)
            {
                await SendAsync(_buffered.Keys.First(), cancellationToken).ConfigureAwait(false);
            }

            return Refusal() is { } failed ? FsResult<int>.Fail(failed.Status, failed.Message) : FsResult<int>.Ok(total);
        }
        finally
        {
            _gate.Release();
        }
    }

    private (FsStatus Status, string? Message)? Refusal() =>
        IsClosed ? (FsStatus.BadHandle, $"{Path}: the file is closed")
        : _failed != FsStatus.Ok ? (_failed, _failure)
        : null;

    /// <summary>The buffer of block <paramref name="index"/>: held, read back from the worker when sent before, or new.</summary>
    private async ValueTask<Buffered?> BufferOfAsync(int index, CancellationToken cancellationToken)
    {
        if (_buffered.TryGetValue(index, out var held))
        {
            return held;
        }

        var block = new Buffered(ArrayPool<byte>.Shared.Rent(_blockSize));
        _buffered[index] = block;
        if (_sent.TryGetValue(index, out var sent))
        {
            await WaitForUploadAsync(index).ConfigureAwait(false);
            if (_failed != FsStatus.Ok)
            {
                return null;
            }

            var read = await _client.DataPort.ReadAsync(_worker.DataEndpoint, KeyOf(index), 0, block.Data.AsMemory(0, sent), waitForFill: false, _client.Options.DataTimeout, cancellationToken).ConfigureAwait(false);
            if (read.Status != DataPortStatus.Ok || read.Read != sent)
            {
                Fail(FsStatus.IoError, $"{Path}: block {index} could not be read back from write worker {_worker.Name}: {read.Message ?? read.Status.ToString()}");
                return null;
            }

            block.Filled = sent;
            _sent.Remove(index);
        }

        return block;
    }

    private BlockKey KeyOf(int index) => BlockKey.For(_fileId, index);

    // The digest of the file as sent (every block of its length sent by this writer), or null when some block was not
    // sent by it and so is not known here: the workers then check nothing.
    private ulong? FileDigest()
    {
        var count = (int)((Length + _blockSize - 1) / _blockSize);
        var digests = new ulong[count];
        for (var i = 0; i < count; i++)
        {
            if (!_sent.ContainsKey(i) || !_digests.TryGetValue(i, out digests[i]))
            {
                return null;
            }
        }

        return BlockFile.Digest(digests);
    }

    private void Fail(FsStatus status, string? message)
    {
        if (_failed == FsStatus.Ok)
        {
            _failed = status;
            _failure = message;
        }
    }

    /// <summary>Sends a buffered block (bounded: waits for the oldest upload when too many are in flight).</summary>
    private async ValueTask SendAsync(int index, CancellationToken cancellationToken)
    {
        if (!_buffered.Remove(index, out var block))
        {
            return;
        }

        while (_inFlight.Count >= MaxInFlight)
        {
            await CompleteOldestAsync().ConfigureAwait(false);
        }

        // The quota is taken in order, before the bytes leave: a write over it fails here and sends nothing more.
        var grow = ((long)index * _blockSize) + block.Filled - _reserved;
        if (_quota && grow > 0 && _failed == FsStatus.Ok)
        {
            var reserved = await Usage.ReserveAsync(grow, 0).ConfigureAwait(false);
            if (reserved.Status == FsStatus.Ok)
            {
                _reserved += grow;
            }
            else
            {
                Fail(reserved.Status, $"{Path}: {reserved.Message}");
            }
        }

        if (_failed != FsStatus.Ok)
        {
            ArrayPool<byte>.Shared.Return(block.Data);
            return;
        }

        _sent[index] = block.Filled;
        _digests[index] = BlockFile.Digest(block.Data.AsSpan(0, block.Filled));
        _inFlight.Add((index, UploadAsync(index, block, cancellationToken)));
    }

    private async Task<(FsStatus Status, string? Message)> UploadAsync(int index, Buffered block, CancellationToken cancellationToken)
    {
        try
        {
            var data = block.Data.AsMemory(0, block.Filled);
            var capability = await _client.WriteCapabilities.GetAsync(_mount).ConfigureAwait(false);
            if (!capability.IsOk)
            {
                return (capability.Status, capability.Message);
            }

            var first = _client.DataPort.WriteAsync(_worker.DataEndpoint, KeyOf(index), data, capability.Value, _client.Options.FillTimeout, cancellationToken).AsTask();
            var second = _standby is null ? null : _client.DataPort.WriteAsync(_standby.DataEndpoint, KeyOf(index), data, capability.Value, _client.Options.FillTimeout, cancellationToken).AsTask();
            var result = Outcome(await first.ConfigureAwait(false), _worker, index);
            if (second is not null)
            {
                var copy = Outcome(await second.ConfigureAwait(false), _standby!, index);
                result = result.Status == FsStatus.Ok ? copy : result;
            }

            return result;
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or TimeoutException or OrleansException)
        {
            if (e is IOException or System.Net.Sockets.SocketException)
            {
                _client.SuspectWorker(_worker.Name);
            }

            return (FsStatus.IoError, $"{Path}: write worker {_worker.Name} failed while taking block {index}: {e.Message}");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(block.Data);
        }
    }

    private (FsStatus Status, string? Message) Outcome(DataPortResult result, SiloInfo worker, int index) => result.Status switch
    {
        DataPortStatus.Ok => (FsStatus.Ok, null),
        DataPortStatus.NoSpace => (FsStatus.NoSpace, $"{Path}: {result.Message}"),
        DataPortStatus.Denied => (FsStatus.AccessDenied, $"{Path}: write worker {worker.Name} refused block {index}: {result.Message}"),
        _ => (FsStatus.IoError, $"{Path}: write worker {worker.Name} did not store block {index}: {result.Message ?? result.Status.ToString()}"),
    };

    private async ValueTask CompleteOldestAsync()
    {
        var (_, upload) = _inFlight[0];
        _inFlight.RemoveAt(0);
        var (status, message) = await upload.ConfigureAwait(false);
        if (status != FsStatus.Ok)
        {
            Fail(status, message);
        }
    }

    private async ValueTask WaitForUploadAsync(int index)
    {
        for (var i = 0; i < _inFlight.Count; i++)
        {
            if (_inFlight[i].Index == index)
            {
                var (status, message) = await _inFlight[i].Upload.ConfigureAwait(false);
                _inFlight.RemoveAt(i);
                if (status != FsStatus.Ok)
                {
                    Fail(status, message);
                }

                return;
            }
        }
    }

    private async ValueTask DrainAsync()
    {
        while (_inFlight.Count > 0)
        {
            await CompleteOldestAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Sends what is buffered to the write worker and waits until it is synced there (fsync).</summary>
    public async ValueTask<FsResult<bool>> FlushAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (IsClosed)
            {
                return FsResult<bool>.Ok(true);
            }

            foreach (var index in _buffered.Keys.ToList())
            {
                await SendAsync(index, cancellationToken).ConfigureAwait(false);
            }

            await DrainAsync().ConfigureAwait(false);
            return _failed == FsStatus.Ok ? FsResult<bool>.Ok(true) : FsResult<bool>.Fail(_failed, _failure);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Attributes committed with the file at close (mode, owner, group, mtime; Size truncates or extends what was written).</summary>
    public FsStatus SetAttributes(AttributeChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        _gate.Wait();
        try
        {
            if (IsClosed)
            {
                return FsStatus.BadHandle;
            }

            _dirty = true;
            if (change.Mode is { } mode)
            {
                _mode = mode & 0xFFF;
            }

            _uid = change.Uid ?? _uid;
            _gid = change.Gid ?? _gid;
            _mtime = change.MtimeUtc?.ToUniversalTime() ?? _mtime;
            if (change.Size is { } size)
            {
                if (size < 0)
                {
                    return FsStatus.InvalidArgument;
                }

                Resize(size);
            }

            return FsStatus.Ok;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>ftruncate of the file being written: shorter drops bytes past the end, longer reads as zeros.</summary>
    private void Resize(long size)
    {
        if (size < Length)
        {
            var lastIndex = size == 0 ? -1 : (int)((size - 1) / _blockSize);
            foreach (var index in _buffered.Keys.Where(i => i > lastIndex).ToList())
            {
                _buffered.Remove(index, out var dropped);
                ArrayPool<byte>.Shared.Return(dropped!.Data);
            }

            if (lastIndex >= 0 && _buffered.TryGetValue(lastIndex, out var last))
            {
                last.Filled = (int)Math.Min(last.Filled, size - ((long)lastIndex * _blockSize));
            }

            // Blocks sent past the new end are simply not part of the sealed file (their keys are not in it), and a sent block
            // that now ends early is sent again at close with its new length.
            foreach (var index in _sent.Keys.Where(i => i > lastIndex).ToList())
            {
                _sent.Remove(index);
                _dropped.Add(index);
            }
        }

        Length = size;
    }

    private readonly HashSet<int> _dropped = [];

    /// <summary>Commits the file: from the moment this returns every client sees the new version. Idempotent.</summary>
    public async ValueTask<FsResult<FsEntry>> CloseAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (IsClosed)
            {
                return _committed is { } done ? FsResult<FsEntry>.Ok(done) : FsResult<FsEntry>.Fail(FsStatus.BadHandle, $"{Path}: the write was aborted");
            }

            var result = _dirty || _committed is null ? await CommitCoreAsync(final: true, cancellationToken).ConfigureAwait(false) : FsResult<FsEntry>.Ok(_committed);
            if (!result.IsOk && _committed is null)
            {
                // Nothing of it was ever visible: nothing stays behind.
                await AbortCoreAsync().ConfigureAwait(false);
            }

            IsClosed = true;
            return result;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Makes what is written so far visible (close of one descriptor of a file still open through another, FUSE flush) and
    /// keeps writing: a later commit or the close makes the grown file visible in turn. Nothing new since the last commit: nothing done.
    /// </summary>
    public async ValueTask<FsResult<FsEntry>> CommitAsync(CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (IsClosed)
            {
                return _committed is { } done ? FsResult<FsEntry>.Ok(done) : FsResult<FsEntry>.Fail(FsStatus.BadHandle, $"{Path}: the write was aborted");
            }

            return _dirty || _committed is null ? await CommitCoreAsync(final: false, cancellationToken).ConfigureAwait(false) : FsResult<FsEntry>.Ok(_committed);
        }
        finally
        {
            _gate.Release();
        }
    }

    private FsEntry? _committed;

    private async ValueTask<FsResult<FsEntry>> CommitCoreAsync(bool final, CancellationToken cancellationToken)
    {
        if (_failed != FsStatus.Ok)
        {
            return FsResult<FsEntry>.Fail(_failed, _failure);
        }

        // Every block of the final size, at its final length: written ones, holes (zeros), ones that changed since they were sent.
        var count = (int)((Length + _blockSize - 1) / _blockSize);
        for (var index = 0; index < count; index++)
        {
            var expected = (int)Math.Min(_blockSize, Length - ((long)index * _blockSize));
            if (_sent.TryGetValue(index, out var sent) && sent == expected && !_buffered.ContainsKey(index))
            {
                continue;
            }

            var block = await BufferOfAsync(index, cancellationToken).ConfigureAwait(false);
            if (block is null)
            {
                return FsResult<FsEntry>.Fail(_failed, _failure);
            }

            if (block.Filled < expected)
            {
                block.Data.AsSpan(block.Filled, expected - block.Filled).Clear();
            }

            block.Filled = expected;
            await SendAsync(index, cancellationToken).ConfigureAwait(false);
        }

        await DrainAsync().ConfigureAwait(false);
        if (_failed != FsStatus.Ok)
        {
            return FsResult<FsEntry>.Fail(_failed, _failure);
        }

        var worker = _client.Grains.GetGrain<IWorkerGrain>(_worker.Name);
        var seal = new WriteSeal(Tag, _mount.Id, _relative, Length, _blockSize, WriteType, final, Digest: FileDigest());
        WriteOutcome sealedOutcome;
        if (WriteType is WriteType.AsyncThrough or WriteType.MustCache)
        {
            // Journaled and answered at once, and a seal made again replaces the first: made again if its answer is lost.
            var sealing = await _client.Calls.RetriedCallAsync(() => worker.SealAsync(seal), $"{Path}: seal on write worker {_worker.Name}").ConfigureAwait(false);
            if (!sealing.IsOk)
            {
                _client.SuspectWorker(_worker.Name);
                return FsResult<FsEntry>.Fail(FsStatus.IoError, $"{Path}: write worker {_worker.Name} could not seal the file: {sealing.Message}");
            }

            sealedOutcome = sealing.Value!;
        }
        else
        {
            // CACHE_THROUGH and THROUGH upload before they answer, for as long as the upload takes: one attempt.
            try
            {
                sealedOutcome = await worker.SealAsync(seal).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OrleansException or TimeoutException or SiloUnavailableException)
            {
                return FsResult<FsEntry>.Fail(FsStatus.IoError, $"{Path}: write worker {_worker.Name} could not seal the file: {e.Message}");
            }
        }

        if (sealedOutcome.Status != FsStatus.Ok)
        {
            if (sealedOutcome.Status == FsStatus.IoError)
            {
                // A worker that cannot seal (gone, restarting under its name) takes no new file for a while.
                _client.SuspectWorker(_worker.Name);
            }

            return FsResult<FsEntry>.Fail(sealedOutcome.Status, sealedOutcome.Message);
        }

        if (_standby is not null)
        {
            // The second copy is synced and journaled too before the close returns: one lost worker loses nothing acknowledged.
            WriteOutcome copy;
            try
            {
                copy = await _client.Grains.GetGrain<IWorkerGrain>(_standby.Name).SealAsync(new WriteSeal(Tag, _mount.Id, _relative, Length, _blockSize, WriteType, final, _worker.Name, FileDigest())).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OrleansException or TimeoutException or SiloUnavailableException)
            {
                copy = new WriteOutcome(FsStatus.IoError, $"{Path}: write worker {_standby.Name} could not seal the second copy: {e.Message}");
            }

            if (copy.Status != FsStatus.Ok)
            {
                return FsResult<FsEntry>.Fail(copy.Status, copy.Message);
            }
        }

        var (persistence, etag) = WriteType switch
        {
            WriteType.MustCache => (Persistence.CacheOnly, Tag),
            WriteType.AsyncThrough => (Persistence.Pending, Tag),
            _ => (Persistence.Persisted, WriteTag.Persisted(Tag, sealedOutcome.UnderStorageETag ?? string.Empty)),
        };
        var name = FsPath.SplitRelative(_relative).Name;
        var entry = new FsEntry(name, FsKind.File, Length, _mtime ?? DateTime.UtcNow, etag, _mode, _uid, _gid,
            WriteType == WriteType.Through && final ? null : _standby is null ? [_worker.Name] : [_worker.Name, _standby.Name], persistence);

        // A second commit of this writer replaces its own first one, whatever O_EXCL said.
        var exclusive = _exclusive && _committed is null;
        var committed = await _client.Namespace.CallDirectoryAsync(_mount, _relative, Path, (grain, child) => grain.CommitAsync(child, entry, _writer, exclusive), retried: true).ConfigureAwait(false);
        _client.Namespace.Changed(Path);
        if (committed.Status != FsStatus.Ok)
        {
            return FsResult<FsEntry>.Fail(committed.Status, committed.Message);
        }

        _committed = committed.Entry;
        _dirty = false;
        if (final)
        {
            _sent.Clear();
        }

        return FsResult<FsEntry>.Ok(committed.Entry!);
    }

    /// <summary>Drops what was written (nothing becomes visible, nothing is left behind).</summary>
    public async ValueTask AbortAsync()
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (IsClosed)
            {
                return;
            }

            await AbortCoreAsync().ConfigureAwait(false);
            IsClosed = true;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async ValueTask AbortCoreAsync()
    {
        foreach (var (_, upload) in _inFlight)
        {
            await upload.ConfigureAwait(false);
        }

        _inFlight.Clear();
        foreach (var block in _buffered.Values)
        {
            ArrayPool<byte>.Shared.Return(block.Data);
        }

        _buffered.Clear();
        var keys = _sent.Keys.Concat(_dropped).Distinct().Select(KeyOf).ToArray();
        try
        {
            if (keys.Length > 0)
            {
                await _client.Grains.GetGrain<IWorkerGrain>(_worker.Name).DropWrittenAsync(_mount.Id, Tag, keys, deleteObject: false).ConfigureAwait(false);
                if (_standby is not null)
                {
                    await _client.Grains.GetGrain<IWorkerGrain>(_standby.Name).DropWrittenAsync(_mount.Id, Tag, keys, deleteObject: false).ConfigureAwait(false);
                }
            }

            if (_quota && (_reserved > 0 || _fileReserved))
            {
                await Usage.ReleaseAsync(_reserved, _fileReserved ? 1 : 0).ConfigureAwait(false);
            }

            if (_exclusive)
            {
                var (parent, name) = FsPath.SplitRelative(_relative);
                await _client.Grains.GetGrain<IDirectoryGrain>(_client.Namespace.DirectoryKeyOf(_mount.Id, parent, name).ToString()).UnreserveAsync(name, _writer).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is OrleansException or TimeoutException or SiloUnavailableException)
        {
            // The worker is gone with the blocks; a reservation left behind only delays the next exclusive creator of the name.
            System.Diagnostics.Debug.WriteLine($"abort of {Path}: {e.Message}");
        }

        _sent.Clear();
        _reserved = 0;
        _fileReserved = false;
    }

    /// <summary>Reads back bytes written so far (a file open for reading and writing); holes and unwritten ranges read as zeros.</summary>
    public async ValueTask<FsResult<int>> ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var total = 0;
            while (total < destination.Length && offset + total < Length)
            {
                var position = offset + total;
                var index = (int)(position / _blockSize);
                var within = (int)(position - ((long)index * _blockSize));
                var want = (int)Math.Min(Math.Min(destination.Length - total, _blockSize - within), Length - position);
                var target = destination.Slice(total, want);
                if (_buffered.TryGetValue(index, out var block))
                {
                    var have = Math.Max(0, Math.Min(want, block.Filled - within));
                    block.Data.AsSpan(within, have).CopyTo(target.Span);
                    target.Span[have..].Clear();
                }
                else if (_sent.TryGetValue(index, out var sent))
                {
                    await WaitForUploadAsync(index).ConfigureAwait(false);
                    var have = Math.Max(0, Math.Min(want, sent - within));
                    if (have > 0)
                    {
                        var read = await _client.DataPort.ReadAsync(_worker.DataEndpoint, KeyOf(index), within, target[..have], waitForFill: false, _client.Options.DataTimeout, cancellationToken).ConfigureAwait(false);
                        if (read.Status != DataPortStatus.Ok)
                        {
                            return FsResult<int>.Fail(FsStatus.IoError, $"{Path}: block {index} could not be read back from write worker {_worker.Name}: {read.Message ?? read.Status.ToString()}");
                        }
                    }

                    target.Span[have..].Clear();
                }
                else
                {
                    target.Span.Clear();
                }

                total += want;
            }

            return FsResult<int>.Ok(total);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => IsClosed ? ValueTask.CompletedTask : AbortAsync();
}
