using System.Net;
using Microsoft.Extensions.Options;

namespace GrainFs.Silo.Hosting;

/// <summary>
/// Checks <see cref="GrainFsSiloOptions"/> before the silo starts: ports in range and not shared, a host name and roles
/// placement can use, IP addresses, the cluster connection string (whose value is never repeated: it may hold a
/// password) and the file it may come from, the idle timeout Orleans accepts, the allowed local roots. One failure per problem, each naming its key.
/// </summary>
public sealed class GrainFsSiloOptionsValidator : IValidateOptions<GrainFsSiloOptions>
{
    /// <summary>The longest host name or cluster id (Orleans keeps them in 150-character columns).</summary>
    public const int MAX_NAME_LENGTH = 150;

    /// <summary>The shortest idle timeout: Orleans collects idle activations once a minute and refuses a shorter age.</summary>
    public static readonly TimeSpan MIN_DIRECTORY_IDLE_TIMEOUT = TimeSpan.FromMinutes(1);

    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, GrainFsSiloOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (options.Cluster is { } cluster)
        {
            try
            {
                _ = new Npgsql.NpgsqlConnectionStringBuilder(cluster);
            }
            catch (ArgumentException e)
            {
                // The message names the bad keyword, never the value (which may hold a password).
                failures.Add($"GrainFs:Cluster: not an Npgsql connection string ({e.Message})");
            }
        }

        if (options.ClusterFile is { Length: > 0 } file)
        {
            if (!GrainFs.DataPlane.ClusterFile.TryRead(file, out var fromFile, out var fileError))
            {
                failures.Add($"GrainFs:ClusterFile: {fileError}");
            }
            else if (options.Cluster is not null && options.Cluster != fromFile)
            {
                failures.Add("GrainFs:ClusterFile: give the connection string with --cluster or --cluster-file, not both");
            }
        }

        var used = new Dictionary<int, string>();
        foreach (var (key, port, allowZero) in new[]
        {
            (nameof(options.SiloPort), options.SiloPort, false),
            (nameof(options.GatewayPort), options.GatewayPort, false),
            (nameof(options.DashboardPort), options.DashboardPort, true),
            (nameof(options.MetricsPort), options.MetricsPort, true),
            (nameof(options.HealthPort), options.HealthPort, true),
            (nameof(options.DataPort), options.DataPort, true),
        })
        {
            if (port is < 0 or > IPEndPoint.MaxPort || (port == 0 && !allowZero))
            {
                failures.Add($"GrainFs:{key} = '{port}': not a port number ({(allowZero ? "0 to turn off, or " : string.Empty)}1-65535)");
                continue;
            }

            if (port == 0)
            {
                continue;
            }

            if (used.TryGetValue(port, out var other))
            {
                failures.Add($"GrainFs:{key} = {port}: the same port as GrainFs:{other}");
            }

            used[port] = key;
        }

        if (options.Host.Length is 0 or > MAX_NAME_LENGTH || options.Host.Any(c => char.IsWhiteSpace(c) || c == ','))
        {
            failures.Add($"GrainFs:Host = '{options.Host}': a host name has no spaces or commas and at most {MAX_NAME_LENGTH} characters");
        }

        var roles = GrainFsSiloOptions.SplitRoles(options.Roles);
        var unknown = roles.Where(r => !GrainFsSiloOptions.KnownRoles.Contains(r.ToLowerInvariant())).ToList();
        foreach (var role in unknown)
        {
            failures.Add($"GrainFs:Roles: unknown role '{role}' (known: {string.Join(", ", GrainFsSiloOptions.KnownRoles)})");
        }

        if (roles.Length == 0)
        {
            failures.Add($"GrainFs:Roles = '{options.Roles}': give at least one of {string.Join(", ", GrainFsSiloOptions.KnownRoles)}");
        }

        if (options.AdvertisedAddress is { } advertised && !IPAddress.TryParse(advertised, out _))
        {
            failures.Add($"GrainFs:AdvertisedAddress = '{advertised}': not an IP address");
        }

        if (!IPAddress.TryParse(options.ListenAddress, out _))
        {
            failures.Add($"GrainFs:ListenAddress = '{options.ListenAddress}': not an IP address");
        }
        else if (options.WebNeedsCredentials && (options.DashboardPort > 0 || options.MetricsPort > 0))
        {
            if (options.WebPasswordFile is not { Length: > 0 } passwordFile)
            {
                failures.Add($"GrainFs:ListenAddress = '{options.ListenAddress}' is not a loopback address: the dashboard and metrics then ask for a password; give --web-password-file FILE (GrainFs:WebPasswordFile), listen on 127.0.0.1, or turn them off with --dashboard-port 0 --metrics-port 0");
            }
            else if (!GrainFs.DataPlane.OwnerOnlyFile.TryReadFirstLine(passwordFile, "the dashboard and metrics password", "the password on one line", out var password, out var passwordError))
            {
                failures.Add($"GrainFs:WebPasswordFile: {passwordError}");
            }
            else if (password.Length < 12)
            {
                failures.Add($"GrainFs:WebPasswordFile: the password in '{passwordFile}' has {password.Length} characters; give at least 12 (e.g. openssl rand -base64 24)");
            }
        }

        if (options.DirectoryIdleTimeout <= MIN_DIRECTORY_IDLE_TIMEOUT)
        {
            failures.Add($"GrainFs:DirectoryIdleTimeout = '{options.DirectoryIdleTimeout}': a duration longer than {MIN_DIRECTORY_IDLE_TIMEOUT} (hh:mm:ss)");
        }

        if (options.ClusterId.Length > MAX_NAME_LENGTH)
        {
            failures.Add($"GrainFs:ClusterId: at most {MAX_NAME_LENGTH} characters");
        }

        for (var i = 0; i < options.AllowLocalRoots.Count; i++)
        {
            if (options.AllowLocalRoots[i] is var root && (!Path.IsPathFullyQualified(root) || !Directory.Exists(root)))
            {
                failures.Add($"GrainFs:AllowLocalRoots:{i} = '{root}': not the absolute path of an existing folder (--allow-local-root)");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
