using System.Buffers.Binary;
using System.Text;

namespace GrainFs.DataPlane.Blocks;

/// <summary>What a data-port reply says.</summary>
public enum DataPortStatus : byte
{
    /// <summary>The bytes follow.</summary>
    Ok = 0,

    /// <summary>The worker does not hold the block and is not filling it.</summary>
    Miss = 1,

    /// <summary>The block failed its checksum and was discarded; ask for a refill.</summary>
    Corrupt = 2,

    /// <summary>The fill failed; a UTF-8 message follows.</summary>
    Error = 3,

    /// <summary>The request was malformed or of an unknown version; a UTF-8 message follows.</summary>
    BadRequest = 4,

    /// <summary>A write found no room on the write tier; a UTF-8 message follows.</summary>
    NoSpace = 5,

    /// <summary>A write without a valid capability of the cluster; a UTF-8 message follows and the connection closes.</summary>
    Denied = 6,

    /// <summary>The worker could not start the fill a request's block source asked for (the mount is gone, the source
    /// does not match the key, under-storage refused); a UTF-8 message follows. The client asks the block's grain, which
    /// says why with a file-system status.</summary>
    NotFilled = 7,
}

/// <summary>Where served bytes came from.</summary>
public enum DataSource : byte
{
    /// <summary>The MEM tier.</summary>
    Mem = 0,

    /// <summary>The SSD tier.</summary>
    Ssd = 1,

    /// <summary>The HDD tier.</summary>
    Hdd = 2,

    /// <summary>A fill in progress: bytes straight from under-storage.</summary>
    UnderStorage = 3,
}

/// <summary>
/// The data port: a TCP endpoint of each silo that serves block bytes, so bytes never travel in grain messages.
/// Version 1, little-endian. A request is 44 bytes: magic "GFDP" (4) · version (1) · op (1) · flags (2) ·
/// block key (20) · offset in the block (8) · length (4) · reserved (4). A reply is a 12-byte header: magic "GFDR"
/// (4) · status (1) · source (1) · reserved (2) · payload length (4), then the payload: data for Ok, a UTF-8
/// message for Error and BadRequest. Requests on one connection are answered in order.
/// A write (op 2) carries a whole block: the request's length is the block's data length, offset 0, and that many bytes
/// follow the request; the reply (no payload when Ok) comes once the block is synced on the write tier.
/// With the trust model on (the default), a connection opens with a mutual TLS 1.3 handshake and a key exchange inside
/// it, and these messages then travel in <see cref="GrainFs.DataPlane.Security.SealedStream"/> frames.
/// </summary>
public static class DataPortProtocol
{
    /// <summary>An idle data-port connection is probed after this long (then every 10 s, 3 times) so that a peer gone without a word (a host down, a cable pulled) is noticed.</summary>
    public static readonly TimeSpan KeepAliveIdle = TimeSpan.FromSeconds(30);

    /// <summary>TCP keepalive on a data-port connection, at both ends (<see cref="KeepAliveIdle"/>).</summary>
    public static void KeepAlive(System.Net.Sockets.Socket socket)
    {
        socket.SetSocketOption(System.Net.Sockets.SocketOptionLevel.Socket, System.Net.Sockets.SocketOptionName.KeepAlive, true);
        socket.SetSocketOption(System.Net.Sockets.SocketOptionLevel.Tcp, System.Net.Sockets.SocketOptionName.TcpKeepAliveTime, (int)KeepAliveIdle.TotalSeconds);
        socket.SetSocketOption(System.Net.Sockets.SocketOptionLevel.Tcp, System.Net.Sockets.SocketOptionName.TcpKeepAliveInterval, 10);
        socket.SetSocketOption(System.Net.Sockets.SocketOptionLevel.Tcp, System.Net.Sockets.SocketOptionName.TcpKeepAliveRetryCount, 3);
    }

    /// <summary>"GFDP".</summary>
    public const uint RequestMagic = 0x50444647;

    /// <summary>"GFDR".</summary>
    public const uint ReplyMagic = 0x52444647;

    /// <summary>The protocol version.</summary>
    public const byte Version = 1;

    /// <summary>Read block bytes.</summary>
    public const byte OpRead = 1;

    /// <summary>Store a written block (its bytes follow the request).</summary>
    public const byte OpWrite = 2;

    /// <summary>Flag: the caller has had the block's fill started and expects to wait for it. Workers wait for a fill in
    /// progress whether or not it is set; without a fill they answer Miss.</summary>
    public const ushort FlagWaitForFill = 1;

