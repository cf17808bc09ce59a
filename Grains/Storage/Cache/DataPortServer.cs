using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;
using GrainFs.DataPlane;
using GrainFs.DataPlane.Blocks;
using GrainFs.DataPlane.Security;
using Microsoft.Extensions.Logging;

namespace GrainFs.Storage.Cache;

/// <summary>Bounds of a data port: connections at once and how long one may sit idle between requests.</summary>
public sealed class DataPortLimits
{
    /// <summary>Default <see cref="MaxConnections"/>.</summary>
    public const int DEFAULT_MAX_CONNECTIONS = 1024;

    /// <summary>Default <see cref="IdleTimeout"/>.</summary>
    public static readonly TimeSpan DEFAULT_IDLE_TIMEOUT = TimeSpan.FromMinutes(5);

    /// <summary>Connections served at once; more are closed at accept.</summary>
    public int MaxConnections { get; init; } = DEFAULT_MAX_CONNECTIONS;

    /// <summary>How long a connection may wait between requests before it is closed.</summary>
    public TimeSpan IdleTimeout { get; init; } = DEFAULT_IDLE_TIMEOUT;
}

/// <summary>
/// A silo's data port: serves block bytes from the tier store over TCP (see <see cref="DataPortProtocol"/>).
/// Bytes are read into one pooled buffer behind the reply header and sent with one call; every chunk a read
/// touches is checked against its checksum, and a block that fails is discarded and answered Corrupt so the
/// client refills it. A read of a block being filled waits for the bytes it asked for (first reader streaming).
/// </summary>
public sealed partial class DataPortServer : IAsyncDisposable
{
    private static readonly TimeSpan FillWait = TimeSpan.FromSeconds(120);
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);
    private readonly TcpListener _listener;
    private readonly TierStore _store;
    private readonly ILogger _logger;
    private readonly ClusterTrust? _trust;
    private readonly SessionTokens? _tokens;
    private readonly DataPortLimits _limits;
    private readonly Func<BlockKey, FillSource, ValueTask<string?>>? _startFill;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _connections = [];
    private int _open;
    private Task? _accept;

    /// <summary>
    /// Serves on a listener bound with <see cref="Bind"/>. With <paramref name="trust"/> every connection starts with a
    /// mutual TLS 1.3 handshake, must present a certificate of the cluster, and then carries sealed frames
    /// (<see cref="SealedStream"/>); without, plain TCP (only to measure what the trust model costs).
    /// </summary>
    public DataPortServer(TcpListener listener, TierStore store, ILogger logger, ClusterTrust? trust = null, DataPortLimits? limits = null)
        : this(listener, store, logger, trust, limits, startFill: null)
    {
    }

    /// <summary>
    /// As the other constructor, taking block sources (<see cref="DataPortProtocol.FlagSource"/>): <paramref name="startFill"/>
    /// starts (or joins) the fill of a block from its source and returns null, or why it could not.
    /// </summary>
    public DataPortServer(TcpListener listener, TierStore store, ILogger logger, ClusterTrust? trust, DataPortLimits? limits, Func<BlockKey, FillSource, ValueTask<string?>>? startFill)
    {
        _startFill = startFill;
        _store = store;
        _logger = logger;
        _listener = listener;
        _trust = trust;
        _tokens = trust is null ? null : new SessionTokens(() => trust.ClusterKeys);
        _limits = limits ?? new DataPortLimits();
        Endpoint = (IPEndPoint)_listener.LocalEndpoint;
    }

    /// <summary>Binds a port now (0 picks a free one), so its endpoint can be published before the silo starts.
    /// Throws <see cref="SocketException"/> when the port is taken.</summary>
    public static TcpListener Bind(IPAddress address, int port)
    {
        var listener = new TcpListener(address, port);
        listener.Start(512);
        return listener;
    }

    /// <summary>The bound endpoint.</summary>
    public IPEndPoint Endpoint { get; }

    /// <summary>Starts accepting connections.</summary>
    public void Start() => _accept ??= Task.Run(AcceptAsync);

    private async Task AcceptAsync()
    {
        LogListening(_logger, Endpoint.ToString());
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            if (Interlocked.Increment(ref _open) > _limits.MaxConnections)
            {
                Interlocked.Decrement(ref _open);
                GrainFsMetrics.DataPortRefused.Add(1, new KeyValuePair<string, object?>("reason", "connection-cap"));
                LogRefused(_logger, socket.RemoteEndPoint?.ToString() ?? "?", $"over the cap of {_limits.MaxConnections} connections");
                socket.Dispose();
                continue;
            }

            socket.NoDelay = true;
            socket.SendBufferSize = 4 << 20;
            DataPortProtocol.KeepAlive(socket);
            var task = Task.Run(() => ServeAsync(socket));
            lock (_connections)
            {
                _connections.RemoveAll(t => t.IsCompleted);
                _connections.Add(task);
            }
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        var request = new byte[DataPortProtocol.RequestSize];
        var peer = socket.RemoteEndPoint?.ToString() ?? "?";
        var idle = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        Stream? stream = null;
        try
        {
            using (socket)
            {
                stream = await AuthenticateAsync(socket, peer).ConfigureAwait(false);
                if (stream is null)
                {
                    return;
                }

                while (!_stop.IsCancellationRequested)
                {
                    if (!await ReceiveRequestAsync(stream, request, ref idle).ConfigureAwait(false))
                    {
                        return;
                    }

                    var parsed = DataPortProtocol.ReadRequest(request, out var error);
                    if (parsed is null)
                    {
                        await SendMessageAsync(stream, DataPortStatus.BadRequest, error!).ConfigureAwait(false);
                        return;
                    }

                    var (key, offset, length, flags, op) = parsed.Value;
                    if (op == DataPortProtocol.OpWrite)
                    {
                        if (!await CheckCapabilityAsync(stream, flags, peer).ConfigureAwait(false))
                        {
                            return;
                        }

                        await HandleWriteAsync(stream, key, length).ConfigureAwait(false);
                        continue;
                    }

                    var filling = false;
                    if ((flags & DataPortProtocol.FlagSource) != 0)
                    {
                        var started = await StartFillAsync(stream, request, key, prefetch: (flags & DataPortProtocol.FlagPrefetch) != 0).ConfigureAwait(false);
                        if (started is FillStart.Closed)
                        {
                            return;
                        }

                        if (started is FillStart.Refused)
                        {
                            continue;
                        }

                        filling = started is FillStart.Filling;
                    }

                    if ((flags & DataPortProtocol.FlagAwaitHeld) != 0)
                    {
                        await HandleAwaitHeldAsync(stream, key).ConfigureAwait(false);
                        continue;
                    }

                    await HandleReadAsync(stream, key, offset, length, filling).ConfigureAwait(false);
                }
            }
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            // The client went away, stayed idle too long or sent half a request, or the silo is stopping.
        }
        finally
        {
            if (stream is not null)
            {
                await stream.DisposeAsync().ConfigureAwait(false);
            }

            idle.Dispose();
            Interlocked.Decrement(ref _open);
        }
    }

    // A write must carry a capability of the cluster for a mount (its sender may write it): read and checked here, and a
    // write without a valid one is answered Denied and the connection closed (its body is not read). Without the trust
    // model there is nothing to check.
    private async Task<bool> CheckCapabilityAsync(Stream stream, ushort flags, string peer)
    {
        string? reason = null;
        if ((flags & DataPortProtocol.FlagCapability) != 0)
        {
            var capability = ArrayPool<byte>.Shared.Rent(SessionTokens.WriteCapabilitySize);
            try
            {
                await ReceiveExactlyAsync(stream, capability.AsMemory(0, SessionTokens.WriteCapabilitySize), _stop.Token).ConfigureAwait(false);
                _tokens?.VerifyWriteCapability(capability.AsSpan(0, SessionTokens.WriteCapabilitySize), out reason);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(capability);
            }
        }
        else if (_tokens is not null)
        {
            reason = "a write without a capability (writers of a mount get one from the cluster)";
        }

        if (reason is null)
        {
            return true;
        }

        GrainFsMetrics.DataPortRefused.Add(1, new KeyValuePair<string, object?>("reason", "write-capability"));
        LogRefused(_logger, peer, reason);
        await SendMessageAsync(stream, DataPortStatus.Denied, "EACCES: " + reason).ConfigureAwait(false);
        return false;
    }

    // The TLS handshake (bounded in time); null when the peer is refused or gives up.
    private async Task<Stream?> AuthenticateAsync(Socket socket, string peer)
    {
        var plain = new NetworkStream(socket, ownsSocket: false);
        if (_trust is null)
        {
            return plain;
        }

        string? refused = null;
        var tls = new SslStream(plain, leaveInnerStreamOpen: true);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        deadline.CancelAfter(HandshakeTimeout);
        try
        {
            await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
            {
                ServerCertificateSelectionCallback = (_, _) => _trust.Certificate,
                ClientCertificateRequired = true,
                EnabledSslProtocols = SslProtocols.Tls13,
                CertificateRevocationCheckMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
                RemoteCertificateValidationCallback = _trust.Callback(Accepts.Anyone, reason => refused = reason),
            }, deadline.Token).ConfigureAwait(false);
            return await SealedStream.EstablishAsync(tls, plain, isClient: false, deadline.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException)
        {
            await tls.DisposeAsync().ConfigureAwait(false);
            await plain.DisposeAsync().ConfigureAwait(false);
            if (!_stop.IsCancellationRequested)
            {
                GrainFsMetrics.DataPortRefused.Add(1, new KeyValuePair<string, object?>("reason", "tls"));
                LogRefused(_logger, peer, refused ?? (e is OperationCanceledException ? "no TLS handshake within 10 s" : e.Message));
            }

            return null;
        }
    }

    // The next request; false when the peer closed between requests. An idle connection is closed after the idle timeout;
    // the connection's one timer is re-armed per request (a new one only after it fired).
    private Task<bool> ReceiveRequestAsync(Stream stream, Memory<byte> buffer, ref CancellationTokenSource idle)
    {
        if (!idle.TryReset())
        {
            idle.Dispose();
            idle = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        }

        idle.CancelAfter(_limits.IdleTimeout);
        return ReceiveExactlyAsync(stream, buffer, idle.Token);
    }

    // A read that carries its block's source: the fill starts here unless the block is held or being filled. Held or
    // Filling to go on with the read; Refused when answered NotFilled; Closed when the connection must close (a bad source).
    // A prefetch (an announced read order's fill) is marked as one once this request has started it.
    private async Task<FillStart> StartFillAsync(Stream stream, byte[] request, BlockKey key, bool prefetch)
    {
        var length = DataPortProtocol.SourceLength(request);
        if (length < 0)
        {
            await SendMessageAsync(stream, DataPortStatus.BadRequest, $"a block source of at most {DataPortProtocol.MaxSourceLength} bytes").ConfigureAwait(false);
            return FillStart.Closed;
        }

        var bytes = ArrayPool<byte>.Shared.Rent(length);
        FillSource source;
        string? error;
        try
        {
            await ReceiveExactlyAsync(stream, bytes.AsMemory(0, length), _stop.Token).ConfigureAwait(false);
            if (!FillSource.TryDecode(bytes.AsSpan(0, length), out source, out error))
            {
                await SendMessageAsync(stream, DataPortStatus.BadRequest, error!).ConfigureAwait(false);
                return FillStart.Closed;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
        }

        if (_store.TryPeek(key, out var held))
        {
            if (await _store.DropIfLostAsync(held).ConfigureAwait(false) is false)
            {
                return FillStart.Held;
            }

            // Its file was removed or cut short behind the worker's back: dropped, and filled again below.
        }

        if (_store.FindFill(key) is not null)
        {
            return FillStart.Filling;
        }

        error = _startFill is null ? "this worker takes no block sources" : await _startFill(key, source).ConfigureAwait(false);
        if (error is null)
        {
            if (prefetch)
            {
                _store.Index.NotePrefetch(key);
            }

            return FillStart.Filling;
        }

        await SendMessageAsync(stream, DataPortStatus.NotFilled, error).ConfigureAwait(false);
        return FillStart.Refused;
    }

    // A same-host reader waits here for the block to be held, then reads its file itself: no bytes cross the connection.
    private async Task HandleAwaitHeldAsync(Stream socket, BlockKey key)
    {
        if (_store.FindFill(key) is { } fill)
        {
            try
            {
                await fill.Completion.WaitAsync(FillWait, _stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                await SendMessageAsync(socket, DataPortStatus.Error, e is TimeoutException ? "the fill did not complete in time" : e.Message).ConfigureAwait(false);
                return;
            }
        }

        if (_store.TryPeek(key, out var block) && await _store.DropIfLostAsync(block).ConfigureAwait(false) is false)
        {
            await SendStatusAsync(socket, DataPortStatus.Ok, block.Tier.Kind.Source()).ConfigureAwait(false);
            return;
        }

        await SendStatusAsync(socket, DataPortStatus.Miss).ConfigureAwait(false);
    }

    // filling: this request started the block's fill or found it in progress; its bytes are reported as coming from
    // under-storage even when the fill completed before they were read (a small block often does), so that the reader
    // knows it met a cold block (sequential readers read ahead on cold blocks only).
    private async Task HandleReadAsync(Stream socket, BlockKey key, long offset, int length, bool filling)
    {
        var started = Stopwatch.GetTimestamp();
        var reported = filling ? DataSource.UnderStorage : (DataSource?)null;
        if (_store.TryGet(key, out var block))
        {
            var served = await ServeCachedAsync(socket, block, offset, length, reported).ConfigureAwait(false);
            if (served)
            {
                Record(block.Tier.Name, started);
                return;
            }
        }

        // A fill in progress is no miss: wait for the bytes asked for, whatever the flag says, so that a second
        // request for the same cold block (the kernel splitting a read, a concurrent reader) needs no grain call.
        var fill = _store.FindFill(key);
        if (fill is null)
        {
            // Held a moment ago but gone (evicted, freed) or never held: the client asks the block's grain to fill it.
            if (_store.TryPeek(key, out var again) && await ServeCachedAsync(socket, again, offset, length, reported).ConfigureAwait(false))
            {
                return;
            }

            await SendStatusAsync(socket, DataPortStatus.Miss).ConfigureAwait(false);
            return;
        }

        long available;
        try
        {
            available = await fill.WaitForAsync(offset + length, _stop.Token).AsTask().WaitAsync(FillWait, _stop.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            await SendMessageAsync(socket, DataPortStatus.Error, e is TimeoutException ? "the fill did not progress in time" : e.Message).ConfigureAwait(false);
            return;
        }

        if (fill.Completion.IsCompletedSuccessfully && _store.TryPeek(key, out var filled) && await ServeCachedAsync(socket, filled, offset, length, DataSource.UnderStorage).ConfigureAwait(false))
        {
            Record("under-storage", started);
            return;
        }

        var count = (int)Math.Max(0, Math.Min(length, available - offset));
        var buffer = ArrayPool<byte>.Shared.Rent(DataPortProtocol.ReplyHeaderSize + count);
        try
        {
            using (var handle = File.OpenHandle(fill.TempPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
            {
                var read = 0;
                while (read < count)
                {
                    var n = RandomAccess.Read(handle, buffer.AsSpan(DataPortProtocol.ReplyHeaderSize + read, count - read), BlockFile.HeaderLength(fill.Length) + offset + read);
                    if (n == 0)
                    {
                        break;
                    }

                    read += n;
                }

                if (read < count)
                {
                    // The fill started again on another tier (its first tier's disk failed) and the new file is not
                    // that far yet: the client asks again and follows the new file.
                    await SendStatusAsync(socket, DataPortStatus.Miss).ConfigureAwait(false);
                    return;
                }
            }

            DataPortProtocol.WriteReplyHeader(buffer, DataPortStatus.Ok, DataSource.UnderStorage, count);
            await SendReplyAsync(socket, buffer, count).ConfigureAwait(false);
            _store.RecordServed("under-storage", count);
            Record("under-storage", started);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            // The fill is renaming its file into place (or just did): once it completes, the block is held.
            try
            {
                await fill.Completion.WaitAsync(FillWait, _stop.Token).ConfigureAwait(false);
            }
            catch (Exception failed) when (failed is not OperationCanceledException)
            {
                await SendMessageAsync(socket, DataPortStatus.Error, failed.Message).ConfigureAwait(false);
                return;
            }

            if (_store.TryPeek(key, out var done) && await ServeCachedAsync(socket, done, offset, length, DataSource.UnderStorage).ConfigureAwait(false))
            {
                return;
            }

            await SendStatusAsync(socket, DataPortStatus.Miss).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Stores a written block whose <paramref name="length"/> bytes follow on the socket: streamed into a block file on the
    /// write tier, synced, then acknowledged. A block that finds no room is answered NoSpace once its bytes are drained,
    /// so the connection stays usable.
    /// </summary>
    private async Task HandleWriteAsync(Stream socket, BlockKey key, int length)
    {
        var started = Stopwatch.GetTimestamp();
        var body = new SocketBody(socket, length, _stop.Token);
        string? failure = null;
        var status = DataPortStatus.Ok;
        try
        {
            var fill = await _store.StartWriteAsync(key, length, _ => ValueTask.FromResult<Stream>(body)).ConfigureAwait(false);
            if (fill is not null)
            {
                await fill.Completion.ConfigureAwait(false);
            }
        }
        catch (TierFullException e)
        {
            status = DataPortStatus.NoSpace;
            failure = e.Message;
            GrainFsMetrics.WritesRefused.Add(1, new KeyValuePair<string, object?>("reason", "no-space"));
        }
        catch (IOException e) when (DiskErrors.IsFull(e) && body.Healthy)
        {
            // The write tier's disk is full although its accounting had room (another process filled it): the writer
            // gets ENOSPC, as from a local disk, not an I/O error.
            status = DataPortStatus.NoSpace;
            failure = $"storing block {key} failed: No space left on device ({e.Message})";
            GrainFsMetrics.WritesRefused.Add(1, new KeyValuePair<string, object?>("reason", "disk-full"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException && body.Healthy)
        {
            status = DataPortStatus.Error;
            failure = $"storing block {key} failed: {e.Message}";
        }

        if (!body.Healthy)
        {
            throw new IOException("the writer's connection failed inside a block");
        }

        await body.DrainAsync().ConfigureAwait(false);
        if (status == DataPortStatus.Ok)
        {
            await SendStatusAsync(socket, DataPortStatus.Ok).ConfigureAwait(false);
            GrainFsMetrics.BytesWritten.Add(length);
            GrainFsMetrics.DataPortLatency.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds, new KeyValuePair<string, object?>("source", "write"));
            return;
        }

        await SendMessageAsync(socket, status, failure!).ConfigureAwait(false);
    }

    /// <summary>The body of a write request: exactly its length of bytes from the socket, read as the block file is written.</summary>
    private sealed class SocketBody(Stream socket, int length, CancellationToken stop) : Stream
    {
        private readonly int _length = length;
        private int _left = length;

        /// <summary>False once the socket failed or closed inside the body (the connection is then unusable).</summary>
        public bool Healthy { get; private set; } = true;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => _length;

        public override long Position
        {
            get => _length - _left;
            set => throw new NotSupportedException();
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_left == 0 || buffer.IsEmpty)
            {
                return 0;
            }

            using var link = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, stop);
            int read;
            try
            {
                read = await socket.ReadAsync(buffer[..Math.Min(buffer.Length, _left)], link.Token).ConfigureAwait(false);
            }
            catch
            {
                Healthy = false;
                throw;
            }

            if (read == 0)
            {
                Healthy = false;
                throw new IOException("the writer closed the connection inside a block");
            }

            _left -= read;
            return read;
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        /// <summary>Reads and drops what the block file did not take (a refused or failed write).</summary>
        public async Task DrainAsync()
        {
            if (_left == 0)
            {
                return;
            }

            var scratch = ArrayPool<byte>.Shared.Rent(256 * 1024);
            try
            {
                while (_left > 0)
                {
                    await ReadAsync(scratch).ConfigureAwait(false);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(scratch);
            }
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>
    /// Serves a held block; false when its file is gone (the caller answers Miss). The reply names the block's tier as
    /// its source unless <paramref name="reported"/> says otherwise (a block whose fill this request waited on).
    /// </summary>
    private async Task<bool> ServeCachedAsync(Stream socket, CachedBlock block, long offset, int length, DataSource? reported = null)
    {
        var header = block.Header;
        var count = (int)Math.Max(0, Math.Min(length, header.DataLength - offset));
        var buffer = ArrayPool<byte>.Shared.Rent(DataPortProtocol.ReplyHeaderSize + count);
        try
        {
            int read;
            try
            {
                using var handle = File.OpenHandle(block.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                read = BlockFile.ReadVerified(handle, header, offset, buffer.AsSpan(DataPortProtocol.ReplyHeaderSize, count), verify: true);
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                // Gone: evicted or freed a moment ago, or removed behind the worker's back (then dropped from the index
                // here, so that the fill the client asks for next is not refused as already held).
                await _store.DropIfLostAsync(block).ConfigureAwait(false);
                return false;
            }
            catch (IOException e)
            {
                // The disk failed the read: not this connection's fault nor the silo's. The block is dropped and its tier
                // taken out of service; the client is told to refill it, as for a block that failed its checksum.
                await _store.DropUnreadableAsync(block, e).ConfigureAwait(false);
                await SendStatusAsync(socket, DataPortStatus.Corrupt).ConfigureAwait(false);
                return true;
            }

            if (read < 0)
            {
                await _store.DiscardAsync(block.Key).ConfigureAwait(false);
                await SendStatusAsync(socket, DataPortStatus.Corrupt).ConfigureAwait(false);
                return true;
            }

            DataPortProtocol.WriteReplyHeader(buffer, DataPortStatus.Ok, reported ?? block.Tier.Kind.Source(), read);
            await SendReplyAsync(socket, buffer, read).ConfigureAwait(false);
            _store.RecordServed(block.Tier.Name, read);
            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void Record(string source, long started)
    {
        var tag = new KeyValuePair<string, object?>("source", source);
        GrainFsMetrics.DataPortReads.Add(1, tag);
        GrainFsMetrics.DataPortLatency.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds, tag);
    }

    // A reply header and its payload, together in <paramref name="buffer"/>: one write, and on a sealed connection the
    // header in a frame of its own, so the client reads the payload's frames straight into its buffer.
    private ValueTask SendReplyAsync(Stream socket, byte[] buffer, int payload) => socket is SealedStream sealedStream
        ? sealedStream.WriteMessageAsync(buffer.AsMemory(0, DataPortProtocol.ReplyHeaderSize), buffer.AsMemory(DataPortProtocol.ReplyHeaderSize, payload), _stop.Token)
        : socket.WriteAsync(buffer.AsMemory(0, DataPortProtocol.ReplyHeaderSize + payload), _stop.Token);

    private async Task SendStatusAsync(Stream socket, DataPortStatus status, DataSource source = DataSource.Mem)
    {
        var header = new byte[DataPortProtocol.ReplyHeaderSize];
        DataPortProtocol.WriteReplyHeader(header, status, source, 0);
        await socket.WriteAsync(header, _stop.Token).ConfigureAwait(false);
    }

    private async Task SendMessageAsync(Stream socket, DataPortStatus status, string message)
    {
        var text = Encoding.UTF8.GetBytes(message);
        var reply = new byte[DataPortProtocol.ReplyHeaderSize + text.Length];
        DataPortProtocol.WriteReplyHeader(reply, status, DataSource.UnderStorage, text.Length);
        text.CopyTo(reply, DataPortProtocol.ReplyHeaderSize);
        await socket.WriteAsync(reply, _stop.Token).ConfigureAwait(false);
    }

    private static async Task<bool> ReceiveExactlyAsync(Stream stream, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var first = true;
        while (!buffer.IsEmpty)
        {
            var read = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                if (first)
                {
                    return false;
                }

                throw new IOException("connection closed inside a request");
            }

            first = false;
            buffer = buffer[read..];
        }

        return true;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        if (_accept is not null)
        {
            await _accept.ConfigureAwait(false);
        }

        Task[] open;
        lock (_connections)
        {
            open = [.. _connections];
        }

        await Task.WhenAll(open).ConfigureAwait(false);
        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Data port refused a connection from {Peer}: {Reason}")]
    private static partial void LogRefused(ILogger logger, string peer, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Data port listening on {Endpoint}")]
    private static partial void LogListening(ILogger logger, string endpoint);
}

/// <summary>What a read that carries its block's source found or did.</summary>
internal enum FillStart
{
    /// <summary>The block is held: the read is served from its tier.</summary>
    Held,

    /// <summary>This read started the block's fill or found one in progress: the read waits on it.</summary>
    Filling,

    /// <summary>The worker would not fill it (answered NotFilled); the connection goes on.</summary>
    Refused,

    /// <summary>The source was malformed (answered BadRequest); the connection closes.</summary>
    Closed,
}
