using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace GrainFs.DataPlane.Security;

/// <summary>An authenticated caller: the name and kind its certificate carries.</summary>
/// <param name="Name">The certificate's common name.</param>
/// <param name="Kind">Silo, admin client or client.</param>
public sealed record Principal(string Name, IdentityKind Kind)
{
    /// <summary>True for silos and admin clients.</summary>
    public bool IsAdmin => Kind is IdentityKind.Admin or IdentityKind.Silo;

    /// <inheritdoc />
    public override string ToString() => $"{Name} ({Kind.Unit()})";
}

/// <summary>
/// What one node trusts and presents: the cluster CAs, its own identity certificate and, on a silo, the cluster keys.
/// Files are re-read when they change (checked at most every few seconds, on use), so a rotated CA bundle or a renewed
/// certificate is picked up by new connections without a restart; connections already open stay.
/// </summary>
public sealed class ClusterTrust
{
    private static readonly TimeSpan RecheckInterval = TimeSpan.FromSeconds(5);
    private readonly Lock _gate = new();
    private readonly IdentityKind _kind;
    private readonly bool _needsClusterKey;
    private Snapshot _snapshot;
    private long _checkedTicks;

    private ClusterTrust(string folder, IdentityKind kind, bool needsClusterKey)
    {
        Folder = folder;
        _kind = kind;
        _needsClusterKey = needsClusterKey;
        _snapshot = Load();
        _checkedTicks = Environment.TickCount64;
    }

    /// <summary>The credentials folder.</summary>
    public string Folder { get; }

    /// <summary>
    /// Opens the credentials of a silo (<paramref name="kind"/> Silo: certificate, CAs and cluster key) or a client
    /// from <paramref name="configured"/>, or from the cluster's default folder (created on first use). Throws
    /// <see cref="CredentialException"/> naming the missing or unsafe file.
    /// </summary>
    public static ClusterTrust Open(string? configured, string clusterId, IdentityKind kind)
    {
        var folder = CredentialFolder.Resolve(configured, clusterId);
        return new ClusterTrust(folder, kind, kind == IdentityKind.Silo);
    }

    /// <summary>This node's certificate (with its private key).</summary>
    public X509Certificate2 Certificate => Current.Certificate;

    /// <summary>Who this node is.</summary>
    public Principal Self => Current.Self;

    /// <summary>The cluster keys, current first (silos only; empty on a client).</summary>
    public IReadOnlyList<byte[]> ClusterKeys => Current.ClusterKeys;

    /// <summary>
    /// Checks a peer's certificate: it chains to a trusted cluster CA, is within its validity period, and is of one of
    /// <paramref name="allowed"/> kinds. Returns the peer, or null with the reason in <paramref name="reason"/>.
    /// Host names are not checked: an identity is its CA-issued certificate, wherever it connects from.
    /// </summary>
    public Principal? Validate(X509Certificate? certificate, IdentityKind[] allowed, out string reason)
    {
        if (certificate is null)
        {
            reason = "no certificate presented";
            return null;
        }

        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        var principal = Validate(leaf, Current.Trusted, out reason);
        if (principal is null)
        {
            reason = $"certificate '{leaf.Subject}' is not valid for this cluster: {(reason.Length == 0 ? "untrusted" : reason)}";
            return null;
        }

        if (Array.IndexOf(allowed, principal.Kind) < 0)
        {
            reason = $"certificate '{leaf.Subject}' is a {principal.Kind.Unit()} identity; this endpoint takes {string.Join(" or ", allowed.Select(k => k.Unit()))}";
            return null;
        }

        return principal;
    }

    /// <summary>A TLS certificate-validation callback that accepts peers of <paramref name="allowed"/> kinds (chain errors are ours to judge).</summary>
    public RemoteCertificateValidationCallback Callback(IdentityKind[] allowed, Action<string>? onRefused = null) =>
        (_, certificate, _, _) =>
        {
            if (Validate(certificate, allowed, out var reason) is not null)
            {
                return true;
            }

            onRefused?.Invoke(reason);
            return false;
        };

