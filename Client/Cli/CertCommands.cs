using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using GrainFs.DataPlane.Security;

namespace GrainFs.Cli;

/// <summary>
/// `grainfs certs`: the cluster CA and the credentials folders of silos and clients, made here with
/// System.Security.Cryptography (no external tools), every file mode 0600. These commands touch only local files.
/// </summary>
internal static class CertCommands
{
    public static Command Build()
    {
        var certs = new Command("certs", "make a cluster CA, issue silo and client credentials, rotate them (local files only, mode 0600)");

        var initFolder = Commands.Positional("folder", "the CA folder to create (keep it on the admin's machine)");
        var clusterId = Commands.Valued("--cluster-id", "ID", "the cluster id the CA is for (default grainfs)");
        var caDays = Commands.Valued("--days", "N", "CA lifetime in days (default 3650)");
        var init = new Command("init", "create a cluster CA (ca.crt, ca.key) and the silos' cluster key (cluster.key)") { initFolder, clusterId, caDays };
        init.SetAction(parse => Init(parse.GetValue(initFolder)!, parse.GetValue(clusterId) ?? "grainfs", Days(parse.GetValue(caDays), CertificateAuthority.DefaultCaLifetime)));
        certs.Add(init);

        var issueCa = Commands.Positional("ca-folder", "the CA folder made by 'certs init'");
        var silo = Commands.Valued("--silo", "NAME", "issue a silo identity of this name");
        var client = Commands.Valued("--client", "NAME", "issue a client identity of this name (what readers=/writers= grant)");
        var admin = Commands.Switch("--admin", "the client identity is an admin (mount, unmount, free, pin, ttl, load, report, acl)");
        var output = Commands.Valued("--out", "FOLDER", "the credentials folder to write (ca.crt plus the identity, and cluster.key for a silo)");
        var days = Commands.Valued("--days", "N", "lifetime in days (default 365)");
        var issue = new Command("issue", "issue a silo or client credentials folder, ready to copy to that host (--credentials FOLDER there)") { issueCa, silo, client, admin, output, days };
        issue.SetAction(parse => Issue(parse.GetValue(issueCa)!, parse.GetValue(silo), parse.GetValue(client), parse.GetValue(admin), parse.GetValue(output), Days(parse.GetValue(days), CertificateAuthority.DefaultLeafLifetime)));
        certs.Add(issue);

        var rotateCa = Commands.Positional("ca-folder", "the CA folder made by 'certs init'");
        var rotate = new Command("rotate", "start a rotation: a new CA and a new cluster key become current, the old ones stay accepted; then re-issue every folder and copy them out") { rotateCa, caDays };
        rotate.SetAction(parse => Rotate(parse.GetValue(rotateCa)!, Days(parse.GetValue(caDays), CertificateAuthority.DefaultCaLifetime)));
        certs.Add(rotate);

        var retireCa = Commands.Positional("ca-folder", "the CA folder");
        var retire = new Command("retire", "end a rotation: only the current CA and cluster key stay (re-issue and copy the folders out again afterwards)") { retireCa };
        retire.SetAction(parse => Retire(parse.GetValue(retireCa)!));
        certs.Add(retire);

        var showFolder = Commands.Positional("folder", "a CA or credentials folder");
        var show = new Command("show", "list the certificates of a folder: subject, kind, validity") { showFolder };
        show.SetAction(parse => Show(parse.GetValue(showFolder)!));
        certs.Add(show);
        return certs;
    }

    private static int Init(string folder, string clusterId, TimeSpan lifetime)
    {
        var full = Path.GetFullPath(CredentialFolder.ExpandHome(folder));
        if (File.Exists(Path.Combine(full, CredentialFolder.CA_KEY)))
        {
            throw new UsageException($"'{full}' already holds a CA (ca.key); use 'grainfs certs rotate {folder}' to replace it");
        }

        return Run(() =>
        {
            CredentialFolder.CreatePrivateDirectory(full);
            using var ca = CertificateAuthority.Create(full, clusterId, lifetime);
            CredentialFolder.WriteClusterKeys(full, [CredentialFolder.NewClusterKey()]);
            Console.WriteLine($"Created the CA of cluster '{clusterId}' in {full} (ca.crt, ca.key, cluster.key), valid until {ca.Certificate.NotAfter:yyyy-MM-dd}.");
            Console.WriteLine($"Next: grainfs certs issue {folder} --silo NAME --out DIR   and   grainfs certs issue {folder} --client NAME [--admin] --out DIR");
        });
    }

