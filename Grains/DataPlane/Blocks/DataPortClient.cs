using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;
using GrainFs.DataPlane.Security;

namespace GrainFs.DataPlane.Blocks;

/// <summary>The outcome of a data-port read.</summary>
/// <param name="Status">What the worker said.</param>
/// <param name="Read">Bytes written into the caller's buffer (Ok).</param>
/// <param name="Source">Where they came from.</param>
/// <param name="Message">The worker's message (Error, BadRequest).</param>
public readonly record struct DataPortResult(DataPortStatus Status, int Read, DataSource Source, string? Message);

/// <summary>
/// Reads block bytes from workers' data ports straight into the caller's buffer, over pooled connections
/// (one request at a time per connection, a pool per endpoint). A connection that fails is dropped; the
/// exception (<see cref="IOException"/> or <see cref="SocketException"/>) tells the caller the worker is gone.
/// </summary>
public sealed class DataPortClient : IDisposable
{
    private readonly ConcurrentDictionary<string, ConcurrentBag<Connection>> _pools = new(StringComparer.Ordinal);
    private readonly int _maxIdlePerEndpoint;
    private readonly ClusterTrust? _trust;

    /// <summary>
    /// A client keeping up to <paramref name="maxIdlePerEndpoint"/> idle connections per worker. With
    /// <paramref name="trust"/> every connection starts with a mutual TLS 1.3 handshake (this node presents its
    /// certificate and accepts only a silo of its cluster) and then carries sealed frames (<see cref="SealedStream"/>);
    /// without, plain TCP (only to measure what the trust model costs).
    /// </summary>
    public DataPortClient(ClusterTrust? trust, int maxIdlePerEndpoint = 16)
    {
        _trust = trust;
        _maxIdlePerEndpoint = maxIdlePerEndpoint;
    }

