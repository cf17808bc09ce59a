using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace GrainFs.DataPlane.Security;

/// <summary>What an identity certificate is for; carried as the certificate's organizational unit.</summary>
public enum IdentityKind
{
    /// <summary>A silo: joins the cluster, serves the gateway and the data port, acts as any caller.</summary>
    Silo,

    /// <summary>A client that may administer the cluster (mount, unmount, free, pin, ttl, load, report, ACLs).</summary>
    Admin,

    /// <summary>A client with no cluster-wide rights: what it may read or write is granted per mount.</summary>
    Client,
}

/// <summary>Names of <see cref="IdentityKind"/>.</summary>
public static class IdentityKinds
{
    /// <summary>The organizational unit a certificate of this kind carries.</summary>
    public static string Unit(this IdentityKind kind) => kind switch
    {
        IdentityKind.Silo => "grainfs-silo",
        IdentityKind.Admin => "grainfs-admin",
        _ => "grainfs-client",
    };

    /// <summary>The file stem in a credentials folder: silo for silos, client for both client kinds.</summary>
    public static string FileStem(this IdentityKind kind) => kind == IdentityKind.Silo ? "silo" : "client";

    /// <summary>The kind a certificate's organizational unit names, if any.</summary>
    public static IdentityKind? FromUnit(string? unit) => unit switch
    {
        "grainfs-silo" => IdentityKind.Silo,
        "grainfs-admin" => IdentityKind.Admin,
        "grainfs-client" => IdentityKind.Client,
        _ => null,
    };
}

/// <summary>
/// A cluster CA: an ECDSA P-256 key and a self-signed certificate that issues silo and client certificates. Built on
/// System.Security.Cryptography only; every file it writes is mode 0600.
/// </summary>
public sealed class CertificateAuthority : IDisposable
{
    /// <summary>Default lifetime of a CA certificate.</summary>
    public static readonly TimeSpan DefaultCaLifetime = TimeSpan.FromDays(3650);

    /// <summary>Default lifetime of a silo or client certificate.</summary>
    public static readonly TimeSpan DefaultLeafLifetime = TimeSpan.FromDays(365);

    private readonly X509Certificate2 _certificate;
    private readonly ECDsa _key;

    private CertificateAuthority(X509Certificate2 certificate, ECDsa key)
    {
        _certificate = certificate;
        _key = key;
    }

    /// <summary>The CA certificate.</summary>
    public X509Certificate2 Certificate => _certificate;

    /// <summary>
    /// Creates a CA for <paramref name="clusterId"/> and writes <c>ca.crt</c> and <c>ca.key</c> into
    /// <paramref name="folder"/>; <paramref name="keepTrusted"/> are older CAs still trusted (a rotation), appended to
    /// <c>ca.crt</c> after the new one.
    /// </summary>
    public static CertificateAuthority Create(string folder, string clusterId, TimeSpan lifetime, X509Certificate2Collection? keepTrusted = null)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN=GrainFS CA {Escape(clusterId)} {DateTime.UtcNow:yyyy-MM-dd}, O=GrainFS"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        var certificate = request.CreateSelfSigned(now.AddMinutes(-5), now.Add(lifetime));
        var bundle = certificate.ExportCertificatePem() + "\n";
        foreach (var old in keepTrusted ?? [])
        {
            if (old.Thumbprint != certificate.Thumbprint)
            {
                bundle += old.ExportCertificatePem() + "\n";
            }
        }