    private static int Issue(string caFolder, string? silo, string? client, bool admin, string? output, TimeSpan lifetime)
    {
        if ((silo is null) == (client is null))
        {
            throw new UsageException("give exactly one of --silo NAME or --client NAME");
        }

        if (admin && silo is not null)
        {
            throw new UsageException("--admin applies to --client identities (a silo may do everything already)");
        }

        if (output is null)
        {
            throw new UsageException("--out FOLDER is required: the credentials folder to write");
        }

        var kind = silo is not null ? IdentityKind.Silo : admin ? IdentityKind.Admin : IdentityKind.Client;
        var name = silo ?? client!;
        var ca = Path.GetFullPath(CredentialFolder.ExpandHome(caFolder));
        var target = Path.GetFullPath(CredentialFolder.ExpandHome(output));
        return Run(() =>
        {
            using var authority = CertificateAuthority.Open(ca);
            CredentialFolder.CreatePrivateDirectory(target);
            var trusted = CredentialFolder.ReadTrustedCas(ca);
            using var issued = authority.Issue(target, kind, name, lifetime, trusted);
            if (kind == IdentityKind.Silo && !Path.GetFullPath(ca).Equals(target, StringComparison.Ordinal))
            {
                CredentialFolder.WriteClusterKeys(target, CredentialFolder.ReadClusterKeys(ca));
            }

            Console.WriteLine($"Issued {kind.Unit()} '{name}' into {target}, valid until {issued.NotAfter:yyyy-MM-dd}; copy the folder to its host and pass --credentials {target} (or GRAINFS_CREDENTIALS).");
        });
    }

    private static int Rotate(string caFolder, TimeSpan lifetime)
    {
        var ca = Path.GetFullPath(CredentialFolder.ExpandHome(caFolder));
        return Run(() =>
        {
            var trusted = CredentialFolder.ReadTrustedCas(ca);
            using (CertificateAuthority.Open(ca))
            {
                // Opening first proves this is a CA folder before anything is replaced.
            }

            var subject = trusted[0].Subject;
            var clusterId = subject.Contains("GrainFS CA ", StringComparison.Ordinal) ? subject.Split("GrainFS CA ")[1].Split(' ')[0] : "grainfs";
            using var next = CertificateAuthority.Create(ca, clusterId, lifetime, trusted);
            CredentialFolder.WriteClusterKeys(ca, [CredentialFolder.NewClusterKey(), .. CredentialFolder.ReadClusterKeys(ca)]);
            Console.WriteLine($"A new CA and cluster key are current in {ca}; the old ones stay accepted.");
            Console.WriteLine("Re-issue every silo and client folder (grainfs certs issue), copy them out (nodes pick them up within seconds, no restart), then run: grainfs certs retire " + caFolder);
        });
    }

    private static int Retire(string caFolder)
    {
        var ca = Path.GetFullPath(CredentialFolder.ExpandHome(caFolder));
        return Run(() =>
        {
            var trusted = CredentialFolder.ReadTrustedCas(ca);
            var keys = CredentialFolder.ReadClusterKeys(ca);
            CredentialFolder.WritePrivate(Path.Combine(ca, CredentialFolder.CA_CERT), trusted[0].ExportCertificatePem() + "\n");
            CredentialFolder.WriteClusterKeys(ca, [keys[0]]);
            Console.WriteLine($"Retired {trusted.Count - 1} old CA(s) and {keys.Length - 1} old cluster key(s) in {ca}; re-issue and copy out the folders so that nodes stop accepting them.");
        });
    }

    private static int Show(string folder)
    {
        var full = Path.GetFullPath(CredentialFolder.ExpandHome(folder));
        return Run(() =>
        {
            foreach (var file in new[] { CredentialFolder.CA_CERT, "silo.crt", "client.crt" })
            {
                var path = Path.Combine(full, file);
                if (!File.Exists(path))
                {
                    continue;
                }

                var all = new X509Certificate2Collection();
                all.ImportFromPemFile(path);
                foreach (var certificate in all)
                {
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{file}: {certificate.Subject}  valid {certificate.NotBefore:yyyy-MM-dd} to {certificate.NotAfter:yyyy-MM-dd}  sha256 {certificate.GetCertHashString(System.Security.Cryptography.HashAlgorithmName.SHA256)[..16]}"));
                }
            }

            if (File.Exists(Path.Combine(full, CredentialFolder.CLUSTER_KEY)))
            {
                Console.WriteLine($"{CredentialFolder.CLUSTER_KEY}: {CredentialFolder.ReadClusterKeys(full).Length} key(s)");
            }
        });
    }

    private static int Run(Action action)
    {
        try
        {
            action();
            return 0;
        }
        catch (Exception e) when (e is CredentialException or IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            Console.Error.WriteLine($"grainfs: {e.Message}");
            return 1;
        }
    }

    private static TimeSpan Days(string? text, TimeSpan fallback)
    {
        if (text is null)
        {
            return fallback;
        }

        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var days) && days is > 0 and <= 36500
            ? TimeSpan.FromDays(days)
            : throw new UsageException($"--days '{text}': expected a number of days from 1 to 36500");
    }
}
