using System.Security.Cryptography;
using System.Text;

namespace GrainFs.DataPlane.Security;

/// <summary>Why a sealed value did not open.</summary>
public enum UnsealProblem
{
    /// <summary>It opened.</summary>
    None,

    /// <summary>Sealed under a key this ring does not hold: the cluster key does not match the one it was sealed with.</summary>
    KeyMismatch,

    /// <summary>Sealed under a key this ring holds, but it fails its tag: the stored value, or what it is bound to, was altered.</summary>
    Altered,

    /// <summary>It starts like a sealed value but is not one (cut short, not base64).</summary>
    Malformed,
}

/// <summary>
/// Seals short secrets (mount credentials) for storage outside the silos' memory, under a key derived from the cluster
/// key: AES-256-GCM, a random 12-byte nonce per value, and a context (what the secret is for) bound in as associated
/// data, so a sealed value copied onto another record does not open there. A sealed value describes itself:
/// <c>gfs-sealed:v1:&lt;key id&gt;:&lt;base64 of nonce | ciphertext | tag&gt;</c>, the key id being the first 8 hex
/// digits of the SHA-256 of the derived key (not of the cluster key). Values are sealed under the ring's current key
/// and opened with whichever key of the ring has their id, so a rotated cluster key still opens old values.
/// No Orleans: the mount table grain uses it, tests drive it directly.
/// </summary>
public sealed class SecretBox
{
    /// <summary>What every sealed value starts with.</summary>
    public const string PREFIX = "gfs-sealed:v1:";

    /// <summary>The HKDF info label: keys derived for other purposes from the same cluster key differ from these.</summary>
    public const string LABEL = "grainfs-mount-secrets-v1";

    private const int NONCE_SIZE = 12;
    private const int TAG_SIZE = 16;
    private const int KEY_SIZE = 32;
    private const int KEY_ID_LENGTH = 8;

    private readonly Func<IReadOnlyList<byte[]>> _clusterKeys;
    private Ring? _ring;

    /// <summary>A box over a fixed key ring (current key first).</summary>
    public SecretBox(IReadOnlyList<byte[]> clusterKeys)
        : this(() => clusterKeys)
    {
    }

    /// <summary>
    /// A box over the ring <paramref name="clusterKeys"/> returns at each use (a silo passes its <see cref="ClusterTrust"/>,
    /// which re-reads a rotated cluster.key); keys are derived again only when it returns another list.
    /// </summary>
    public SecretBox(Func<IReadOnlyList<byte[]>> clusterKeys)
    {
        ArgumentNullException.ThrowIfNull(clusterKeys);
        _clusterKeys = clusterKeys;
    }

    /// <summary>False for a box without a key (a silo run with --insecure-no-auth has no cluster key): it seals nothing.</summary>
    public bool HasKeys => _clusterKeys().Count > 0;

    /// <summary>The id of the key new values are sealed under.</summary>
    public string CurrentKeyId => Keys().Entries[0].Id;

    /// <summary>The ids of every key of the ring, current first.</summary>
    public IReadOnlyList<string> KeyIds => [.. Keys().Entries.Select(e => e.Id)];

    /// <summary>True when <paramref name="value"/> is in the sealed form (whether or not this ring opens it).</summary>
    public static bool IsSealed(string? value) => value is not null && value.StartsWith(PREFIX, StringComparison.Ordinal);

    /// <summary>The key id a sealed value names, or null when it is not in the sealed form.</summary>
    public static string? KeyIdOf(string value) =>
        IsSealed(value) && value.Length > PREFIX.Length + KEY_ID_LENGTH && value[PREFIX.Length + KEY_ID_LENGTH] == ':'
            ? value.Substring(PREFIX.Length, KEY_ID_LENGTH)
            : null;