    /// <summary>Reads <c>destination.Length</c> bytes of a block at <paramref name="offset"/> from the worker at <paramref name="endpoint"/> ("ip:port").</summary>
    public ValueTask<DataPortResult> ReadAsync(string endpoint, BlockKey key, long offset, Memory<byte> destination, bool waitForFill, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        ReadAsync(endpoint, key, offset, destination, waitForFill ? DataPortProtocol.FlagWaitForFill : (ushort)0, timeout, cancellationToken);

    /// <summary>
    /// Waits until the worker at <paramref name="endpoint"/> holds block <paramref name="key"/> in full (a fill in progress
    /// completed), sending no bytes: Ok (its tier in <see cref="DataPortResult.Source"/>), Miss when it neither holds nor
    /// fills it, Error with the fill's failure. For a reader on the worker's host, which then reads the block file itself.
    /// </summary>
    public ValueTask<DataPortResult> AwaitHeldAsync(string endpoint, BlockKey key, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        ReadAsync(endpoint, key, 0, Memory<byte>.Empty, DataPortProtocol.FlagAwaitHeld, timeout, cancellationToken);

    /// <summary>
    /// As <see cref="AwaitHeldAsync"/> (<paramref name="awaitHeld"/>) or a read of a block being filled, sending the block's
    /// <paramref name="source"/> so that the worker starts the fill itself when it neither holds nor fills the block.
    /// A worker that could not start it answers <see cref="DataPortStatus.NotFilled"/> with the reason.
    /// </summary>
    public ValueTask<DataPortResult> FillAsync(string endpoint, BlockKey key, FillSource source, long offset, Memory<byte> destination, bool awaitHeld, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        ReadAsync(endpoint, key, offset, awaitHeld ? Memory<byte>.Empty : destination, awaitHeld ? DataPortProtocol.FlagAwaitHeld : DataPortProtocol.FlagWaitForFill, timeout, cancellationToken, source);

    /// <summary>
    /// Has the worker fill a block ahead of a reader (<see cref="DataPortProtocol.FlagPrefetch"/>) and answers once it is
    /// held, with no bytes: Ok, NotFilled with the reason, or Error when the fill failed.
    /// </summary>
    public ValueTask<DataPortResult> PrefetchAsync(string endpoint, BlockKey key, FillSource source, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        ReadAsync(endpoint, key, 0, Memory<byte>.Empty, DataPortProtocol.FlagAwaitHeld | DataPortProtocol.FlagPrefetch, timeout, cancellationToken, source);

    private async ValueTask<DataPortResult> ReadAsync(string endpoint, BlockKey key, long offset, Memory<byte> destination, ushort flags, TimeSpan timeout, CancellationToken cancellationToken, FillSource? source = null)
    {
        var connection = await RentAsync(endpoint, cancellationToken).ConfigureAwait(false);
        try
        {
            var result = await connection.ReadAsync(key, offset, destination, flags, timeout, cancellationToken, source).ConfigureAwait(false);
            connection = Return(endpoint, connection);
            return result;
        }
        finally
        {
            connection?.Dispose();
        }
    }

    /// <summary>An idle pooled connection to <paramref name="endpoint"/>, or a new one.</summary>
    private async ValueTask<Connection> RentAsync(string endpoint, CancellationToken cancellationToken) =>
        _pools.GetOrAdd(endpoint, static _ => []).TryTake(out var idle) ? idle : await Connection.OpenAsync(endpoint, _trust, cancellationToken).ConfigureAwait(false);

    /// <summary>Puts a connection that answered back in the pool; returns it when the pool is full (the caller disposes it), else null.</summary>
    private Connection? Return(string endpoint, Connection connection)
    {
        var pool = _pools.GetOrAdd(endpoint, static _ => []);
        if (pool.Count >= _maxIdlePerEndpoint)
        {
            return connection;
        }

        pool.Add(connection);
        return null;
    }

    /// <summary>
    /// Sends a written block (all of <paramref name="data"/>) to the worker at <paramref name="endpoint"/> with the write
    /// <paramref name="capability"/> of its mount (empty without the trust model); the answer comes once the block is
    /// synced on its write tier: Ok, NoSpace, Denied or Error with the worker's message.
    /// </summary>
    public async ValueTask<DataPortResult> WriteAsync(string endpoint, BlockKey key, ReadOnlyMemory<byte> data, ReadOnlyMemory<byte> capability, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var connection = await RentAsync(endpoint, cancellationToken).ConfigureAwait(false);
        try
        {
            var result = await connection.WriteAsync(key, data, capability, timeout, cancellationToken).ConfigureAwait(false);
            // A refused write closes the connection on the worker's side.
            connection = result.Status == DataPortStatus.Denied ? connection : Return(endpoint, connection);
            return result;
        }
        finally
        {
            connection?.Dispose();
        }
    }

    /// <summary>Drops the idle connections to a worker (after it failed).</summary>
    public void Forget(string endpoint)
    {
        if (_pools.TryRemove(endpoint, out var pool))
        {
            while (pool.TryTake(out var connection))
            {
                connection.Dispose();
            }
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var endpoint in _pools.Keys)
        {
            Forget(endpoint);
        }
    }

    private sealed class Connection : IDisposable
    {
        private readonly Stream _stream;
        private readonly byte[] _request = new byte[DataPortProtocol.RequestSize];
        private readonly byte[] _reply = new byte[DataPortProtocol.ReplyHeaderSize];
        private CancellationTokenSource _deadline = new();

        private Connection(Stream stream)
        {
            _stream = stream;
        }

        public static async ValueTask<Connection> OpenAsync(string endpoint, ClusterTrust? trust, CancellationToken cancellationToken)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveBufferSize = 4 << 20, SendBufferSize = 4 << 20 };
            DataPortProtocol.KeepAlive(socket);
            Stream? stream = null;
            try
            {
                using var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                connectTimeout.CancelAfter(TimeSpan.FromSeconds(5));
                await socket.ConnectAsync(IPEndPoint.Parse(endpoint), connectTimeout.Token).ConfigureAwait(false);
                stream = new NetworkStream(socket, ownsSocket: true);
                if (trust is not null)
                {
                    string? refused = null;
                    var transport = stream;
                    var tls = new SslStream(transport, leaveInnerStreamOpen: true);
                    stream = tls;
                    try
                    {
                        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
                        {
                            TargetHost = "grainfs-data-port",
                            EnabledSslProtocols = SslProtocols.Tls13,
                            CertificateRevocationCheckMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
                            LocalCertificateSelectionCallback = (_, _, _, _, _) => trust.Certificate,
                            RemoteCertificateValidationCallback = trust.Callback(Accepts.Silos, reason => refused = reason),
                        }, connectTimeout.Token).ConfigureAwait(false);
                    }
                    catch (AuthenticationException e)
                    {
                        transport.Dispose();
                        throw new IOException($"data port {endpoint} refused: {refused ?? e.Message}", e);
                    }

                    try
                    {
                        stream = await SealedStream.EstablishAsync(tls, transport, isClient: true, connectTimeout.Token).ConfigureAwait(false);
                    }
                    catch
                    {
                        transport.Dispose();
                        throw;
                    }
                }

                return new Connection(stream);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                Close(stream, socket);
                throw new IOException($"data port {endpoint} did not accept a connection within 5 s");
            }
            catch
            {
                Close(stream, socket);
                throw;
            }
        }

        private static void Close(Stream? stream, Socket socket)
        {
            if (stream is not null)
            {
                stream.Dispose();
            }
            else
            {
                socket.Dispose();
            }
        }

        public async ValueTask<DataPortResult> ReadAsync(BlockKey key, long offset, Memory<byte> destination, ushort flags, TimeSpan timeout, CancellationToken cancellationToken, FillSource? fillSource = null)
        {
            if (!_deadline.TryReset())
            {
                _deadline.Dispose();
                _deadline = new CancellationTokenSource();
            }

            _deadline.CancelAfter(timeout);
            using var link = cancellationToken.CanBeCanceled ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _deadline.Token) : null;
            var token = link?.Token ?? _deadline.Token;
            try
            {
                var length = Math.Min(destination.Length, DataPortProtocol.MaxLength);
                if (fillSource is { } fill)
                {
                    await _stream.WriteAsync(DataPortProtocol.RequestWithSource(key, offset, length, flags, fill), token).ConfigureAwait(false);
                }
                else
                {
                    DataPortProtocol.WriteRequest(_request, key, offset, length, flags);
                    await _stream.WriteAsync(_request, token).ConfigureAwait(false);
                }
                await ReceiveExactlyAsync(_reply, token).ConfigureAwait(false);
                var (status, source, payload) = DataPortProtocol.ReadReplyHeader(_reply);
                if (status == DataPortStatus.Ok)
                {
                    if (payload > length)
                    {
                        throw new InvalidDataException($"the worker sent {payload} bytes for a {length}-byte request");
                    }

                    await ReceiveExactlyAsync(destination[..payload], token).ConfigureAwait(false);
                    return new DataPortResult(status, payload, source, null);
                }

                string? message = null;
                if (payload > 0)
                {
                    var text = new byte[payload];
                    await ReceiveExactlyAsync(text, token).ConfigureAwait(false);
                    message = Encoding.UTF8.GetString(text);
                }

                return new DataPortResult(status, 0, source, message);
            }
            catch (OperationCanceledException) when (_deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"the data port did not answer within {timeout.TotalSeconds:0.#} s");
            }
        }

