using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace GrainFs.Silo.Hosting;

/// <summary>
/// Fills in the defaults of <see cref="GrainFsSiloOptions"/> that depend on the machine or on other values, after
/// binding and before validation: the cluster's connection string from the cluster file, the state folder as a full path (<c>~/</c> is the home folder), the advertised
/// address (127.0.0.1 for the embedded silo, else the first non-loopback IPv4 that is up), the silo name
/// (<c>&lt;host&gt;-&lt;silo-port&gt;</c>) and the allowed local roots with their symbolic links resolved.
/// </summary>
public sealed class GrainFsSiloOptionsSetup : IPostConfigureOptions<GrainFsSiloOptions>
{
    /// <inheritdoc />
    public void PostConfigure(string? name, GrainFsSiloOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        options.Data = Path.GetFullPath(options.Data.StartsWith("~/", StringComparison.Ordinal) ? Path.Combine(home, options.Data[2..]) : options.Data);
        if (options.Cluster is null && options.ClusterFile is { Length: > 0 } file && GrainFs.DataPlane.ClusterFile.TryRead(file, out var connection, out _))
        {
            // A file that cannot be used is the validator's to report.
            options.Cluster = connection;
        }

        options.AdvertisedAddress ??= (options.IsCluster ? FirstNonLoopbackAddress() : null)?.ToString() ?? IPAddress.Loopback.ToString();
        if (options.SiloName.Length == 0)
        {
            options.SiloName = $"{options.Host}-{options.SiloPort}";
        }

        // Compared with mount folders as realpath(3) gives them, so kept the same way; one that does not resolve is the validator's.
        options.AllowLocalRoots = [.. options.AllowLocalRoots.Select(r => r.Trim()).Select(r => Path.IsPathFullyQualified(r) && Directory.Exists(r) ? GrainFs.Storage.UnderStorage.RealPath.ResolveOrFull(r) : r).Distinct(StringComparer.Ordinal)];
    }

    private static IPAddress? FirstNonLoopbackAddress()
    {
        foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
        {
            if (nic.OperationalStatus != OperationalStatus.Up || nic.NetworkInterfaceType == NetworkInterfaceType.Loopback)
            {
                continue;
            }

            foreach (var address in nic.GetIPProperties().UnicastAddresses)
            {
                if (address.Address.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(address.Address))
                {
                    return address.Address;
                }
            }
        }

        return null;
    }
}
