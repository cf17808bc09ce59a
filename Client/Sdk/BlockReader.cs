using System.Collections.Concurrent;
using System.Net.Sockets;
using GrainFs.DataPlane;
using GrainFs.DataPlane.Blocks;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;

namespace GrainFs.Client;

/// <summary>A version of a file, as the block layer sees it.</summary>
/// <param name="Mount">The mount.</param>
/// <param name="Path">The full GrainFS path (for messages).</param>
/// <param name="Relative">The path relative to the mount root.</param>
/// <param name="Entry">The inode (size, ETag).</param>
public sealed record FileVersion(MountInfo Mount, string Path, string Relative, FsEntry Entry)
{
    private readonly (ulong Hi, ulong Lo) _fileId = WriteTag.FileId(Mount.BlockNamespace, Relative, Entry.ETag, Entry.Size, Mount.Options.BlockSize);

    /// <summary>The mount's block size.</summary>
    public int BlockSize => Mount.Options.BlockSize;

    /// <summary>Number of blocks (a small file is one block; an empty file has none).</summary>
    public int BlockCount => (int)((Entry.Size + BlockSize - 1) / BlockSize);

    /// <summary>The key of block <paramref name="index"/>.</summary>
    public BlockKey KeyOf(int index) => BlockKey.For(_fileId, index);

    /// <summary>What the home worker needs to fill block <paramref name="index"/>.</summary>
    public BlockSource SourceOf(int index) => new(Mount.Id, Relative, Entry.ETag, Entry.Size, BlockSize, index);

    /// <summary>The same, in the form a data-port request carries.</summary>
    public FillSource FillSourceOf(int index) => new(Mount.Id, Relative, Entry.ETag, Entry.Size, BlockSize, index);
}

/// <summary>
/// Reads block ranges into the caller's buffer: from a local tier folder when this host's worker holds the block
/// (short-circuit), else from the home worker's data port, else by asking the block's grain to fill it and
/// reading the bytes as they stream in. A silo that stops answering costs a retry on the new home, not an error.
/// </summary>
internal sealed partial class BlockReader : IDisposable
{
    private static readonly KeyValuePair<string, object?> ShortCircuitTag = new("path", "short-circuit");
    private static readonly KeyValuePair<string, object?> RemoteTag = new("path", "remote");
    private static readonly KeyValuePair<string, object?> FillTag = new("path", "fill");
    private readonly IGrainFactory _grains;
    private readonly ClusterView _cluster;
    private readonly GrainFsClientOptions _options;
    private readonly ILogger _logger;
    private readonly DataPortClient _dataPort;
    private readonly ConcurrentDictionary<BlockKey, LocalBlock> _local = new();
    private readonly ConcurrentDictionary<string, byte> _deniedRoots = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<BlockKey> _accessed = new();
    private readonly ConcurrentDictionary<BlockKey, int> _remoteReads = new();
    private int _accessedCount;

    /// <summary>The data-port connections, shared with writers.</summary>
    internal DataPortClient DataPort => _dataPort;

    public BlockReader(IGrainFactory grains, ClusterView cluster, GrainFsClientOptions options, GrainFs.DataPlane.Security.ClusterTrust? trust, ILogger logger)
    {
        _dataPort = new DataPortClient(trust);
        _grains = grains;
        _cluster = cluster;
        _options = options;
        _logger = logger;
    }