        public async ValueTask<DataPortResult> WriteAsync(BlockKey key, ReadOnlyMemory<byte> data, ReadOnlyMemory<byte> capability, TimeSpan timeout, CancellationToken cancellationToken)
        {
            if (data.Length > DataPortProtocol.MaxLength)
            {
                throw new ArgumentOutOfRangeException(nameof(data), data.Length, $"a written block holds at most {DataPortProtocol.MaxLength} bytes");
            }

            if (!_deadline.TryReset())
            {
                _deadline.Dispose();
                _deadline = new CancellationTokenSource();
            }

            _deadline.CancelAfter(timeout);
            using var link = cancellationToken.CanBeCanceled ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _deadline.Token) : null;
            var token = link?.Token ?? _deadline.Token;
            try
            {
                DataPortProtocol.WriteRequest(_request, key, 0, data.Length, capability.IsEmpty ? (ushort)0 : DataPortProtocol.FlagCapability, DataPortProtocol.OpWrite);
                await _stream.WriteAsync(_request, token).ConfigureAwait(false);
                if (!capability.IsEmpty)
                {
                    await _stream.WriteAsync(capability, token).ConfigureAwait(false);
                }

                await _stream.WriteAsync(data, token).ConfigureAwait(false);

                await ReceiveExactlyAsync(_reply, token).ConfigureAwait(false);
                var (status, source, payload) = DataPortProtocol.ReadReplyHeader(_reply);
                string? message = null;
                if (payload > 0)
                {
                    var text = new byte[payload];
                    await ReceiveExactlyAsync(text, token).ConfigureAwait(false);
                    message = Encoding.UTF8.GetString(text);
                }

                return new DataPortResult(status, 0, source, message);
            }
            catch (OperationCanceledException) when (_deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"the data port did not store the block within {timeout.TotalSeconds:0.#} s");
            }
        }

        private async ValueTask ReceiveExactlyAsync(Memory<byte> buffer, CancellationToken cancellationToken)
        {
            while (!buffer.IsEmpty)
            {
                var read = await _stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    throw new IOException("the data port closed the connection");
                }

                buffer = buffer[read..];
            }
        }

        public void Dispose()
        {
            _stream.Dispose();
            _deadline.Dispose();
        }
    }
}
