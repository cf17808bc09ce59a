using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace GrainFs.DataPlane.Security;

/// <summary>
/// Session tokens and silo call marks, HMAC-SHA256 under the cluster key (which only silos hold). A client gets a token
/// by proving its certificate's key to a silo (the login); every grain call then carries it, and any silo checks it in
/// about a microsecond, with no state shared between silos. Calls a silo makes carry a mark instead, which no client can
/// make: it proves the call comes from inside the cluster. Any key of the ring verifies; the first signs.
/// </summary>
public sealed class SessionTokens
{
    /// <summary>How long a session token is valid; clients renew it at half its life.</summary>
    public static readonly TimeSpan DefaultLifetime = TimeSpan.FromHours(1);

    private const string Prefix = "gfs1.";
    private static readonly TimeSpan MarkBucket = TimeSpan.FromMinutes(1);
    private readonly Func<IReadOnlyList<byte[]>> _keys;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, (Principal Principal, long ExpiresUnix)> _verified = new(StringComparer.Ordinal);
    private (long Bucket, IReadOnlyList<byte[]>? Keys, string[] Marks) _marks;

    /// <summary>Tokens under the keys <paramref name="keys"/> returns (re-read on each use, so a rotated key ring applies at once).</summary>
    public SessionTokens(Func<IReadOnlyList<byte[]>> keys, TimeProvider? time = null)
    {
        _keys = keys;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>A token for <paramref name="principal"/> valid for <paramref name="lifetime"/>; returns it and its expiry.</summary>
    public (string Token, DateTimeOffset Expires) Issue(Principal principal, TimeSpan lifetime)
    {
        var expires = _time.GetUtcNow().Add(lifetime);
        var payload = string.Create(CultureInfo.InvariantCulture, $"{(int)principal.Kind}|{expires.ToUnixTimeSeconds()}|{principal.Name}");
        var body = Base64Url.EncodeToString(Encoding.UTF8.GetBytes(payload));
        var mac = Base64Url.EncodeToString(HMACSHA256.HashData(_keys()[0], Encoding.ASCII.GetBytes(body)));
        return (Prefix + body + "." + mac, expires);
    }

    /// <summary>The principal a valid, unexpired token names; null when it is forged, malformed or expired.</summary>
    public Principal? Verify(string? token)
    {
        if (string.IsNullOrEmpty(token) || token.Length > 512)
        {
            return null;
        }

        var now = _time.GetUtcNow().ToUnixTimeSeconds();
        if (_verified.TryGetValue(token, out var known))
        {
            return known.ExpiresUnix > now ? known.Principal : null;
        }

        if (!token.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var dot = token.IndexOf('.', Prefix.Length);
        if (dot < 0)
        {
            return null;
        }

        var body = token.AsSpan(Prefix.Length, dot - Prefix.Length);
        Span<byte> given = stackalloc byte[32];
        if (!Base64Url.TryDecodeFromChars(token.AsSpan(dot + 1), given, out var givenLength) || givenLength != 32)
        {
            return null;
        }

        var bodyBytes = Encoding.ASCII.GetBytes(body.ToString());
        Span<byte> expected = stackalloc byte[32];
        var matched = false;
        foreach (var key in _keys())
        {
            HMACSHA256.HashData(key, bodyBytes, expected);
            matched |= CryptographicOperations.FixedTimeEquals(expected, given);
        }

        if (!matched)
        {
            return null;
        }

        string payload;
        try
        {
            payload = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(body));
        }
        catch (FormatException)
        {
            return null;
        }

        var parts = payload.Split('|', 3);
        if (parts.Length != 3
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var kind) || !Enum.IsDefined((IdentityKind)kind)
            || !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var expires))
        {
            return null;
        }

        if (expires <= now)
        {
            return null;
        }

        var principal = new Principal(parts[2], (IdentityKind)kind);
        if (_verified.Count > 100_000)
        {
            _verified.Clear();
        }