    private Snapshot Current
    {
        get
        {
            var now = Environment.TickCount64;
            if (now - Volatile.Read(ref _checkedTicks) < RecheckInterval.TotalMilliseconds)
            {
                return _snapshot;
            }

            lock (_gate)
            {
                if (now - _checkedTicks >= RecheckInterval.TotalMilliseconds)
                {
                    _checkedTicks = now;
                    if (Stamp() != _snapshot.Stamp)
                    {
                        try
                        {
                            _snapshot = Load();
                        }
                        catch (CredentialException)
                        {
                            // A file caught half-replaced: keep what was loaded; the next check tries again.
                        }
                    }
                }

                return _snapshot;
            }
        }
    }

    private string Stamp()
    {
        var files = new[]
        {
            Path.Combine(Folder, CredentialFolder.CA_CERT),
            CredentialFolder.CertificatePath(Folder, _kind),
            CredentialFolder.KeyPath(Folder, _kind),
            Path.Combine(Folder, CredentialFolder.CLUSTER_KEY),
        };
        return string.Join('|', files.Select(f => File.Exists(f) ? File.GetLastWriteTimeUtc(f).Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture) : "-"));
    }

    private Snapshot Load()
    {
        var stamp = Stamp();
        var trusted = CredentialFolder.ReadTrustedCas(Folder);
        var certificate = CredentialFolder.ReadIdentity(Folder, _kind)
            ?? (_kind == IdentityKind.Client ? CredentialFolder.ReadIdentity(Folder, IdentityKind.Admin) : null)
            ?? throw new CredentialException($"'{CredentialFolder.CertificatePath(Folder, _kind)}' and '{CredentialFolder.KeyPath(Folder, _kind)}' do not exist: issue them with 'grainfs certs issue'");
        var keys = _needsClusterKey ? CredentialFolder.ReadClusterKeys(Folder) : [];
        var self = Validate(certificate, trusted, out var reason) ?? throw new CredentialException($"'{CredentialFolder.CertificatePath(Folder, _kind)}': {reason}");
        if (_kind == IdentityKind.Silo && self.Kind != IdentityKind.Silo)
        {
            throw new CredentialException($"'{CredentialFolder.CertificatePath(Folder, _kind)}' is a {self.Kind.Unit()} certificate; a silo needs a grainfs-silo one");
        }

        return new Snapshot(stamp, trusted, certificate, self, keys);
    }

    private static Principal? Validate(X509Certificate2 certificate, X509Certificate2Collection trusted, out string reason)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(trusted);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (!chain.Build(certificate))
        {
            reason = string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Distinct());
            return null;
        }

        var unit = certificate.SubjectName.EnumerateRelativeDistinguishedNames()
            .FirstOrDefault(n => n.GetSingleElementType().Value == "2.5.4.11")?.GetSingleElementValue();
        if (IdentityKinds.FromUnit(unit) is not { } kind)
        {
            reason = $"'{certificate.Subject}' is not a GrainFS identity (no OU=grainfs-silo/admin/client)";
            return null;
        }

        reason = string.Empty;
        return new Principal(certificate.GetNameInfo(X509NameType.SimpleName, false), kind);
    }

    private sealed record Snapshot(string Stamp, X509Certificate2Collection Trusted, X509Certificate2 Certificate, Principal Self, byte[][] ClusterKeys);
}

/// <summary>Every kind of identity, and the subsets endpoints accept.</summary>
public static class Accepts
{
    /// <summary>Silo-to-silo connections: silos only.</summary>
    public static readonly IdentityKind[] Silos = [IdentityKind.Silo];

    /// <summary>Gateway and data-port connections: any GrainFS identity of the cluster.</summary>
    public static readonly IdentityKind[] Anyone = [IdentityKind.Silo, IdentityKind.Admin, IdentityKind.Client];
}

/// <summary>Signs and checks data with an identity's private key (the login proof).</summary>
public static class IdentityProof
{
    /// <summary>Signs <paramref name="data"/> with <paramref name="certificate"/>'s ECDSA key.</summary>
    public static byte[] Sign(X509Certificate2 certificate, ReadOnlySpan<byte> data)
    {
        using var key = certificate.GetECDsaPrivateKey() ?? throw new CredentialException($"certificate '{certificate.Subject}' has no ECDSA private key");
        return key.SignData(data, HashAlgorithmName.SHA256);
    }

    /// <summary>True when <paramref name="signature"/> is <paramref name="certificate"/>'s key signing <paramref name="data"/>.</summary>
    public static bool Verify(X509Certificate2 certificate, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        using var key = certificate.GetECDsaPublicKey();
        return key is not null && key.VerifyData(data, signature, HashAlgorithmName.SHA256);
    }
}
