using System.Buffers;
using System.IO.Pipelines;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Connections;

namespace GrainFs.DataPlane.Security;

/// <summary>How a connection's handshake failed.</summary>
public enum HandshakeFailureKind
{
    /// <summary>This end refused the peer's certificate.</summary>
    PeerRefused,

    /// <summary>The peer ended the handshake: it refused this end's certificate (or speaks no TLS of this cluster).</summary>
    RefusedByPeer,

    /// <summary>Anything else: no handshake in time, a reset, bytes that are no frame.</summary>
    Failed,
}

/// <summary>A connection whose handshake failed, and why.</summary>
public sealed record HandshakeFailure(HandshakeFailureKind Kind, string Reason);

/// <summary>Where a sealed connection's credentials come from and whom it accepts.</summary>
/// <param name="Trust">This end's credentials and the cluster's CAs.</param>
/// <param name="Accepts">The identity kinds accepted at the other end.</param>
/// <param name="OnFailed">Told of every connection whose handshake failed, with why.</param>
public sealed record SealedConnectionOptions(ClusterTrust Trust, IdentityKind[] Accepts, Action<HandshakeFailure>? OnFailed = null)
{
    /// <summary>The default bound on a handshake.</summary>
    public static readonly TimeSpan DEFAULT_HANDSHAKE_TIMEOUT = TimeSpan.FromSeconds(10);

    /// <summary>How long a handshake may take before the connection is dropped.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = DEFAULT_HANDSHAKE_TIMEOUT;
}

/// <summary>
/// Connection middleware for the cluster's own connections (silo to silo, client to gateway): a mutual TLS 1.3
/// handshake with the cluster's certificates authenticates both ends, then the connection's bytes travel in
/// <see cref="FrameCipher"/> frames sealed straight from the sender's pipe into the socket's and opened straight into
/// the receiver's. A TLS stream per connection costs every small grain message a TLS record through the TLS library,
/// several buffer hops and async layers; these frames cost one AES-GCM call each way and batch whatever messages are
/// waiting. A handshake that fails or times out closes the connection before any message crosses, as TLS would.
/// </summary>
public static class SealedConnection
{
    /// <summary>The largest plaintext of one frame.</summary>
    public const int MaxFrame = 64 * 1024;

    private const string PROTOCOL = "grainfs-connection-v1";

    // The client's first frame, which tells the server the client holds the keys: until it arrives the server sends
    // nothing, so none of the server's frames can be read into the client's TLS stream with the server's key share.
    private static readonly byte[] Hello = "grainfs-hello-v1"u8.ToArray();

    // The pipes between the frames and the application. Continuations run inline: the frame pumps already run on the
    // thread pool (or on the application's writing thread), so a hop per message would only add wake-ups.
    private static readonly PipeOptions ApplicationPipe = new(readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline,
        pauseWriterThreshold: 1 << 20, resumeWriterThreshold: 1 << 19, minimumSegmentSize: 16 * 1024, useSynchronizationContext: false);

    /// <summary>Seals the connections this builder makes as their accepting end.</summary>
    public static IConnectionBuilder UseSealedServer(this IConnectionBuilder builder, SealedConnectionOptions options) =>
        Use(builder, options, isClient: false);

    /// <summary>Seals the connections this builder makes as their connecting end.</summary>
    public static IConnectionBuilder UseSealedClient(this IConnectionBuilder builder, SealedConnectionOptions options) =>
        Use(builder, options, isClient: true);

