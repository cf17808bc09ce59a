using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;

namespace GrainFs.Client;

/// <summary>
/// The connection to a GrainFS cluster and its hosting: an Orleans client host for the embedded localhost silo or a
/// PostgreSQL cluster, started with a bounded retry, or a grain factory someone else owns (a test cluster).
/// </summary>
internal sealed class ClusterConnection : IAsyncDisposable
{
    private readonly IHost? _host;

    private ClusterConnection(IGrainFactory grains, IHost? host, ILoggerFactory? loggers, GrainFs.DataPlane.Security.ClusterTrust? trust = null)
    {
        Grains = grains;
        _host = host;
        Loggers = loggers;
        Trust = trust;
    }

    /// <summary>The credentials this connection logged in with (null for a grain factory someone else owns).</summary>
    public GrainFs.DataPlane.Security.ClusterTrust? Trust { get; }

    public IGrainFactory Grains { get; }

    public ILoggerFactory? Loggers { get; }

    /// <summary>True when this connection hosts its own client (and the SDK runs its background refreshes).</summary>
    public bool Owned => _host is not null;

    public static ClusterConnection Over(IGrainFactory grains) => new(grains, null, null);

    /// <summary>Connects; throws <see cref="GrainFsConnectException"/> with a one-line reason when the cluster cannot be reached in time.</summary>
    public static async Task<ClusterConnection> ConnectAsync(GrainFsClientOptions options, ILoggerFactory? loggerFactory, CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        if (loggerFactory is not null)
        {
            builder.Services.AddSingleton(loggerFactory);
        }

        var deadline = Stopwatch.StartNew();
        var attempts = 0;

        ClientSession? session = null;
        try
        {
            session = options.InsecureNoAuth ? null : new ClientSession(GrainFs.DataPlane.Security.ClusterTrust.Open(options.Credentials, options.ClusterId, GrainFs.DataPlane.Security.IdentityKind.Client), options.ClusterId);
        }
        catch (GrainFs.DataPlane.Security.CredentialException e)
        {
            throw new GrainFsConnectException($"credentials refused: {e.Message}", e);
        }

        builder.UseOrleansClient(client =>
        {
            if (session is not null)
            {
                client.UseGrainFsSecurity(session);
            }

            client.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = options.ClusterId;
                o.ServiceId = options.ClusterId;
            });
            if (options.GatewayEndPoints() is { Length: > 0 } gateways)
            {
                // Gateways named: found without the database, so this client needs no database credentials.
                client.UseStaticClustering(gateways);
            }
            else if (options.ClusterConnectionString() is { } cluster)
            {
                client.UseAdoNetClustering(o =>
                {
                    o.Invariant = "Npgsql";
                    o.ConnectionString = cluster;
                });
                client.Configure<GatewayOptions>(o => o.GatewayListRefreshPeriod = TimeSpan.FromSeconds(5));
            }
            else
            {
                client.UseLocalhostClustering(options.GatewayPort, serviceId: options.ClusterId, clusterId: options.ClusterId);
            }

            client.UseConnectionRetryFilter(async (failure, ct) =>
            {
                attempts++;
                if (deadline.Elapsed >= options.ConnectTimeout || session?.LastRefusal is not null || Refused(failure) is not null)
                {
                    return false;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 100 * attempts)), ct).ConfigureAwait(false);
                return true;
            });
        });

        var host = builder.Build();
        try
        {
            await host.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            host.Dispose();
            var where = options.Gateways is { Length: > 0 } named ? $"the cluster '{options.ClusterId}' at the gateways {named}"
                : options.ClusterConnectionString() is not { } connection ? string.Create(CultureInfo.InvariantCulture, $"the embedded silo at 127.0.0.1:{options.GatewayPort}")
                : $"the cluster '{options.ClusterId}' in {DescribeConnection(connection)}";
            if ((session?.LastRefusal ?? Refused(e)) is { } refusal)
            {
                throw new GrainFsConnectException($"{where} refused this client: {refusal}", e);
            }

            throw new GrainFsConnectException($"cannot reach {where} within {options.ConnectTimeout.TotalSeconds:0} s: {Innermost(e).Message}", e);
        }

        if (session is null)
        {
            return new ClusterConnection(host.Services.GetRequiredService<IClusterClient>(), host, loggerFactory ?? host.Services.GetService<ILoggerFactory>());
        }

        // Log in now, so that a refused identity fails here with its reason rather than on the first call. A login the
        // cluster could not deliver or answer (the silo holding the auth grain just died) is tried again until the
        // connect timeout.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await session.TokenAsync(host.Services.GetRequiredService<IClusterClient>()).ConfigureAwait(false);
                break;
            }
            catch (GrainFsAccessDeniedException e)
            {
                host.Dispose();
                throw new GrainFsConnectException($"the cluster refused this client's credentials ({session.Trust.Folder}): {e.Message}", e);
            }
            catch (Exception e) when (e is OrleansMessageRejectionException or SiloUnavailableException or TimeoutException)
            {
                if (deadline.Elapsed + TimeSpan.FromMilliseconds(250 * attempt) > options.ConnectTimeout)
                {
                    host.Dispose();
                    throw new GrainFsConnectException($"connected, but the login was not answered within {options.ConnectTimeout.TotalSeconds:0} s: {e.Message.Split('\n')[0]}", e);
                }

                await Task.Delay(TimeSpan.FromMilliseconds(250 * attempt), cancellationToken).ConfigureAwait(false);
            }
        }

        return new ClusterConnection(host.Services.GetRequiredService<IClusterClient>(), host, loggerFactory ?? host.Services.GetService<ILoggerFactory>(), session.Trust);
    }

    // A TLS handshake the silo aborted: the client's certificate is not one the cluster accepts.
    private static string? Refused(Exception? e)
    {
        for (var inner = e; inner is not null; inner = inner.InnerException)
        {
            if (inner is System.Security.Authentication.AuthenticationException)
            {
                return $"TLS authentication failed ({inner.Message}); the credentials are not this cluster's";
            }
        }

        return null;
    }

    private static string DescribeConnection(string connection)
    {
        try
        {
            var b = new Npgsql.NpgsqlConnectionStringBuilder(connection);
            return $"PostgreSQL {b.Host}:{b.Port}/{b.Database}";
        }
        catch (ArgumentException)
        {
            return "PostgreSQL (unparsable connection string)";
        }
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null)
        {
            e = e.InnerException;
        }

        return e;
    }

    public async ValueTask DisposeAsync()
    {
        if (_host is null)
        {
            return;
        }

        try
        {
            await _host.StopAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or OrleansException)
        {
            // Stopping a client whose cluster is gone: nothing left to release but the host.
        }

        _host.Dispose();
    }
}

/// <summary>The cluster could not be reached.</summary>
public sealed class GrainFsConnectException(string message, Exception? inner) : Exception(message, inner);
