using System.Buffers.Binary;

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
