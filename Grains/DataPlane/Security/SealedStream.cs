using System.Buffers;
using System.Net.Security;

namespace GrainFs.DataPlane.Security;

/// <summary>
/// The data port's record layer once its TLS 1.3 handshake is done: every byte travels in <see cref="FrameCipher"/>
/// frames of up to <see cref="MaxFrame"/> bytes straight on the TCP connection, sealed from the writer's buffer and
/// opened straight into the reader's, so the bulk bytes of the data port pay one AES-GCM pass per side and no extra
/// copy. A frame dropped, replayed, reordered or altered fails to open and ends the stream with an error.
/// </summary>
public sealed class SealedStream : DuplexStream
{
    /// <summary>The largest plaintext of one frame.</summary>
    public const int MaxFrame = 256 * 1024;

    private const string PROTOCOL = "grainfs-data-port-v1";
    private const int LENGTH_SIZE = FrameCipher.LengthSize;
    private const int TAG_SIZE = FrameCipher.TagSize;

    private readonly Stream _transport;
    private readonly SslStream _handshake;
    private readonly FrameCipher _cipher;
    private readonly byte[] _lengthIn = new byte[LENGTH_SIZE];

    // Plaintext of the last frame not yet handed to the reader (a read smaller than the frame).
    private byte[]? _left;
    private int _leftStart;
    private int _leftEnd;

    private SealedStream(Stream transport, SslStream handshake, FrameCipher cipher)
    {
        _transport = transport;
        _handshake = handshake;
        _cipher = cipher;
    }

    /// <summary>
    /// Agrees on the frame keys through <paramref name="tls"/> (authenticated, over <paramref name="transport"/>) and
    /// returns the stream that seals frames on <paramref name="transport"/>. The data port's client speaks first and
    /// the server sends nothing until asked, so nothing of the frames is ever read into the TLS stream's buffer.
    /// <paramref name="tls"/> must leave <paramref name="transport"/> open; disposing the result disposes both.
    /// </summary>
    public static async Task<SealedStream> EstablishAsync(SslStream tls, Stream transport, bool isClient, CancellationToken cancellationToken)
    {
        var cipher = await FrameCipher.AgreeAsync(tls, isClient, PROTOCOL, MaxFrame, cancellationToken).ConfigureAwait(false);
        return new SealedStream(transport, tls, cipher);
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

    private void Seal(ReadOnlySpan<byte> plaintext, Span<byte> frame) => _cipher.Seal(plaintext, frame);

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

        var length = _cipher.ReadLength(_lengthIn);
        var frame = ArrayPool<byte>.Shared.Rent(length + TAG_SIZE);
        var keep = false;
        try
        {
            await _transport.ReadExactlyAsync(frame.AsMemory(0, length + TAG_SIZE), cancellationToken).ConfigureAwait(false);
            var whole = buffer.Length >= length;
            _cipher.Open(_lengthIn, frame.AsSpan(0, length + TAG_SIZE), whole ? buffer.Span[..length] : frame.AsSpan(0, length));

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
    public override Task FlushAsync(CancellationToken cancellationToken) => _transport.FlushAsync(cancellationToken);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _cipher.Dispose();
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
