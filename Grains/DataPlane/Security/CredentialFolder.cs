using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace GrainFs.DataPlane.Security;

/// <summary>
/// A folder of GrainFS credentials, as <c>grainfs certs</c> writes it and silos and clients read it. Every file is PEM
/// (or base64 lines for the cluster key), mode 0600, in a folder of mode 0700:
/// <list type="bullet">
/// <item><c>ca.crt</c>: the cluster CAs this node trusts (one or more certificates: during a rotation the new and the old).</item>
/// <item><c>ca.key</c>: the current CA's private key; only where certificates are issued (the admin's machine).</item>
/// <item><c>silo.crt</c>/<c>silo.key</c>: a silo's identity (silo-to-silo and gateway TLS, the data port).</item>
/// <item><c>client.crt</c>/<c>client.key</c>: a client's identity (CLI, SDK, FUSE daemon).</item>
/// <item><c>cluster.key</c>: the silos' shared secret (session tokens, sealed mount secrets, block names); silos only.
/// One base64 key per line, the first current, the rest still accepted (rotation).</item>
/// </list>
/// The embedded default (<see cref="DefaultPath"/>: <c>~/.grainfs/&lt;cluster-id&gt;</c>) is created on first use with a CA,
/// a silo identity, an admin client identity and a cluster key, readable by its user only: every process of that user
/// on that host can join and use the cluster, and no other local user can.
/// </summary>
public static class CredentialFolder
{
    /// <summary>Trusted CA certificates.</summary>
    public const string CA_CERT = "ca.crt";

    /// <summary>The issuing CA's private key.</summary>
    public const string CA_KEY = "ca.key";

    /// <summary>The silos' shared secret.</summary>
    public const string CLUSTER_KEY = "cluster.key";

    /// <summary>Where a cluster's default credentials live for the current user.</summary>
    public static string DefaultPath(string clusterId)
    {
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return Path.Combine(home, ".grainfs", "credentials", SafeName(clusterId));
    }

    /// <summary>The certificate file of an identity kind in a folder.</summary>
    public static string CertificatePath(string folder, IdentityKind kind) => Path.Combine(folder, kind.FileStem() + ".crt");

    /// <summary>The private key file of an identity kind in a folder.</summary>
    public static string KeyPath(string folder, IdentityKind kind) => Path.Combine(folder, kind.FileStem() + ".key");

    /// <summary>
    /// The folder to use: <paramref name="configured"/> when given (it must exist), else the cluster's default folder,
    /// created with a new CA, silo and admin identities and a cluster key when it does not exist yet. Several processes
    /// starting at once agree on one set: the folder is built under a temporary name and renamed into place.
    /// </summary>
    public static string Resolve(string? configured, string clusterId)
    {
        if (!string.IsNullOrEmpty(configured))
        {
            var full = Path.GetFullPath(ExpandHome(configured));
            if (!Directory.Exists(full))
            {
                throw new CredentialException($"credentials folder '{full}' does not exist (create one with 'grainfs certs init')");
            }

            return full;
        }

        var folder = DefaultPath(clusterId);
        if (Directory.Exists(folder))
        {
            return folder;
        }

        var parent = Path.GetDirectoryName(folder)!;
        CreatePrivateDirectory(Path.GetDirectoryName(parent)!);
        CreatePrivateDirectory(parent);
        var staging = Path.Combine(parent, $".new-{Environment.ProcessId}-{Guid.NewGuid():N}");
        CreatePrivateDirectory(staging);
        try
        {
            var ca = CertificateAuthority.Create(staging, clusterId, CertificateAuthority.DefaultCaLifetime);
            ca.Issue(staging, IdentityKind.Silo, "local-silo", CertificateAuthority.DefaultLeafLifetime);
            ca.Issue(staging, IdentityKind.Admin, Environment.UserName, CertificateAuthority.DefaultLeafLifetime);
            WriteClusterKey(staging, [NewClusterKey()]);
            try
            {
                Directory.Move(staging, folder);
            }
            catch (IOException) when (Directory.Exists(folder))
            {
                // Another process of this user created it first: use theirs.
                Directory.Delete(staging, recursive: true);
            }
        }
        catch
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }

            throw;
        }

        return folder;
    }

    /// <summary>A new random 256-bit cluster key.</summary>
    public static byte[] NewClusterKey() => RandomNumberGenerator.GetBytes(32);

    /// <summary>Reads the cluster keys (current first); throws <see cref="CredentialException"/> naming the file when absent or malformed.</summary>
    public static byte[][] ReadClusterKeys(string folder)
    {
        var path = Path.Combine(folder, CLUSTER_KEY);
        if (!File.Exists(path))
        {
            throw new CredentialException($"'{path}' does not exist: a silo needs its cluster's key (copy it from the folder 'grainfs certs init' made)");
        }

        CheckPrivate(path);
        var keys = new List<byte[]>();
        foreach (var line in File.ReadAllLines(path))
        {
            var text = line.Trim();
            if (text.Length == 0 || text[0] == '#')
            {
                continue;
            }

            byte[] key;
            try
            {
                key = Convert.FromBase64String(text);
            }
            catch (FormatException)
            {
                throw new CredentialException($"'{path}': a line is not base64 (each line is one key)");
            }

            if (key.Length < 32)
            {
                throw new CredentialException($"'{path}': a key is {key.Length} bytes, want at least 32");
            }

            keys.Add(key);
        }

        return keys.Count == 0 ? throw new CredentialException($"'{path}' holds no key") : [.. keys];
    }

    /// <summary>Writes the cluster keys, current first, mode 0600.</summary>
    public static void WriteClusterKeys(string folder, IEnumerable<byte[]> keys) => WriteClusterKey(folder, keys);

    private static void WriteClusterKey(string folder, IEnumerable<byte[]> keys)
    {
        var text = new StringBuilder("# GrainFS cluster key: the first line is current, later lines are still accepted\n");
        foreach (var key in keys)
        {
            text.Append(Convert.ToBase64String(key)).Append('\n');
        }

        WritePrivate(Path.Combine(folder, CLUSTER_KEY), text.ToString());
    }

    /// <summary>Reads the trusted CA certificates; throws <see cref="CredentialException"/> naming the file.</summary>
    public static X509Certificate2Collection ReadTrustedCas(string folder)
    {
        var path = Path.Combine(folder, CA_CERT);
        if (!File.Exists(path))
        {
            throw new CredentialException($"'{path}' does not exist: every node needs its cluster's CA certificate");
        }

        var all = new X509Certificate2Collection();
        try
        {
            all.ImportFromPemFile(path);
        }
        catch (CryptographicException e)
        {
            throw new CredentialException($"'{path}' is not a PEM certificate bundle: {e.Message}");
        }

        return all.Count == 0 ? throw new CredentialException($"'{path}' holds no certificate") : all;
    }

    /// <summary>Reads the identity of <paramref name="kind"/> (the certificate with its private key); null when the folder has none.</summary>
    public static X509Certificate2? ReadIdentity(string folder, IdentityKind kind)
    {
        var cert = CertificatePath(folder, kind);
        var key = KeyPath(folder, kind);
        if (!File.Exists(cert) || !File.Exists(key))
        {
            return null;
        }

        CheckPrivate(key);
        try
        {
            using var pem = X509Certificate2.CreateFromPemFile(cert, key);
            // Linux TLS wants a certificate whose key is not ephemeral: round-trip through PKCS#12.
            return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
        catch (CryptographicException e)
        {
            throw new CredentialException($"'{cert}' with '{key}' is not a certificate and its key: {e.Message}");
        }
    }

    /// <summary>Writes a file only its owner can read or write (mode 0600), replacing it atomically.</summary>
    public static void WritePrivate(string path, string contents)
    {
        var temporary = path + ".tmp-" + Guid.NewGuid().ToString("N");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(temporary, options))
        {
            stream.Write(Encoding.UTF8.GetBytes(contents));
            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>Creates a folder only its owner can enter (mode 0700), or tightens an existing one of the same owner.</summary>
    public static void CreatePrivateDirectory(string path)
    {
        if (Directory.Exists(path))
        {
            return;
        }

        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
        }
        else
        {
            Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    /// <summary>Refuses a secret file that other users may read or write.</summary>
    public static void CheckPrivate(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var mode = File.GetUnixFileMode(path);
        if ((mode & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0)
        {
            throw new CredentialException($"'{path}' is readable or writable by other users (mode {Convert.ToString((int)mode, 8)}); make it 0600");
        }
    }

    /// <summary>Expands a leading <c>~/</c> to the user's home folder.</summary>
    public static string ExpandHome(string path) =>
        path == "~" || path.StartsWith("~/", StringComparison.Ordinal)
            ? Path.Join(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), path[1..])
            : path;

    private static string SafeName(string clusterId)
    {
        var name = new StringBuilder(clusterId.Length);
        foreach (var c in clusterId)
        {
            name.Append(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_');
        }

        return name.Length == 0 || name.ToString() is "." or ".." ? "_" : name.ToString();
    }
}

/// <summary>A credential is missing, malformed or unsafe; the message names the file.</summary>
public sealed class CredentialException(string message) : Exception(message);