    private static IConnectionBuilder Use(IConnectionBuilder builder, SealedConnectionOptions options, bool isClient)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(options);
        return builder.Use(next => context => RunAsync(context, next, options, isClient));
    }

    private static async Task RunAsync(ConnectionContext context, ConnectionDelegate next, SealedConnectionOptions options, bool isClient)
    {
        var transport = context.Transport;
        var cipher = await HandshakeAsync(context, transport, options, isClient).ConfigureAwait(false);
        if (cipher is null)
        {
            return;
        }

        // The application's side: what it writes is sealed onto the transport, what arrives is opened for it to read.
        var incoming = new Pipe(ApplicationPipe);
        var outgoing = new Pipe(ApplicationPipe);
        var reading = OpenFramesAsync(context, transport.Input, incoming.Writer, cipher);
        var writing = SealFramesAsync(context, outgoing.Reader, transport.Output, cipher);
        context.Transport = new DuplexPipe(incoming.Reader, outgoing.Writer);
        try
        {
            await next(context).ConfigureAwait(false);
        }
        finally
        {
            context.Transport = transport;
            await outgoing.Writer.CompleteAsync().ConfigureAwait(false);
            await incoming.Reader.CompleteAsync().ConfigureAwait(false);
            transport.Input.CancelPendingRead();
            await Task.WhenAll(reading, writing).ConfigureAwait(false);
            await transport.Input.CompleteAsync().ConfigureAwait(false);
            await transport.Output.CompleteAsync().ConfigureAwait(false);
            cipher.Dispose();
        }
    }

    // The TLS handshake and the key agreement, bounded in time; null (the connection aborted) when either fails.
    private static async Task<FrameCipher?> HandshakeAsync(ConnectionContext context, IDuplexPipe transport, SealedConnectionOptions options, bool isClient)
    {
        var trust = options.Trust;
        string? refused = null;
        var authenticated = false;
        using var deadline = new CancellationTokenSource(options.HandshakeTimeout);
        var tls = new SslStream(new PipeStream(transport), leaveInnerStreamOpen: true);
        FrameCipher? cipher = null;
        try
        {
            if (isClient)
            {
                await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
                {
                    TargetHost = "grainfs",
                    EnabledSslProtocols = SslProtocols.Tls13,
                    CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                    LocalCertificateSelectionCallback = (_, _, _, _, _) => trust.Certificate,
                    RemoteCertificateValidationCallback = trust.Callback(options.Accepts, reason => refused = reason),
                }, deadline.Token).ConfigureAwait(false);
            }
            else
            {
                await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                {
                    ServerCertificateSelectionCallback = (_, _) => trust.Certificate,
                    ClientCertificateRequired = true,
                    EnabledSslProtocols = SslProtocols.Tls13,
                    CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                    RemoteCertificateValidationCallback = trust.Callback(options.Accepts, reason => refused = reason),
                }, deadline.Token).ConfigureAwait(false);
            }

            authenticated = true;
            cipher = await FrameCipher.AgreeAsync(tls, isClient, PROTOCOL, MaxFrame, deadline.Token).ConfigureAwait(false);
            if (isClient)
            {
                Write(transport.Output, cipher, new ReadOnlySequence<byte>(Hello));
                await transport.Output.FlushAsync(deadline.Token).ConfigureAwait(false);
            }
            else
            {
                await ReadHelloAsync(transport.Input, cipher, deadline.Token).ConfigureAwait(false);
            }

            return cipher;
        }
        catch (Exception e) when (e is AuthenticationException or IOException or InvalidDataException or OperationCanceledException or ObjectDisposedException)
        {
            cipher?.Dispose();
            // In TLS 1.3 a client's certificate is judged after the client has finished its handshake: a refused client
            // learns of it as the connection closing before the key agreement.
            var failure = refused is not null ? new HandshakeFailure(HandshakeFailureKind.PeerRefused, refused)
                : e is OperationCanceledException ? new HandshakeFailure(HandshakeFailureKind.Failed, $"no handshake within {options.HandshakeTimeout.TotalSeconds:F0} s")
                : e is AuthenticationException || (e is IOException && (authenticated || !isClient)) ? new HandshakeFailure(HandshakeFailureKind.RefusedByPeer, $"TLS authentication failed ({e.Message})")
                : new HandshakeFailure(HandshakeFailureKind.Failed, e.Message);
            options.OnFailed?.Invoke(failure);
            context.Abort(new ConnectionAbortedException("the connection's handshake failed: " + failure.Reason, e));
            await transport.Input.CompleteAsync().ConfigureAwait(false);
            await transport.Output.CompleteAsync().ConfigureAwait(false);
            return null;
        }
        finally
        {
            await tls.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static async Task ReadHelloAsync(PipeReader input, FrameCipher cipher, CancellationToken cancellationToken)
    {
        var hello = new ArrayBufferWriter<byte>(Hello.Length);
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (TryOpen(ref buffer, cipher, hello))
            {
                // What came after the hello (the client's first messages) is left unexamined, for the frame pump.
                input.AdvanceTo(buffer.Start);
                if (!hello.WrittenSpan.SequenceEqual(Hello))
                {
                    throw new InvalidDataException("the client's first frame is not its hello");
                }

                return;
            }

            input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted || result.IsCanceled)
            {
                throw new IOException("the connection closed before the client's hello");
            }
        }
    }

    // Opens frames from the transport into the application's pipe until either side ends; a frame that fails to open
    // aborts the connection.
    private static async Task OpenFramesAsync(ConnectionContext context, PipeReader input, PipeWriter application, FrameCipher cipher)
    {
        Exception? error = null;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync().ConfigureAwait(false);
                if (result.IsCanceled)
                {
                    break;
                }

                var buffer = result.Buffer;
                var any = false;
                while (TryOpen(ref buffer, cipher, application))
                {
                    any = true;
                }

                input.AdvanceTo(buffer.Start, buffer.End);
                if (any && (await application.FlushAsync().ConfigureAwait(false)).IsCompleted)
                {
                    break;
                }

                if (result.IsCompleted)
                {
                    if (!buffer.IsEmpty)
                    {
                        throw new IOException("the connection closed inside a frame");
                    }

                    break;
                }
            }
        }
        catch (Exception e)
        {
            error = e;
            if (e is InvalidDataException or IOException)
            {
                context.Abort(new ConnectionAbortedException("a frame could not be opened", e));
            }
        }
        finally
        {
            await application.CompleteAsync(error).ConfigureAwait(false);
        }
    }

    // Seals what the application writes onto the transport until either side ends.
    private static async Task SealFramesAsync(ConnectionContext context, PipeReader application, PipeWriter output, FrameCipher cipher)
    {
        Exception? error = null;
        try
        {
            while (true)
            {
                var result = await application.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                if (!buffer.IsEmpty)
                {
                    Write(output, cipher, buffer);
                }

                application.AdvanceTo(buffer.End);
                if ((!buffer.IsEmpty && (await output.FlushAsync().ConfigureAwait(false)).IsCompleted) || result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception e)
        {
            error = e;
            context.Abort(new ConnectionAbortedException("the connection could not be written", e));
        }
        finally
        {
            await application.CompleteAsync(error).ConfigureAwait(false);
        }
    }

    // Seals `data` into frames written to `output` (not flushed).
    private static void Write(PipeWriter output, FrameCipher cipher, ReadOnlySequence<byte> data)
    {
        while (!data.IsEmpty)
        {
            var length = (int)Math.Min(data.Length, MaxFrame);
            var size = FrameCipher.FrameSize(length);
            var frame = output.GetSpan(size);
            var chunk = data.Slice(0, length);
            if (chunk.IsSingleSegment)
            {
                cipher.Seal(chunk.FirstSpan, frame);
            }
            else
            {
                var scratch = ArrayPool<byte>.Shared.Rent(length);
                chunk.CopyTo(scratch);
                cipher.Seal(scratch.AsSpan(0, length), frame);
                ArrayPool<byte>.Shared.Return(scratch);
            }

            output.Advance(size);
            data = data.Slice(length);
        }
    }

    // Opens the first frame of `buffer` into `into` when the whole frame is there, moving `buffer` past it.
    private static bool TryOpen(ref ReadOnlySequence<byte> buffer, FrameCipher cipher, IBufferWriter<byte> into)
    {
        if (buffer.Length < FrameCipher.LengthSize)
        {
            return false;
        }

        Span<byte> lengthField = stackalloc byte[FrameCipher.LengthSize];
        buffer.Slice(0, FrameCipher.LengthSize).CopyTo(lengthField);
        var length = cipher.ReadLength(lengthField);
        var size = FrameCipher.FrameSize(length);
        if (buffer.Length < size)
        {
            return false;
        }

        var body = buffer.Slice(FrameCipher.LengthSize, length + FrameCipher.TagSize);
        var plaintext = into.GetSpan(length)[..length];
        if (body.IsSingleSegment)
        {
            cipher.Open(lengthField, body.FirstSpan, plaintext);
        }
        else
        {
            var scratch = ArrayPool<byte>.Shared.Rent(length + FrameCipher.TagSize);
            try
            {
                body.CopyTo(scratch);
                cipher.Open(lengthField, scratch.AsSpan(0, length + FrameCipher.TagSize), plaintext);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(scratch);
            }
        }

        into.Advance(length);
        buffer = buffer.Slice(size);
        return true;
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input => input;

        public PipeWriter Output => output;
    }

    // A stream over a duplex pipe for the TLS handshake: reads take what has arrived (at most what is asked), writes
    // are flushed at once.
    private sealed class PipeStream(IDuplexPipe pipe) : DuplexStream
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            while (true)
            {
                var result = await pipe.Input.ReadAsync(cancellationToken).ConfigureAwait(false);
                var data = result.Buffer;
                if (!data.IsEmpty)
                {
                    var count = (int)Math.Min(data.Length, buffer.Length);
                    data.Slice(0, count).CopyTo(buffer.Span);
                    pipe.Input.AdvanceTo(data.GetPosition(count));
                    return count;
                }

                pipe.Input.AdvanceTo(data.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    return 0;
                }
            }
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await pipe.Output.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
        }

        public override Task FlushAsync(CancellationToken cancellationToken) => pipe.Output.FlushAsync(cancellationToken).AsTask();
    }
}