        CredentialFolder.WritePrivate(Path.Combine(folder, CredentialFolder.CA_CERT), bundle);
        CredentialFolder.WritePrivate(Path.Combine(folder, CredentialFolder.CA_KEY), key.ExportPkcs8PrivateKeyPem() + "\n");
        return new CertificateAuthority(certificate, key);
    }

    /// <summary>Opens the CA of a folder made by <see cref="Create"/> (the first certificate of ca.crt with ca.key).</summary>
    public static CertificateAuthority Open(string folder)
    {
        var keyPath = Path.Combine(folder, CredentialFolder.CA_KEY);
        if (!File.Exists(keyPath))
        {
            throw new CredentialException($"'{keyPath}' does not exist: certificates are issued where 'grainfs certs init' made the CA");
        }

        CredentialFolder.CheckPrivate(keyPath);
        var certificate = CredentialFolder.ReadTrustedCas(folder)[0];
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(File.ReadAllText(keyPath));
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            key.Dispose();
            throw new CredentialException($"'{keyPath}' is not a PEM private key: {e.Message}");
        }

        using var mine = certificate.GetECDsaPublicKey();
        if (mine is null || !mine.ExportSubjectPublicKeyInfo().AsSpan().SequenceEqual(key.ExportSubjectPublicKeyInfo()))
        {
            key.Dispose();
            throw new CredentialException($"'{keyPath}' is not the key of the first certificate in '{Path.Combine(folder, CredentialFolder.CA_CERT)}'");
        }

        return new CertificateAuthority(certificate, key);
    }

    /// <summary>
    /// Issues a certificate of <paramref name="kind"/> for <paramref name="name"/> and writes it with its key into
    /// <paramref name="folder"/> (<c>silo.crt</c>/<c>silo.key</c> or <c>client.crt</c>/<c>client.key</c>), plus the
    /// trusted CAs. Returns the certificate.
    /// </summary>
    public X509Certificate2 Issue(string folder, IdentityKind kind, string name, TimeSpan lifetime, X509Certificate2Collection? trusted = null, DateTimeOffset? notBefore = null)
    {
        ValidateName(name);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={Escape(name)}, OU={kind.Unit()}, O=GrainFS"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        var usages = new OidCollection { new("1.3.6.1.5.5.7.3.2") }; // client authentication
        if (kind == IdentityKind.Silo)
        {
            usages.Add(new Oid("1.3.6.1.5.5.7.3.1")); // server authentication

            // The name as a subjectAltName too: TLS clients other than GrainFS's (Prometheus scraping /metrics, a browser
            // on the dashboard) match the server name there, never against the common name.
            // A name that is neither an address nor a host name (a space in it) is left without one.
            var alternative = new SubjectAlternativeNameBuilder();
            if (System.Net.IPAddress.TryParse(name, out var address))
            {
                alternative.AddIpAddress(address);
                request.CertificateExtensions.Add(alternative.Build());
            }
            else if (Uri.CheckHostName(name) == UriHostNameType.Dns)
            {
                alternative.AddDnsName(name.ToLowerInvariant());
                request.CertificateExtensions.Add(alternative.Build());
            }
        }

        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(usages, false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_certificate, true, false));
        var start = notBefore ?? DateTimeOffset.UtcNow.AddMinutes(-5);
        var notAfter = start.Add(lifetime) > _certificate.NotAfter ? new DateTimeOffset(_certificate.NotAfter) : start.Add(lifetime);
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f;
        using var issued = request.Create(_certificate.SubjectName, X509SignatureGenerator.CreateForECDsa(_key), start < _certificate.NotBefore ? new DateTimeOffset(_certificate.NotBefore) : start, notAfter, serial);
        using var withKey = issued.CopyWithPrivateKey(key);
        CredentialFolder.WritePrivate(CredentialFolder.CertificatePath(folder, kind), withKey.ExportCertificatePem() + "\n");
        CredentialFolder.WritePrivate(CredentialFolder.KeyPath(folder, kind), key.ExportPkcs8PrivateKeyPem() + "\n");
        var caPath = Path.Combine(folder, CredentialFolder.CA_CERT);
        if (trusted is not null)
        {
            CredentialFolder.WritePrivate(caPath, string.Concat(trusted.Select(c => c.ExportCertificatePem() + "\n")));
        }
        else if (!File.Exists(caPath))
        {
            CredentialFolder.WritePrivate(caPath, _certificate.ExportCertificatePem() + "\n");
        }

        return X509CertificateLoader.LoadCertificate(issued.RawData);
    }

    /// <summary>Refuses a name that cannot be an identity (empty, '*', commas, control characters, over 64 characters).</summary>
    public static void ValidateName(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > 64 || name == "*" || name.Any(c => char.IsControl(c) || c is ',' or '=' or '+' or '"' or '\\' or '<' or '>' or ';' or ':'))
        {
            throw new CredentialException($"identity name '{name}' is not allowed: 1-64 characters, none of , = + \" \\ < > ; : and not '*'");
        }
    }

    private static string Escape(string value) => value.Replace(",", "_", StringComparison.Ordinal).Replace("=", "_", StringComparison.Ordinal);

    public void Dispose()
    {
        _certificate.Dispose();
        _key.Dispose();
    }
}
