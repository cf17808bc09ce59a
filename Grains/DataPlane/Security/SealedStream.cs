using System.Buffers;
using System.Buffers.Binary;
using System.Net.Security;
using System.Security.Cryptography;

namespace GrainFs.DataPlane.Security;

/// <summary>
/// The data port's record layer once its TLS 1.3 handshake is done. TLS authenticates both ends (mutual certificates of
/// the cluster) and agrees on a forward-secret channel; through that channel each end sends 32 random bytes, and each
/// direction's AES-256-GCM key is derived from both with HKDF-SHA256. From then on every byte travels in sealed frames
/// straight on the TCP connection: a 4-byte little-endian length (at most <see cref="MaxFrame"/>, bound in as associated
/// data), the ciphertext, a 16-byte tag; the nonce is the frame's sequence number in its direction, so a frame dropped,
/// replayed, reordered or altered fails to open and closes the connection. This is TLS's own record construction with
/// 256 KiB records instead of 16 KiB, decrypted straight into the reader's buffer: the bulk bytes of the data port pay
/// one AES-GCM pass per side and no extra copy. After <see cref="MaxFramesPerKey"/> frames in one direction (1 TiB at
/// full frames) the stream refuses to go on and the caller opens a new connection, which gets new keys.
/// </summary>
public sealed class SealedStream : Stream
{
    /// <summary>The largest plaintext of one frame.</summary>
    public const int MaxFrame = 256 * 1024;

    /// <summary>Frames one direction's key seals before the connection must be replaced (well inside AES-GCM's limits).</summary>
    public const long MaxFramesPerKey = 1L << 22;

    private const int KEY_SIZE = 32;
    private const int LENGTH_SIZE = 4;
    private const int TAG_SIZE = 16;
    private const int NONCE_SIZE = 12;

    private static readonly byte[] Salt = "grainfs-data-port-v1"u8.ToArray();

    private readonly Stream _transport;
    private readonly SslStream _handshake;
    private readonly AesGcm _seal;
    private readonly AesGcm _open;
    private readonly byte[] _lengthIn = new byte[LENGTH_SIZE];
    private readonly byte[] _nonceOut = new byte[NONCE_SIZE];
    private readonly byte[] _nonceIn = new byte[NONCE_SIZE];
    private long _sent;
    private long _received;

    // Plaintext of the last frame not yet handed to the reader (a read smaller than the frame).
    private byte[]? _left;
    private int _leftStart;
    private int _leftEnd;

    private SealedStream(Stream transport, SslStream handshake, byte[] sealKey, byte[] openKey)
    {
        _transport = transport;
        _handshake = handshake;
        _seal = new AesGcm(sealKey, TAG_SIZE);
        _open = new AesGcm(openKey, TAG_SIZE);
        CryptographicOperations.ZeroMemory(sealKey);
        CryptographicOperations.ZeroMemory(openKey);
    }

    /// <summary>
    /// Agrees on the frame keys through <paramref name="tls"/> (authenticated, over <paramref name="transport"/>) and
    /// returns the stream that seals frames on <paramref name="transport"/>. The client speaks first and the server
    /// answers, and neither sends anything after its key share until the other's has arrived, so nothing of the frames
    /// is ever read into the TLS stream's buffer. <paramref name="tls"/> must leave <paramref name="transport"/> open;
    /// disposing the result disposes both.
    /// </summary>
    public static async Task<SealedStream> EstablishAsync(SslStream tls, Stream transport, bool isClient, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tls);
        var mine = RandomNumberGenerator.GetBytes(KEY_SIZE);
        var theirs = new byte[KEY_SIZE];
        if (isClient)
        {
            await tls.WriteAsync(mine, cancellationToken).ConfigureAwait(false);
            await tls.FlushAsync(cancellationToken).ConfigureAwait(false);
            await tls.ReadExactlyAsync(theirs, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await tls.ReadExactlyAsync(theirs, cancellationToken).ConfigureAwait(false);
            await tls.WriteAsync(mine, cancellationToken).ConfigureAwait(false);
            await tls.FlushAsync(cancellationToken).ConfigureAwait(false);
        }

        var shares = isClient ? [.. mine, .. theirs] : (byte[])[.. theirs, .. mine];
        var toServer = HKDF.DeriveKey(HashAlgorithmName.SHA256, shares, KEY_SIZE, Salt, "client to server"u8.ToArray());
        var toClient = HKDF.DeriveKey(HashAlgorithmName.SHA256, shares, KEY_SIZE, Salt, "server to client"u8.ToArray());
        CryptographicOperations.ZeroMemory(shares);
        CryptographicOperations.ZeroMemory(mine);
        return isClient ? new SealedStream(transport, tls, toServer, toClient) : new SealedStream(transport, tls, toClient, toServer);
    }

    /// <inheritdoc />
    public override bool CanRead => true;

    /// <inheritdoc />
    public override bool CanSeek => false;

    /// <inheritdoc />
    public override bool CanWrite => true;

    /// <inheritdoc />
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc />
    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    /// <inheritdoc />
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (!buffer.IsEmpty)
        {
            var length = Math.Min(buffer.Length, MaxFrame);
            var frame = ArrayPool<byte>.Shared.Rent(LENGTH_SIZE + length + TAG_SIZE);
            try
            {
                Seal(buffer.Span[..length], frame.AsSpan(0, LENGTH_SIZE + length + TAG_SIZE));
                await _transport.WriteAsync(frame.AsMemory(0, LENGTH_SIZE + length + TAG_SIZE), cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(frame);
            }

            buffer = buffer[length..];
        }
    }

