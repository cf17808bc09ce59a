using System.Buffers.Binary;
using System.Net.Security;
using System.Security.Cryptography;

namespace GrainFs.DataPlane.Security;

/// <summary>
/// The record construction of GrainFS's connections once a mutual TLS 1.3 handshake has authenticated both ends: each
/// end sends 32 random bytes through the TLS channel, and each direction's AES-256-GCM key is derived from both shares
/// with HKDF-SHA256 under a label naming the protocol (so that keys of one protocol never open another's frames). A
/// frame is a 4-byte little-endian plaintext length (1 to the protocol's largest frame, bound in as associated data),
/// the ciphertext and a 16-byte tag; the nonce is the frame's sequence number in its direction, so a frame dropped,
/// replayed, reordered or altered fails to open. This is TLS 1.3's own record construction with records the size the
/// protocol needs, sealed and opened straight between the caller's buffers and the transport's, with none of a TLS
/// library's per-record machinery. Like TLS 1.3's key update, each direction's key is replaced by an HKDF of itself
/// after <see cref="FramesPerKey"/> frames or <see cref="BytesPerKey"/> bytes (well inside AES-GCM's limits), at the
/// same frame on both ends, so a connection may live for ever. The sealing side and the opening side may run on two
/// threads at once (one each).
/// </summary>
public sealed class FrameCipher : IDisposable
{
    /// <summary>Bytes of a frame's length field.</summary>
    public const int LengthSize = 4;

    /// <summary>Bytes of a frame's authentication tag.</summary>
    public const int TagSize = 16;

    /// <summary>Frames one direction's key seals before it is replaced.</summary>
    public const long FramesPerKey = 1L << 24;

    /// <summary>Plaintext bytes one direction's key seals before it is replaced.</summary>
    public const long BytesPerKey = 1L << 36;

    private const int KEY_SIZE = 32;
    private const int NONCE_SIZE = 12;

    private readonly Direction _seal;
    private readonly Direction _open;

    private FrameCipher(byte[] sealKey, byte[] openKey, int maxFrame, long framesPerKey)
    {
        _seal = new Direction(sealKey, framesPerKey);
        _open = new Direction(openKey, framesPerKey);
        MaxFrame = maxFrame;
    }

    /// <summary>The largest plaintext of one frame, both ways.</summary>
    public int MaxFrame { get; }

    /// <summary>Bytes on the wire of a frame of <paramref name="plaintext"/> bytes.</summary>
    public static int FrameSize(int plaintext) => LengthSize + plaintext + TagSize;

