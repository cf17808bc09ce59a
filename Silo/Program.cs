using GrainFs.DataPlane;
using GrainFs.Grains;
using GrainFs.Silo.Hosting;
using GrainFs.Storage.Metadata;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Dashboard;

namespace GrainFs.Silo;

/// <summary>The GrainFS silo host: <c>dotnet run --project Silo -- [flags]</c>.</summary>
public static class Program
{
    /// <summary>
    /// A file holding an offset for GrainFS's clock (<see cref="OffsetFileClock"/>): the fault suite steps the clock of
    /// TTLs through it. Unset in production.
    /// </summary>
    public const string FaultClockVariable = "GRAINFS_FAULT_CLOCK_FILE";

    /// <summary>Runs the silo until SIGINT/SIGTERM. Exit codes: 0 clean stop, 1 start failure, 2 bad configuration.</summary>
    public static async Task<int> Main(string[] args)
    {
        if (args.Contains("--help") || args.Contains("-h"))
        {
            PrintUsage();
            return 0;
        }

        if (!SettingNames.TryParse(args, SettingNames.SiloSettings, out var flags, out var rest, out var flagError))
        {
            return Fail(2, flagError!);
        }

        if (rest.Count > 0)
        {
            return Fail(2, $"unknown argument '{rest[0]}' (see --help)");
        }

        var configuration = BuildConfiguration(flags);
        SiloConfiguration settings;
        try
        {
            settings = SiloConfiguration.Load(configuration);
        }
        catch (OptionsValidationException e)
        {
            foreach (var failure in e.Failures)
            {
                Console.Error.WriteLine($"grainfs-silo: configuration error: {failure}");
            }

            return 2;
        }

        var silo = settings.Silo;
        var dashboardRequested = silo.DashboardPort > 0;
        try
        {
            Directory.CreateDirectory(silo.Data);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Fail(2, $"GrainFs:Data = '{silo.Data}': cannot create the state folder ({e.Message})");
        }

        OffsetFileClock? faultClock = null;
        var clockFile = Environment.GetEnvironmentVariable(FaultClockVariable);
        if (!string.IsNullOrEmpty(clockFile))
        {
            try
            {
                faultClock = new OffsetFileClock(clockFile);
            }
            catch (ArgumentException e)
            {
                return Fail(2, $"{FaultClockVariable}: {e.Message}");
            }
        }

        IMetadataStore store = silo.Cluster is { } cluster ? new PostgresMetadataStore(cluster) : new InMemoryMetadataStore();
        try
        {
            await store.InitializeAsync();
        }
        catch (InvalidOperationException e)
        {
            return Fail(1, e.Message);
        }

        IHostApplicationBuilder builder;
        WebApplicationBuilder? web = null;
        if (WebEndpoints.Requested(settings))
        {
            web = WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory, Args = [] });
            WebEndpoints.Listen(web.WebHost, settings);
            builder = web;
        }
        else
        {
            builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = AppContext.BaseDirectory, Args = [] });
        }

        builder.Configuration.AddConfiguration(configuration);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(15));
        builder.Services.AddGrainFsTelemetry(settings);
        try
        {
            if (faultClock is not null)
            {
                // Registered before AddGrainFs, which keeps it in place of the system clock.
                builder.Services.AddSingleton(new GrainFsClock(faultClock));
            }

            ConfigureOrleans(builder, settings, store, dashboardRequested);
        }
        catch (System.Net.Sockets.SocketException e)
        {
            return Fail(1, $"GrainFs:DataPort = {silo.DataPort}: cannot listen ({e.Message})");
        }
        catch (GrainFs.DataPlane.Security.CredentialException e)
        {
            return Fail(2, $"{SettingNames.Credentials.Key}: {e.Message}");
        }

        IHost host;
        if (web is not null)
        {
            var app = web.Build();
            WebEndpoints.Map(app, settings);
            host = app;
        }
        else
        {
            host = ((HostApplicationBuilder)builder).Build();
        }

        var logger = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("GrainFs.Silo");
        try
        {
            await host.StartAsync();
        }
        catch (Exception e)
        {
            return Fail(1, $"the silo did not start: {Root(e).Message}");
        }

        // The counters of rare events start at 0 once the exporter listens, so rate() and the alerts see them before the first.
        GrainFsMetrics.StartRareSeries();
        StartupLog.Started(logger, settings.ToString(), store.Kind);
        if (silo.InsecureNoAuth)
        {
            StartupLog.Insecure(logger);
        }

        if (faultClock is not null)
        {
            StartupLog.FaultClock(logger, FaultClockVariable, clockFile ?? string.Empty, faultClock.Offset);
        }
        await host.WaitForShutdownAsync();
        return 0;
    }

    private static void ConfigureOrleans(IHostApplicationBuilder builder, SiloConfiguration settings, IMetadataStore store, bool dashboardRequested)
    {
        var options = settings.Silo;
        builder.UseOrleans(silo =>
        {
            silo.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = options.ClusterId;
                o.ServiceId = options.ClusterId;
            });
            silo.Configure<SiloOptions>(o => o.SiloName = options.SiloName);
            if (options.Cluster is { } connection)
            {
                silo.UseAdoNetClustering(o =>
                {
                    o.Invariant = "Npgsql";
                    o.ConnectionString = connection;
                });
                var advertised = options.AdvertisedIPAddress;
                silo.ConfigureEndpoints(advertised, options.SiloPort, options.GatewayPort, listenOnAnyHostAddress: !System.Net.IPAddress.IsLoopback(advertised));
                silo.UseFastFailureDetection();
            }
            else
            {
                silo.UseLocalhostClustering(options.SiloPort, options.GatewayPort, serviceId: options.ClusterId, clusterId: options.ClusterId);
            }

            silo.AddActivityPropagation();
            silo.AddGrainFs(settings, store);
            if (dashboardRequested)
            {
                silo.AddDashboard();
            }
        });
    }

    private static IConfiguration BuildConfiguration(Dictionary<string, string?> flags) =>
        new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables()
            .AddInMemoryCollection(SettingNames.FromEnvironment(SettingNames.SiloSettings))
            .AddInMemoryCollection(flags)
            .Build();

    private static Exception Root(Exception e)
    {
        while (e.InnerException is not null && e is AggregateException or TypeInitializationException or System.Reflection.TargetInvocationException)
        {
            e = e.InnerException;
        }

        return e;
    }

    private static int Fail(int code, string message)
    {
        Console.Error.WriteLine($"grainfs-silo: {message}");
        return code;
    }

    private static void PrintUsage()
    {
        Console.WriteLine("grainfs-silo — a GrainFS storage node (Orleans silo)");
        Console.WriteLine();
        Console.WriteLine("usage: grainfs-silo [flags]   (no flags: one embedded silo, localhost clustering, in-memory metadata)");
        Console.WriteLine();
        foreach (var s in SettingNames.SiloSettings)
        {
            Console.WriteLine($"  {s.Flag,-18} {s.Help}");
            Console.WriteLine($"  {string.Empty,-18} key {s.Key}, env {s.Env}");
        }
    }
}

internal static partial class StartupLog
{
    [LoggerMessage(Level = LogLevel.Information, Message = "GrainFS silo started: {Settings}, metadata store {Store}")]
    public static partial void Started(ILogger logger, string settings, string store);

    [LoggerMessage(Level = LogLevel.Warning, Message = "--insecure-no-auth: no TLS, no logins, no access checks; anyone who reaches a port owns this cluster (only for measuring the trust model's cost)")]
    public static partial void Insecure(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Variable} = {File}: GrainFS's clock (TTLs, directory staleness, fill waits) is the system clock moved by the offset that file holds, now {Offset}; for fault injection only")]
    public static partial void FaultClock(ILogger logger, string variable, string file, TimeSpan offset);
}