    /// <summary>Seals <paramref name="plaintext"/> under the current key, bound to <paramref name="context"/>.</summary>
    public string Seal(string plaintext, string context)
    {
        ArgumentNullException.ThrowIfNull(plaintext);
        ArgumentNullException.ThrowIfNull(context);
        var key = Keys().Entries[0];
        var clear = Encoding.UTF8.GetBytes(plaintext);
        var box = new byte[NONCE_SIZE + clear.Length + TAG_SIZE];
        var nonce = box.AsSpan(0, NONCE_SIZE);
        RandomNumberGenerator.Fill(nonce);
        using (var aes = new AesGcm(key.Key, TAG_SIZE))
        {
            aes.Encrypt(nonce, clear, box.AsSpan(NONCE_SIZE, clear.Length), box.AsSpan(NONCE_SIZE + clear.Length), Encoding.UTF8.GetBytes(context));
        }

        CryptographicOperations.ZeroMemory(clear);
        return $"{PREFIX}{key.Id}:{Convert.ToBase64String(box)}";
    }

    /// <summary>
    /// Opens a sealed value bound to <paramref name="context"/> with the key of the ring whose id it names. False with the
    /// reason in <paramref name="problem"/> when no key has that id, the value fails its tag, or it is malformed.
    /// </summary>
    public bool TryOpen(string value, string context, out string plaintext, out UnsealProblem problem)
    {
        ArgumentNullException.ThrowIfNull(value);
        ArgumentNullException.ThrowIfNull(context);
        plaintext = string.Empty;
        if (KeyIdOf(value) is not { } id)
        {
            problem = UnsealProblem.Malformed;
            return false;
        }

        byte[] box;
        try
        {
            box = Convert.FromBase64String(value[(PREFIX.Length + KEY_ID_LENGTH + 1)..]);
        }
        catch (FormatException)
        {
            problem = UnsealProblem.Malformed;
            return false;
        }

        if (box.Length < NONCE_SIZE + TAG_SIZE)
        {
            problem = UnsealProblem.Malformed;
            return false;
        }

        var key = Array.Find(Keys().Entries, e => string.Equals(e.Id, id, StringComparison.Ordinal));
        if (key is null)
        {
            problem = UnsealProblem.KeyMismatch;
            return false;
        }

        var length = box.Length - NONCE_SIZE - TAG_SIZE;
        var clear = new byte[length];
        try
        {
            using var aes = new AesGcm(key.Key, TAG_SIZE);
            aes.Decrypt(box.AsSpan(0, NONCE_SIZE), box.AsSpan(NONCE_SIZE, length), box.AsSpan(NONCE_SIZE + length), clear, Encoding.UTF8.GetBytes(context));
        }
        catch (AuthenticationTagMismatchException)
        {
            problem = UnsealProblem.Altered;
            return false;
        }

        plaintext = Encoding.UTF8.GetString(clear);
        CryptographicOperations.ZeroMemory(clear);
        problem = UnsealProblem.None;
        return true;
    }

    private Ring Keys()
    {
        var source = _clusterKeys();
        var ring = Volatile.Read(ref _ring);
        if (ring is not null && ReferenceEquals(ring.Source, source))
        {
            return ring;
        }

        if (source.Count == 0)
        {
            throw new CredentialException("no cluster key to seal secrets with (a silo reads it from cluster.key in its credentials folder)");
        }

        ring = new Ring(source, [.. source.Select(Derive)]);
        Volatile.Write(ref _ring, ring);
        return ring;
    }

    private static Entry Derive(byte[] clusterKey)
    {
        var key = HKDF.DeriveKey(HashAlgorithmName.SHA256, clusterKey, KEY_SIZE, salt: [], info: Encoding.UTF8.GetBytes(LABEL));
        var id = Convert.ToHexStringLower(SHA256.HashData(key))[..KEY_ID_LENGTH];
        return new Entry(id, key);
    }

    private sealed record Entry(string Id, byte[] Key);

    private sealed record Ring(IReadOnlyList<byte[]> Source, Entry[] Entries);
}