    /// <summary>
    /// Agrees on the frame keys through <paramref name="tls"/> (authenticated). The client speaks first and the server
    /// answers; a caller must send nothing after its share until the other's has arrived (the server until it has
    /// opened the client's first frame), so that no frame is ever read into the TLS stream's buffer.
    /// </summary>
    public static async Task<FrameCipher> AgreeAsync(SslStream tls, bool isClient, string protocol, int maxFrame, CancellationToken cancellationToken)
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
        var salt = System.Text.Encoding.UTF8.GetBytes(protocol);
        var toServer = HKDF.DeriveKey(HashAlgorithmName.SHA256, shares, KEY_SIZE, salt, "client to server"u8.ToArray());
        var toClient = HKDF.DeriveKey(HashAlgorithmName.SHA256, shares, KEY_SIZE, salt, "server to client"u8.ToArray());
        CryptographicOperations.ZeroMemory(shares);
        CryptographicOperations.ZeroMemory(mine);
        return isClient ? new FrameCipher(toServer, toClient, maxFrame, FramesPerKey) : new FrameCipher(toClient, toServer, maxFrame, FramesPerKey);
    }

    /// <summary>
    /// A cipher of agreed keys (32 bytes each, copied): one end's sealing key is the other's opening key. Each key is
    /// replaced after <paramref name="framesPerKey"/> frames (tests shorten it to see keys replaced).
    /// </summary>
    public static FrameCipher FromKeys(ReadOnlySpan<byte> sealKey, ReadOnlySpan<byte> openKey, int maxFrame, long framesPerKey = FramesPerKey)
    {
        if (sealKey.Length != KEY_SIZE || openKey.Length != KEY_SIZE)
        {
            throw new ArgumentException($"frame keys are {KEY_SIZE} bytes");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(framesPerKey, 1);
        return new FrameCipher(sealKey.ToArray(), openKey.ToArray(), maxFrame, framesPerKey);
    }

    /// <summary>Seals <paramref name="plaintext"/> (1 to <see cref="MaxFrame"/> bytes) as the next frame, into <paramref name="frame"/> (at least <see cref="FrameSize"/> bytes).</summary>
    public void Seal(ReadOnlySpan<byte> plaintext, Span<byte> frame)
    {
        if (plaintext.IsEmpty || plaintext.Length > MaxFrame)
        {
            throw new ArgumentOutOfRangeException(nameof(plaintext), plaintext.Length, $"a frame holds 1 to {MaxFrame} bytes");
        }

        Span<byte> nonce = stackalloc byte[NONCE_SIZE];
        _seal.Next(nonce, plaintext.Length);
        BinaryPrimitives.WriteInt32LittleEndian(frame, plaintext.Length);
        _seal.Aes.Encrypt(nonce, plaintext, frame.Slice(LengthSize, plaintext.Length), frame.Slice(LengthSize + plaintext.Length, TagSize), frame[..LengthSize]);
    }

    /// <summary>The plaintext length a frame's length field gives; an absurd one is refused before any memory is taken.</summary>
    public int ReadLength(ReadOnlySpan<byte> lengthField)
    {
        var length = BinaryPrimitives.ReadInt32LittleEndian(lengthField);
        return length is <= 0 || length > MaxFrame
            ? throw new InvalidDataException($"a sealed frame of {length} bytes (at most {MaxFrame})")
            : length;
    }

    /// <summary>
    /// Opens the next frame: <paramref name="lengthField"/> as received, <paramref name="body"/> its ciphertext and tag,
    /// into <paramref name="plaintext"/> (its length). A frame that fails its tag throws and leaves nothing readable.
    /// </summary>
    public void Open(ReadOnlySpan<byte> lengthField, ReadOnlySpan<byte> body, Span<byte> plaintext)
    {
        Span<byte> nonce = stackalloc byte[NONCE_SIZE];
        var length = plaintext.Length;
        _open.Next(nonce, length);
        try
        {
            _open.Aes.Decrypt(nonce, body[..length], body.Slice(length, TagSize), plaintext, lengthField);
        }
        catch (AuthenticationTagMismatchException e)
        {
            throw new IOException("a frame failed its authentication tag (altered, replayed or out of order)", e);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _seal.Dispose();
        _open.Dispose();
    }

    // One direction: its key, and what has been sealed (or opened) under it. The nonce is the frame's sequence number in
    // the direction, which keeps counting across key updates.
    private sealed class Direction(byte[] key, long framesPerKey) : IDisposable
    {
        private static readonly byte[] NextKeyLabel = "grainfs next key"u8.ToArray();
        private readonly byte[] _key = key;
        private long _sequence;
        private long _frames;
        private long _bytes;

        public AesGcm Aes { get; private set; } = new(key, TagSize);

        // The nonce of the next frame of `length` bytes, replacing the key first when the current one has done its share.
        public void Next(Span<byte> nonce, int length)
        {
            if (_frames >= framesPerKey || _bytes + length > BytesPerKey)
            {
                var next = HKDF.Expand(HashAlgorithmName.SHA256, _key, KEY_SIZE, NextKeyLabel);
                next.CopyTo(_key, 0);
                CryptographicOperations.ZeroMemory(next);
                Aes.Dispose();
                Aes = new AesGcm(_key, TagSize);
                (_frames, _bytes) = (0, 0);
            }

            nonce[..4].Clear();
            BinaryPrimitives.WriteInt64LittleEndian(nonce[4..], _sequence++);
            _frames++;
            _bytes += length;
        }

        public void Dispose()
        {
            Aes.Dispose();
            CryptographicOperations.ZeroMemory(_key);
        }
    }
}