    /// <summary>Flag of a read: answer once the block is held in full, with no bytes (Ok; Miss when it is neither held
    /// nor being filled; Error when its fill failed). A reader on the worker's own host then reads the block file itself
    /// instead of having it streamed through the connection.</summary>
    public const ushort FlagAwaitHeld = 4;

    /// <summary>Flag of a write: a write capability (<see cref="GrainFs.DataPlane.Security.SessionTokens.WriteCapabilitySize"/>
    /// bytes: mount id, expiry, MAC under the cluster key) follows the request, before the block's bytes. A silo with the
    /// trust model on refuses a write without a valid one (<see cref="DataPortStatus.Denied"/>) and closes the connection.</summary>
    public const ushort FlagCapability = 2;

    /// <summary>Flag of a read: a block source (<see cref="FillSource"/>, its length in the request's last four bytes)
    /// follows the request. A worker that neither holds nor fills the block starts its fill from it (the source must
    /// give the requested key under the mount's block-name key, which only the mount's readers know), then answers the
    /// read as it answers any read of a block being filled: no grain call, no activation per cold block.</summary>
    public const ushort FlagSource = 8;

    /// <summary>Flag of a read with a source: the fill is a prefetch ahead of a reader (an announced read order). The
    /// worker counts it as one: prefetch fills, hits when a reader later asks for the block, wasted when it is evicted
    /// before anyone did.</summary>
    public const ushort FlagPrefetch = 16;

    /// <summary>The largest encoded block source.</summary>
    public const int MaxSourceLength = 8192;

    /// <summary>Request size.</summary>
    public const int RequestSize = 44;

    /// <summary>Reply header size.</summary>
    public const int ReplyHeaderSize = 12;

    /// <summary>The largest range one request may ask for.</summary>
    public const int MaxLength = 16 * 1024 * 1024;

    /// <summary>Writes a request (a read unless <paramref name="op"/> says otherwise).</summary>
    public static void WriteRequest(Span<byte> destination, BlockKey key, long offset, int length, ushort flags, byte op = OpRead)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, RequestMagic);
        destination[4] = Version;
        destination[5] = op;
        BinaryPrimitives.WriteUInt16LittleEndian(destination[6..], flags);
        key.Write(destination[8..28]);
        BinaryPrimitives.WriteInt64LittleEndian(destination[28..], offset);
        BinaryPrimitives.WriteInt32LittleEndian(destination[36..], length);
        BinaryPrimitives.WriteInt32LittleEndian(destination[40..], 0);
    }

    /// <summary>Writes a read request followed by its block source (<see cref="FlagSource"/> added to <paramref name="flags"/>) into a new buffer.</summary>
    public static byte[] RequestWithSource(BlockKey key, long offset, int length, ushort flags, in FillSource source)
    {
        var encoded = source.Encode();
        var request = new byte[RequestSize + encoded.Length];
        WriteRequest(request, key, offset, length, (ushort)(flags | FlagSource));
        BinaryPrimitives.WriteInt32LittleEndian(request.AsSpan(40), encoded.Length);
        encoded.CopyTo(request, RequestSize);
        return request;
    }

    /// <summary>The length of the block source that follows a request with <see cref="FlagSource"/>; -1 when out of bounds.</summary>
    public static int SourceLength(ReadOnlySpan<byte> request)
    {
        var length = BinaryPrimitives.ReadInt32LittleEndian(request[40..]);
        return length is > 0 and <= MaxSourceLength ? length : -1;
    }

    /// <summary>Reads a request; null with a reason when it is not one this version understands.</summary>
    public static (BlockKey Key, long Offset, int Length, ushort Flags, byte Op)? ReadRequest(ReadOnlySpan<byte> source, out string? error)
    {
        if (BinaryPrimitives.ReadUInt32LittleEndian(source) != RequestMagic)
        {
            error = "not a GrainFS data-port request";
            return null;
        }

        if (source[4] != Version || source[5] is not (OpRead or OpWrite))
        {
            error = $"unsupported protocol version {source[4]} or op {source[5]} (this worker speaks version {Version})";
            return null;
        }

        var offset = BinaryPrimitives.ReadInt64LittleEndian(source[28..]);
        var length = BinaryPrimitives.ReadInt32LittleEndian(source[36..]);
        if (offset < 0 || length < 0 || length > MaxLength)
        {
            error = $"bad range: offset {offset}, length {length} (at most {MaxLength})";
            return null;
        }

        error = null;
        return (BlockKey.Read(source[8..28]), offset, length, BinaryPrimitives.ReadUInt16LittleEndian(source[6..]), source[5]);
    }

    /// <summary>Writes a reply header.</summary>
    public static void WriteReplyHeader(Span<byte> destination, DataPortStatus status, DataSource source, int length)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, ReplyMagic);
        destination[4] = (byte)status;
        destination[5] = (byte)source;
        BinaryPrimitives.WriteUInt16LittleEndian(destination[6..], 0);
        BinaryPrimitives.WriteInt32LittleEndian(destination[8..], length);
    }

    /// <summary>Reads a reply header; throws <see cref="InvalidDataException"/> on a malformed one.</summary>
    public static (DataPortStatus Status, DataSource Source, int Length) ReadReplyHeader(ReadOnlySpan<byte> source)
    {
        if (BinaryPrimitives.ReadUInt32LittleEndian(source) != ReplyMagic)
        {
            throw new InvalidDataException("not a GrainFS data-port reply");
        }

        var length = BinaryPrimitives.ReadInt32LittleEndian(source[8..]);
        if (length < 0 || length > MaxLength)
        {
            throw new InvalidDataException($"bad reply length {length}");
        }

        return ((DataPortStatus)source[4], (DataSource)source[5], length);
    }
}