    /// <summary>
    /// Reads up to <c>destination.Length</c> bytes of block <paramref name="index"/> at <paramref name="offset"/> within the block.
    /// <see cref="BlockRead.Cold"/> is set when the block had to be filled from under-storage (sequential readers then read ahead).
    /// </summary>
    public async ValueTask<BlockRead> ReadAsync(FileVersion file, int index, int offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        var key = file.KeyOf(index);
        var view = await _cluster.GetAsync(cancellationToken).ConfigureAwait(false);
        var shortCircuit = TryShortCircuit(view, key, offset, destination.Span, out var corrupt);
        if (shortCircuit >= 0)
        {
            GrainFsMetrics.ClientBytesRead.Add(shortCircuit, ShortCircuitTag);
            return FsResult<int>.Ok(shortCircuit);
        }

        var refill = corrupt;
        string? lastError = null;
        var deadline = DateTime.UtcNow + _options.FailoverTimeout;
        var backoff = TimeSpan.FromMilliseconds(100);
        for (var attempt = 1; ; attempt++)
        {
            // A file written through GrainFS is read from the worker that took its blocks first (its home may never have had them);
            // a file of an announced read order from the worker its prefetch fills (this host's, joining a fill in flight).
            var home = (attempt == 1 ? HolderOf(view, file) ?? (Announced?.Invoke(file.Path) == true ? NearestWorker(view, key) : null) : null) ?? _cluster.Home(view, key);
            if (home is null)
            {
                return FsResult<int>.Fail(FsStatus.IoError, $"{file.Path}: no silo is available");
            }

            var silo = home.Name;
            var endpoint = home.DataEndpoint;
            try
            {
                var viaGrain = refill;
                if (!refill && ReadsLocally(home))
                {
                    // This host's worker: it fills the block from its source unless it holds or fills it already (a
                    // read-ahead's fill, another reader's) and answers once it is held; the block file is read here, so no
                    // bytes cross the data port. One round trip, no grain call.
                    var local = await ReadWhenHeldAsync(view, endpoint, key, offset, destination, file.FillSourceOf(index), cancellationToken).ConfigureAwait(false);
                    if (local.Read >= 0)
                    {
                        return new BlockRead(FsResult<int>.Ok(local.Read), Cold: true);
                    }

                    if (local.Status is DataPortStatus.Error)
                    {
                        return FsResult<int>.Fail(FsStatus.IoError, $"{file.Path}: {local.Message}");
                    }

                    // Not filled (the grain says why) or unreadable here after all.
                    refill = local.Corrupt;
                    viaGrain = true;
                }

                if (!viaGrain)
                {
                    var remote = await ReadRemoteAsync(endpoint, key, offset, destination, cancellationToken).ConfigureAwait(false);
                    if (remote.Status == DataPortStatus.Miss)
                    {
                        // Cold: the home worker fills it from its source (single-flight there) and streams the bytes as they come.
                        remote = await _dataPort.FillAsync(endpoint, key, file.FillSourceOf(index), offset, destination, awaitHeld: false, _options.FillTimeout, cancellationToken).ConfigureAwait(false);
                        GrainFsMetrics.ClientFills.Add(1);
                    }

                    switch (remote.Status)
                    {
                        case DataPortStatus.Ok:
                            GrainFsMetrics.ClientBytesRead.Add(remote.Read, remote.Source == DataSource.UnderStorage ? FillTag : RemoteTag);
                            MaybeReplicate(view, home, file, index, key);
                            // Served while its fill streams in (this read's, a read-ahead's, another reader's): still cold.
                            return new BlockRead(FsResult<int>.Ok(remote.Read), Cold: remote.Source == DataSource.UnderStorage);
                        case DataPortStatus.Corrupt:
                            refill = true;
                            break;
                        case DataPortStatus.Error or DataPortStatus.BadRequest:
                            return FsResult<int>.Fail(FsStatus.IoError, $"{file.Path}: {remote.Message}");
                    }
                }

                // Cold (or corrupt): the block's grain, on its home, fills it once for every concurrent reader.
                var grain = _grains.GetGrain<IBlockGrain>(key.ToString());
                var source = file.SourceOf(index);
                var location = refill ? await grain.RefillAsync(source).ConfigureAwait(false) : await grain.FillAsync(source).ConfigureAwait(false);
                refill = false;
                GrainFsMetrics.ClientFills.Add(1);
                if (location.Status != FsStatus.Ok)
                {
                    return FsResult<int>.Fail(location.Status, $"{file.Path}: {location.Message}");
                }

                silo = location.Silo;
                endpoint = location.DataEndpoint;
                if (Array.Find(view.Silos, s => s.Name == location.Silo) is { } filler && ReadsLocally(filler))
                {
                    var local = await ReadWhenHeldAsync(view, endpoint, key, offset, destination, null, cancellationToken).ConfigureAwait(false);
                    if (local.Read >= 0)
                    {
                        return new BlockRead(FsResult<int>.Ok(local.Read), Cold: true);
                    }

                    if (local.Status is DataPortStatus.Error)
                    {
                        return FsResult<int>.Fail(FsStatus.IoError, $"{file.Path}: {local.Message}");
                    }

                    // Unreadable here after all (or corrupt): the bytes come through the data port.
                }

                var filled = await _dataPort.ReadAsync(endpoint, key, offset, destination, waitForFill: true, _options.FillTimeout, cancellationToken).ConfigureAwait(false);
                switch (filled.Status)
                {
                    case DataPortStatus.Ok:
                        GrainFsMetrics.ClientBytesRead.Add(filled.Read, FillTag);
                        MaybeReplicate(view, home, file, index, key);
                        return new BlockRead(FsResult<int>.Ok(filled.Read), Cold: true);
                    case DataPortStatus.Error or DataPortStatus.BadRequest:
                        return FsResult<int>.Fail(FsStatus.IoError, $"{file.Path}: {filled.Message}");
                    case DataPortStatus.Corrupt:
                        refill = true;
                        break;
                }

                lastError = $"block {index} was evicted while being read";
            }
            catch (Exception e) when (e is IOException or SocketException or TimeoutException or InvalidDataException or OrleansException or SiloUnavailableException)
            {
                // The silo died or stopped answering: suspect it, look again, and let the block find a new home.
                lastError = e.Message;
                LogRetry(_logger, file.Path, index, endpoint, e.Message);
                _dataPort.Forget(endpoint);
                if (e is IOException or SocketException or TimeoutException)
                {
                    _cluster.Suspect(silo);
                }

                view = await _cluster.RefreshAsync(view.FetchedTicks, cancellationToken).ConfigureAwait(false);
            }

            if (DateTime.UtcNow + backoff > deadline)
            {
                return FsResult<int>.Fail(FsStatus.IoError, $"{file.Path}: block {index} could not be read in {_options.FailoverTimeout.TotalSeconds:0} s ({attempt} attempts): {lastError}");
            }

            await Task.Delay(backoff, cancellationToken).ConfigureAwait(false);
            backoff = TimeSpan.FromMilliseconds(Math.Min(2000, backoff.TotalMilliseconds * 2));
        }
    }

