namespace GrainFs;

/// <summary>
/// Who may call a grain method. Silos check it on every incoming call (a grain call filter), from the caller's session
/// token or a silo's call mark; a method without an <see cref="AccessAttribute"/> is for silos only.
/// </summary>
public enum Access
{
    /// <summary>Only other silos (no attribute means this).</summary>
    SiloOnly = 0,

    /// <summary>Anyone connected (the login itself).</summary>
    Anonymous,

    /// <summary>Any authenticated client.</summary>
    Authenticated,

    /// <summary>Admin clients only.</summary>
    Admin,

    /// <summary>Clients that may read the mount the call concerns (admins may read every mount).</summary>
    Read,

    /// <summary>Clients that may write the mount the call concerns (admins may write every mount).</summary>
    Write,
}

/// <summary>Declares who may call a grain method; see <see cref="Access"/>. <see cref="Audit"/> logs each call to the audit log.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class AccessAttribute(Access level) : Attribute
{
    /// <summary>Who may call.</summary>
    public Access Level { get; } = level;

    /// <summary>Record each call (who, what, when, outcome) in the audit log.</summary>
    public bool Audit { get; init; }
}

/// <summary>
/// An argument that names the mount a call concerns, for <see cref="Access.Read"/> and <see cref="Access.Write"/> checks
/// of grains whose key does not (block and worker grains).
/// </summary>
public interface IMountScoped
{
    /// <summary>The mount's id.</summary>
    long MountId { get; }
}

/// <summary>The caller may not do this: the message names the caller, the call and the path or mount.</summary>
[GenerateSerializer, Alias("grainfs.AccessDeniedException")]
public sealed class GrainFsAccessDeniedException : Exception
{
    /// <summary>A denial with its reason.</summary>
    public GrainFsAccessDeniedException(string message)
        : base(message)
    {
    }

    /// <summary>For serializers.</summary>
    public GrainFsAccessDeniedException()
    {
    }

    /// <summary>For serializers.</summary>
    public GrainFsAccessDeniedException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>What a client presents to log in: its certificate and a fresh signature by its key.</summary>
/// <param name="Certificate">The client's certificate (DER).</param>
/// <param name="UnixSeconds">When it signed (within 5 minutes of the silo's clock).</param>
/// <param name="Nonce">Random bytes it chose.</param>
/// <param name="Signature">Its key's ECDSA signature over <see cref="LoginProof.Data"/>.</param>
[GenerateSerializer, Immutable, Alias("grainfs.LoginRequest")]
public sealed record LoginRequest(
    [property: Id(0)] byte[] Certificate,
    [property: Id(1)] long UnixSeconds,
    [property: Id(2)] byte[] Nonce,
    [property: Id(3)] byte[] Signature);

/// <summary>A session: the token every later call carries, and who it names.</summary>
/// <param name="Token">The session token.</param>
/// <param name="Name">The identity's name.</param>
/// <param name="Kind">silo, admin or client.</param>
/// <param name="ExpiresUtc">When the token expires; clients renew it before.</param>
[GenerateSerializer, Immutable, Alias("grainfs.SessionGrant")]
public sealed record SessionGrant(
    [property: Id(0)] string Token,
    [property: Id(1)] string Name,
    [property: Id(2)] string Kind,
    [property: Id(3)] DateTime ExpiresUtc);

/// <summary>The bytes a login signature covers.</summary>
public static class LoginProof
{
    /// <summary>How far a login's time may be from the silo's.</summary>
    public static readonly TimeSpan MaxSkew = TimeSpan.FromMinutes(5);

    /// <summary>The signed data: a fixed label, the cluster id, the time and the nonce.</summary>
    public static byte[] Data(string clusterId, long unixSeconds, byte[] nonce) =>
        System.Text.Encoding.UTF8.GetBytes(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"grainfs-login\n{clusterId}\n{unixSeconds}\n{Convert.ToBase64String(nonce)}"));
}

/// <summary>Logs a client in: a stateless worker on every silo.</summary>
[Alias("grainfs.IAuthGrain")]
public interface IAuthGrain : IGrainWithIntegerKey
{
    /// <summary>Checks the certificate against the cluster CAs and the signature against its key; returns a session, or throws <see cref="GrainFsAccessDeniedException"/>.</summary>
    [Alias("Login"), Access(Access.Anonymous)]
    ValueTask<SessionGrant> LoginAsync(LoginRequest request);

    /// <summary>Who the caller is, as the silo sees it.</summary>
    [Alias("WhoAmI"), Access(Access.Authenticated)]
    ValueTask<string> WhoAmIAsync();

    /// <summary>
    /// A capability to send written blocks of mount <paramref name="mountId"/> to the workers' data ports, for a writer
    /// of that mount: any silo checks it on every data-port write, with no grain call.
    /// </summary>
    [Alias("GrantWrites"), Access(Access.Write)]
    ValueTask<WriteCapability> GrantWritesAsync(long mountId);
}

/// <summary>
/// A data-port write capability: mount, expiry (Unix seconds) and an HMAC-SHA256 over both under the cluster key.
/// Sent after the request of every data-port write (<see cref="Size"/> bytes).
/// </summary>
[GenerateSerializer, Immutable, Alias("grainfs.WriteCapability")]
public sealed record WriteCapability(
    [property: Id(0)] long MountId,
    [property: Id(1)] long ExpiresUnix,
    [property: Id(2)] byte[] Mac)
{
    /// <summary>Bytes of the wire form: mount id (8), expiry (8), MAC (32), little-endian.</summary>
    public const int Size = 48;

    /// <summary>The wire form.</summary>
    public void Write(Span<byte> destination)
    {
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(destination, MountId);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(destination[8..], ExpiresUnix);
        Mac.AsSpan(0, 32).CopyTo(destination[16..]);
    }
}

/// <summary>Names of the request-context entries GrainFS calls carry.</summary>
public static class SecurityContextKeys
{
    /// <summary>A client's session token.</summary>
    public const string Token = "gfs.t";

    /// <summary>A silo's call mark.</summary>
    public const string SiloMark = "gfs.s";
}