/// <summary>What a worker needs to fill a block from under-storage (the data-port form of a block source).</summary>
/// <param name="MountId">The mount.</param>
/// <param name="Path">The file's path relative to the mount root.</param>
/// <param name="ETag">The file version.</param>
/// <param name="FileSize">The file's size.</param>
/// <param name="BlockSize">The mount's block size.</param>
/// <param name="Index">The block's index.</param>
public readonly record struct FillSource(long MountId, string Path, string ETag, long FileSize, int BlockSize, int Index)
{
    /// <summary>Mount id, file size, block size and index (little-endian), then the ETag and the path, each as a 16-bit length and UTF-8.</summary>
    public byte[] Encode()
    {
        var etag = Encoding.UTF8.GetBytes(ETag);
        var path = Encoding.UTF8.GetBytes(Path);
        if (24 + 4 + etag.Length + path.Length > DataPortProtocol.MaxSourceLength)
        {
            throw new ArgumentException($"block source {Path}: longer than {DataPortProtocol.MaxSourceLength} bytes encoded");
        }

        var bytes = new byte[24 + 2 + etag.Length + 2 + path.Length];
        var span = bytes.AsSpan();
        BinaryPrimitives.WriteInt64LittleEndian(span, MountId);
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], FileSize);
        BinaryPrimitives.WriteInt32LittleEndian(span[16..], BlockSize);
        BinaryPrimitives.WriteInt32LittleEndian(span[20..], Index);
        BinaryPrimitives.WriteUInt16LittleEndian(span[24..], (ushort)etag.Length);
        etag.CopyTo(span[26..]);
        BinaryPrimitives.WriteUInt16LittleEndian(span[(26 + etag.Length)..], (ushort)path.Length);
        path.CopyTo(span[(28 + etag.Length)..]);
        return bytes;
    }

    /// <summary>Reads <see cref="Encode"/>'s form; false with a reason when it is malformed.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> bytes, out FillSource source, out string? error)
    {
        source = default;
        error = "a malformed block source";
        if (bytes.Length < 28)
        {
            return false;
        }

        var etagLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes[24..]);
        if (bytes.Length < 28 + etagLength)
        {
            return false;
        }

        var pathLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes[(26 + etagLength)..]);
        if (bytes.Length != 28 + etagLength + pathLength)
        {
            return false;
        }

        try
        {
            var strict = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
            source = new FillSource(
                BinaryPrimitives.ReadInt64LittleEndian(bytes),
                strict.GetString(bytes.Slice(28 + etagLength, pathLength)),
                strict.GetString(bytes.Slice(26, etagLength)),
                BinaryPrimitives.ReadInt64LittleEndian(bytes[8..]),
                BinaryPrimitives.ReadInt32LittleEndian(bytes[16..]),
                BinaryPrimitives.ReadInt32LittleEndian(bytes[20..]));
        }
        catch (DecoderFallbackException)
        {
            error = "a block source that is not valid UTF-8";
            return false;
        }

        error = null;
        return true;
    }
}