    /// <summary>True for the files of this client's announced read orders (set by the prefetcher).</summary>
    internal Func<string, bool>? Announced { get; set; }

    /// <summary>
    /// The worker nearest to this client for a block: its home when this client reads the home's folders or no worker on
    /// this host lets it, else the first worker of this host whose folders it reads. Read orders fill their blocks there,
    /// so the reader finds them short-circuit.
    /// </summary>
    internal SiloInfo? NearestWorker(ClusterView.Snapshot view, BlockKey key)
    {
        var home = _cluster.Home(view, key);
        if (home is null || ReadsLocally(home))
        {
            return home;
        }

        foreach (var silo in view.Silos)
        {
            if (ReadsLocally(silo))
            {
                return silo;
            }
        }

        return home;
    }

    /// <summary>Whether this client reads <paramref name="silo"/>'s blocks from its tier folders (same host, allowed to).</summary>
    internal bool ReadsLocally(SiloInfo silo)
    {
        if (!_options.ShortCircuit || !string.Equals(silo.Host, _options.Host, StringComparison.Ordinal))
        {
            return false;
        }

        foreach (var root in silo.TierPaths)
        {
            if (!_deniedRoots.ContainsKey(root))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Waits until this host's worker holds the block, then reads it short-circuit: the byte count (Read ≥ 0), or -1 with
    /// the worker's answer (Miss: neither held nor being filled; Error: the fill failed) or Corrupt set.
    /// </summary>
    private async ValueTask<(int Read, DataPortStatus Status, bool Corrupt, string? Message)> ReadWhenHeldAsync(
        ClusterView.Snapshot view, string endpoint, BlockKey key, int offset, Memory<byte> destination, FillSource? source, CancellationToken cancellationToken)
    {
        var held = source is { } fill
            ? await _dataPort.FillAsync(endpoint, key, fill, 0, Memory<byte>.Empty, awaitHeld: true, _options.FillTimeout, cancellationToken).ConfigureAwait(false)
            : await _dataPort.AwaitHeldAsync(endpoint, key, _options.FillTimeout, cancellationToken).ConfigureAwait(false);
        if (held.Status != DataPortStatus.Ok)
        {
            return (-1, held.Status, false, held.Message);
        }

        var read = TryShortCircuit(view, key, offset, destination.Span, out var corrupt);
        if (read >= 0)
        {
            GrainFsMetrics.ClientBytesRead.Add(read, FillTag);
        }

        return (read, held.Status, corrupt, null);
    }

    private static SiloInfo? HolderOf(ClusterView.Snapshot view, FileVersion file)
    {
        if (file.Entry.Holders is not { Length: > 0 } holders)
        {
            return null;
        }

        foreach (var silo in view.Silos)
        {
            if (Array.IndexOf(holders, silo.Name) >= 0)
            {
                return silo;
            }
        }

        return null;
    }

    /// <summary>
    /// A block this host keeps reading from another host's worker gets a replica on this host's worker (when there is one),
    /// after which it is read short-circuit. The block's grain bounds the replicas.
    /// </summary>
    private void MaybeReplicate(ClusterView.Snapshot view, SiloInfo home, FileVersion file, int index, BlockKey key)
    {
        if (_options.ReplicateAfterReads <= 0 || home.Host == _options.Host)
        {
            return;
        }

        var reads = _remoteReads.AddOrUpdate(key, 1, static (_, n) => n + 1);
        if (reads != _options.ReplicateAfterReads)
        {
            return;
        }

        if (_remoteReads.Count > 100_000)
        {
            _remoteReads.Clear();
        }

        var local = Array.Find(view.Silos, s => s.Host == _options.Host);
        if (local is null)
        {
            return;
        }

        var replicate = _grains.GetGrain<IBlockGrain>(key.ToString()).ReplicateAsync(file.SourceOf(index), local.Name);
        if (!replicate.IsCompleted)
        {
            // Best effort: a replica that fails to appear only means reads stay remote.
            _ = replicate.AsTask().ContinueWith(static t => _ = t.Exception, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously);
        }
    }

    /// <summary>
    /// A warm remote read. A large range is split into slices read in parallel over several pooled connections, so
    /// the worker reads and checks one slice while the previous one crosses the network.
    /// </summary>
    private async ValueTask<DataPortResult> ReadRemoteAsync(string endpoint, BlockKey key, int offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        const int Slice = 1 << 20;
        if (destination.Length <= Slice)
        {
            return await _dataPort.ReadAsync(endpoint, key, offset, destination, waitForFill: false, _options.DataTimeout, cancellationToken).ConfigureAwait(false);
        }

        var count = (destination.Length + Slice - 1) / Slice;
        var reads = new Task<DataPortResult>[count];
        for (var i = 0; i < count; i++)
        {
            var start = i * Slice;
            var slice = destination.Slice(start, Math.Min(Slice, destination.Length - start));
            reads[i] = _dataPort.ReadAsync(endpoint, key, offset + start, slice, waitForFill: false, _options.DataTimeout, cancellationToken).AsTask();
        }

        await Task.WhenAll(reads).ConfigureAwait(false);
        var total = 0;
        foreach (var read in reads)
        {
            var result = read.Result;
            if (result.Status != DataPortStatus.Ok)
            {
                return result;
            }

            total += result.Read;
            if (result.Read < Slice)
            {
                // The block ended inside this slice.
                break;
            }
        }

        return new DataPortResult(DataPortStatus.Ok, total, reads[0].Result.Source, null);
    }

    /// <summary>
    /// Reads from a local tier folder; the byte count, or -1 when this host does not hold the block (or may not read
    /// the folder). <paramref name="corrupt"/> is set when the local copy failed its checksum.
    /// </summary>
    private int TryShortCircuit(ClusterView.Snapshot view, BlockKey key, int offset, Span<byte> destination, out bool corrupt)
    {
        corrupt = false;
        if (!_options.ShortCircuit)
        {
            return -1;
        }

        // A block this process has read locally before: its file, header and checked chunks are known, so a warm
        // read opens the file by its known name and allocates nothing else.
        if (_local.TryGetValue(key, out var known))
        {
            var read = ReadLocal(known, key, offset, destination, out corrupt);
            if (read >= 0 || corrupt)
            {
                return read;
            }

            // Evicted, or moved to another tier: look again.
            _local.TryRemove(key, out _);
        }

        var relative = BlockFile.RelativePath(key);
        foreach (var silo in view.Silos)
        {
            if (!string.Equals(silo.Host, _options.Host, StringComparison.Ordinal))
            {
                continue;
            }

            foreach (var root in silo.TierPaths)
            {
                if (_deniedRoots.ContainsKey(root))
                {
                    continue;
                }

                var path = Path.Combine(root, relative);
                BlockHeader? header;
                try
                {
                    using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                    header = BlockFile.ReadHeader(handle);
                }
                catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
                {
                    continue;
                }
                catch (IOException)
                {
                    // The disk failed the read: the worker's data port finds it too, drops the block and has it refilled.
                    continue;
                }
                catch (UnauthorizedAccessException)
                {
                    // Not allowed to read the worker's folder: this client reads through the data port instead.
                    _deniedRoots.TryAdd(root, 0);
                    LogShortCircuitDenied(_logger, root);
                    continue;
                }

                if (header is null || header.Key != key)
                {
                    corrupt = true;
                    return -1;
                }

                if (_local.Count > 100_000)
                {
                    _local.Clear();
                }

                var block = _local.GetOrAdd(key, new LocalBlock(path, header));
                var read = ReadLocal(block, key, offset, destination, out corrupt);
                if (read >= 0 || corrupt)
                {
                    return read;
                }
            }
        }

        return -1;
    }

    /// <summary>Told the path of every file read through this reader (the client's announced orders follow their readers).</summary>
    internal Action<string>? FileRead { get; set; }

    /// <summary>
    /// Where <paramref name="length"/> bytes at <paramref name="offset"/> of block <paramref name="index"/> lie in a block
    /// file on this host that this process has read and checked (false: read them with <see cref="ReadAsync"/>). The
    /// read is counted as a short-circuit read and reported to the worker like one.
    /// </summary>
    public bool TryLocalSpan(FileVersion file, int index, int offset, int length, out LocalSpan span)
    {
        span = default;
        if (!_options.ShortCircuit || _options.VerifyShortCircuit)
        {
            return false;
        }

        var key = file.KeyOf(index);
        if (!_local.TryGetValue(key, out var block) || offset + length > block.Header.DataLength || !block.Checked.Covers(offset, length))
        {
            return false;
        }

        span = new LocalSpan(block.Path, BlockFile.HeaderLength(block.Header.DataLength) + (long)offset, length);
        NoteAccess(key);
        GrainFsMetrics.ClientBytesRead.Add(length, ShortCircuitTag);
        return true;
    }

    /// <summary>Reads from a known local block file; -1 when it is gone (or, with <paramref name="corrupt"/> set, failed its checksum).</summary>
    private int ReadLocal(LocalBlock block, BlockKey key, int offset, Span<byte> destination, out bool corrupt)
    {
        corrupt = false;
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(block.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return -1;
        }

        using (handle)
        {
            var verify = _options.VerifyShortCircuit || !block.Checked.Covers(offset, destination.Length);
            int read;
            try
            {
                read = BlockFile.ReadVerified(handle, block.Header, offset, destination, verify);
            }
            catch (IOException)
            {
                // The disk failed the read: forgotten here, and read through the worker, which drops and refills it.
                _local.TryRemove(key, out _);
                return -1;
            }

            if (read < 0)
            {
                _local.TryRemove(key, out _);
                corrupt = true;
                return -1;
            }

            if (verify && read > 0)
            {
                block.Checked.Mark(offset, read);
            }

            NoteAccess(key);
            return read;
        }
    }

    private void NoteAccess(BlockKey key)
    {
        if (Interlocked.Increment(ref _accessedCount) <= 10_000)
        {
            _accessed.Enqueue(key);
        }
        else
        {
            Interlocked.Decrement(ref _accessedCount);
        }
    }

    /// <summary>Tells this host's workers which blocks were read short-circuit, so their eviction sees the reads.</summary>
    public async Task ReportAccessAsync(CancellationToken cancellationToken)
    {
        if (_accessed.IsEmpty)
        {
            return;
        }

        var keys = new List<BlockKey>();
        while (keys.Count < 10_000 && _accessed.TryDequeue(out var key))
        {
            Interlocked.Decrement(ref _accessedCount);
            keys.Add(key);
        }

        var view = await _cluster.GetAsync(cancellationToken).ConfigureAwait(false);
        foreach (var silo in view.Silos)
        {
            if (string.Equals(silo.Host, _options.Host, StringComparison.Ordinal))
            {
                await _grains.GetGrain<IWorkerGrain>(silo.Name).RecordAccessAsync([.. keys]).ConfigureAwait(false);
            }
        }
    }

    public void Dispose() => _dataPort.Dispose();

    [LoggerMessage(Level = LogLevel.Information, Message = "{Path}: block {Index} from {Endpoint} failed ({Reason}); retrying on the current home")]
    private static partial void LogRetry(ILogger logger, string path, int index, string endpoint, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cannot read tier folder {Root}: reading its blocks through the data port")]
    private static partial void LogShortCircuitDenied(ILogger logger, string root);
}

/// <summary>
/// Bytes of a file that lie in one block file on this host, already checked against their checksums by this process:
/// <paramref name="Length"/> bytes at <paramref name="Offset"/> of the file at <paramref name="Path"/>. A reader may
/// hand them on without reading them itself (the FUSE mount splices them to the kernel).
/// </summary>
public readonly record struct LocalSpan(string Path, long Offset, int Length);

/// <summary>What a block read returned, and whether the block had to be filled from under-storage first.</summary>
internal readonly record struct BlockRead(FsResult<int> Result, bool Cold)
{
    public static implicit operator BlockRead(FsResult<int> result) => new(result, false);
}

/// <summary>A block file on this host that this process has read: its name, header and the chunks already checked.</summary>
internal sealed class LocalBlock(string path, BlockHeader header)
{
    public string Path { get; } = path;

    public BlockHeader Header { get; } = header;

    public VerifiedChunks Checked { get; } = new(header.DataLength);
}