        _verified[token] = (principal, expires);
        return principal;
    }

    /// <summary>How long a data-port write capability is valid; writers renew it at half its life.</summary>
    public static readonly TimeSpan WriteCapabilityLifetime = TimeSpan.FromHours(1);

    /// <summary>Bytes of a write capability on the wire: mount id (8), expiry in Unix seconds (8), HMAC-SHA256 (32).</summary>
    public const int WriteCapabilitySize = 48;

    /// <summary>A data-port write capability for mount <paramref name="mountId"/>: its expiry and MAC (under the current key).</summary>
    public (long ExpiresUnix, byte[] Mac) IssueWriteCapability(long mountId)
    {
        var expires = _time.GetUtcNow().Add(WriteCapabilityLifetime).ToUnixTimeSeconds();
        var mac = new byte[32];
        WriteMac(_keys()[0], mountId, expires, mac);
        return (expires, mac);
    }

    /// <summary>
    /// Checks a write capability in its wire form (<see cref="WriteCapabilitySize"/> bytes); the mount it is for, or
    /// null with the reason when it is forged, malformed or expired. Any key of the ring verifies.
    /// </summary>
    public long? VerifyWriteCapability(ReadOnlySpan<byte> wire, out string? reason)
    {
        if (wire.Length != WriteCapabilitySize)
        {
            reason = "a write capability of the wrong size";
            return null;
        }

        var mountId = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(wire);
        var expires = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(wire[8..]);
        Span<byte> expected = stackalloc byte[32];
        var matched = false;
        foreach (var key in _keys())
        {
            WriteMac(key, mountId, expires, expected);
            matched |= CryptographicOperations.FixedTimeEquals(expected, wire[16..]);
        }

        if (!matched)
        {
            reason = "a write capability the cluster did not issue";
            return null;
        }

        if (expires <= _time.GetUtcNow().ToUnixTimeSeconds())
        {
            reason = $"a write capability for mount {mountId} that expired at {DateTimeOffset.FromUnixTimeSeconds(expires):u}";
            return null;
        }

        reason = null;
        return mountId;
    }

    private static void WriteMac(byte[] key, long mountId, long expiresUnix, Span<byte> destination)
    {
        Span<byte> data = stackalloc byte[32];
        "gfs-write-cap-v1"u8.CopyTo(data);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(data[16..], mountId);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(data[24..], expiresUnix);
        HMACSHA256.HashData(key, data, destination);
    }

    /// <summary>The mark a silo puts on the calls it makes now.</summary>
    public string CurrentMark() => Marks()[1];

    /// <summary>True when <paramref name="mark"/> is a silo's mark of this minute or the one before or after (clock skew), under any key of the ring.</summary>
    public bool IsSiloMark(string? mark)
    {
        if (mark is null || mark.Length != 43)
        {
            return false;
        }

        var any = false;
        foreach (var m in Marks())
        {
            any |= CryptographicOperations.FixedTimeEquals(System.Runtime.InteropServices.MemoryMarshal.AsBytes(m.AsSpan()), System.Runtime.InteropServices.MemoryMarshal.AsBytes(mark.AsSpan()));
        }

        return any;
    }

    // Three marks per key (the minute before, this one, the one after), the current key's first three; cached per minute.
    private string[] Marks()
    {
        var bucket = _time.GetUtcNow().ToUnixTimeSeconds() / (long)MarkBucket.TotalSeconds;
        var keys = _keys();
        var cached = _marks;
        if (cached.Bucket == bucket && ReferenceEquals(cached.Keys, keys))
        {
            return cached.Marks;
        }

        var marks = new List<string>(keys.Count * 3);
        foreach (var key in keys)
        {
            marks.Add(Mark(key, bucket - 1));
            marks.Add(Mark(key, bucket));
            marks.Add(Mark(key, bucket + 1));
        }

        _marks = (bucket, keys, [.. marks]);
        return _marks.Marks;
    }

    private static string Mark(byte[] key, long bucket) =>
        Base64Url.EncodeToString(HMACSHA256.HashData(key, Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"grainfs-silo-call|{bucket}"))));
}