    /// <summary>
    /// Writes a message of <paramref name="header"/> and <paramref name="body"/> with the header sealed as a frame of its
    /// own (sent in one write with the body's first frame), so that a reader taking the header into a small buffer then
    /// reads the body's frames straight into its own, with no frame split between the two.
    /// </summary>
    public async ValueTask WriteMessageAsync(ReadOnlyMemory<byte> header, ReadOnlyMemory<byte> body, CancellationToken cancellationToken = default)
    {
        if (header.IsEmpty || header.Length > MaxFrame)
        {
            throw new ArgumentOutOfRangeException(nameof(header), header.Length, $"a message header holds 1 to {MaxFrame} bytes");
        }

        var first = Math.Min(body.Length, MaxFrame);
        var headerFrame = LENGTH_SIZE + header.Length + TAG_SIZE;
        var size = headerFrame + (first > 0 ? LENGTH_SIZE + first + TAG_SIZE : 0);
        var frames = ArrayPool<byte>.Shared.Rent(size);
        try
        {
            Seal(header.Span, frames.AsSpan(0, headerFrame));
            if (first > 0)
            {
                Seal(body.Span[..first], frames.AsSpan(headerFrame, size - headerFrame));
            }

            await _transport.WriteAsync(frames.AsMemory(0, size), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frames);
        }

        await WriteAsync(body[first..], cancellationToken).ConfigureAwait(false);
    }

    private void Seal(ReadOnlySpan<byte> plaintext, Span<byte> frame)
    {
        if (_sent >= MaxFramesPerKey)
        {
            throw new IOException($"the data-port connection sealed {MaxFramesPerKey} frames under one key; open a new connection");
        }

        BinaryPrimitives.WriteInt64LittleEndian(_nonceOut.AsSpan(4), _sent++);
        BinaryPrimitives.WriteInt32LittleEndian(frame, plaintext.Length);
        _seal.Encrypt(_nonceOut, plaintext, frame.Slice(LENGTH_SIZE, plaintext.Length), frame.Slice(LENGTH_SIZE + plaintext.Length, TAG_SIZE), frame[..LENGTH_SIZE]);
    }

    /// <inheritdoc />
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.IsEmpty)
        {
            return 0;
        }

        if (_left is not null)
        {
            return TakeLeft(buffer.Span);
        }

        // Between frames the peer may close (0); inside one that is an error.
        var header = 0;
        while (header < LENGTH_SIZE)
        {
            var n = await _transport.ReadAsync(_lengthIn.AsMemory(header), cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                return header == 0 ? 0 : throw new IOException("the data-port connection closed inside a frame");
            }

            header += n;
        }

        var length = BinaryPrimitives.ReadInt32LittleEndian(_lengthIn);
        if (length is <= 0 or > MaxFrame)
        {
            throw new InvalidDataException($"a sealed frame of {length} bytes (at most {MaxFrame})");
        }

        if (_received >= MaxFramesPerKey)
        {
            throw new IOException($"the data-port connection opened {MaxFramesPerKey} frames under one key; open a new connection");
        }

        var frame = ArrayPool<byte>.Shared.Rent(length + TAG_SIZE);
        var keep = false;
        try
        {
            await _transport.ReadExactlyAsync(frame.AsMemory(0, length + TAG_SIZE), cancellationToken).ConfigureAwait(false);
            BinaryPrimitives.WriteInt64LittleEndian(_nonceIn.AsSpan(4), _received++);
            var whole = buffer.Length >= length;
            var plaintext = whole ? buffer.Span[..length] : frame.AsSpan(0, length);
            try
            {
                _open.Decrypt(_nonceIn, frame.AsSpan(0, length), frame.AsSpan(length, TAG_SIZE), plaintext, _lengthIn);
            }
            catch (AuthenticationTagMismatchException e)
            {
                throw new IOException("a data-port frame failed its authentication tag (altered, replayed or out of order)", e);
            }

            if (whole)
            {
                return length;
            }

            (_left, _leftStart, _leftEnd, keep) = (frame, 0, length, true);
            return TakeLeft(buffer.Span);
        }
        finally
        {
            if (!keep)
            {
                ArrayPool<byte>.Shared.Return(frame);
            }
        }
    }

    private int TakeLeft(Span<byte> destination)
    {
        var count = Math.Min(destination.Length, _leftEnd - _leftStart);
        _left.AsSpan(_leftStart, count).CopyTo(destination);
        _leftStart += count;
        if (_leftStart == _leftEnd)
        {
            ArrayPool<byte>.Shared.Return(_left!);
            _left = null;
        }

        return count;
    }

    /// <inheritdoc />
    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <inheritdoc />
    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <inheritdoc />
    public override Task FlushAsync(CancellationToken cancellationToken) => _transport.FlushAsync(cancellationToken);

    /// <inheritdoc />
    public override void Flush() => _transport.Flush();

    /// <inheritdoc />
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc />
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _seal.Dispose();
            _open.Dispose();
            _handshake.Dispose();
            _transport.Dispose();
            if (_left is not null)
            {
                ArrayPool<byte>.Shared.Return(_left);
                _left = null;
            }
        }

        base.Dispose(disposing);
    }
}
