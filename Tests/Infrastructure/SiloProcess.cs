using System.Globalization;

namespace GrainFs.Tests.Infrastructure;

/// <summary>
/// A silo started as its own process, the way operators run it, on free loopback ports: the one silo starter of
/// the tests and the benchmarks.
/// </summary>
public sealed class SiloProcess : IAsyncDisposable
{
    private readonly SiloProcessOptions _options;
    private readonly int _siloPort;

    private SiloProcess(TestProcess process, SiloProcessOptions options, string data, int siloPort, int gatewayPort)
    {
        Process = process;
        _options = options;
        Data = data;
        _siloPort = siloPort;
        GatewayPort = gatewayPort;
    }

    /// <summary>The silo's process, to read its output, kill it (a crashed node) or stop it.</summary>
    public TestProcess Process { get; }

    /// <summary>The gateway port clients connect to.</summary>
    public int GatewayPort { get; }

    /// <summary>The silo's data folder.</summary>
    public string Data { get; }

    /// <summary>Starts a silo with the small test tiers; waits until it reports it started.</summary>
    /// <param name="name">Names the data folder, so a test's silos can be told apart in the run root.</param>
    /// <param name="extraArgs">More command-line arguments (roles, host, cluster).</param>
    /// <param name="environment">Extra environment; a null value removes a variable.</param>
    public static Task<SiloProcess> StartAsync(string name, IEnumerable<string>? extraArgs = null, IReadOnlyDictionary<string, string?>? environment = null) =>
        StartAsync(name, new SiloProcessOptions { ExtraArgs = extraArgs ?? [], Environment = environment });

    /// <summary>
    /// Starts a silo as <paramref name="options"/> say; waits until it reports it started. A port is free when it is
    /// handed out, not necessarily when the silo binds it (another process may take it in between): a silo that fails
    /// with "Address already in use" is started again on new ports, twice at most.
    /// </summary>
    public static async Task<SiloProcess> StartAsync(string name, SiloProcessOptions options, CancellationToken cancellationToken = default)
    {
        var data = options.Data ?? TestProcess.NewFolder($"silo-{name}");
        Directory.CreateDirectory(data);
        for (var attempt = 1; ; attempt++)
        {
            var (siloPort, gateway) = (Ports.Free(), Ports.Free());
            var (dashboard, metrics) = (options.Dashboard ? Ports.Free() : 0, options.Dashboard || options.Metrics ? Ports.Free() : 0);
            var process = Start(options, data, siloPort, gateway, dashboard, metrics);
            try
            {
                await process.WaitForOutputAsync("GrainFS silo started", options.StartTimeout, cancellationToken).ConfigureAwait(false);
                return new SiloProcess(process, options, data, siloPort, gateway) { DashboardPort = dashboard, MetricsPort = metrics };
            }
            catch (InvalidOperationException) when (attempt < 3 && process.HasExited && process.Output.Contains("Address already in use", StringComparison.Ordinal))
            {
                await process.DisposeAsync().ConfigureAwait(false);
            }
            catch
            {
                await process.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
    }

    /// <summary>
    /// Starts this silo again after it was killed or stopped, as an operator's service manager would: the same data
    /// folder, arguments and ports (clients and the membership table know it by them). A port the dead process held may
    /// stay taken for a moment; the start is tried again for up to 30 s.
    /// </summary>
    public async Task<SiloProcess> StartAgainAsync(CancellationToken cancellationToken = default)
    {
        await Process.DisposeAsync().ConfigureAwait(false);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var process = Start(_options, Data, _siloPort, GatewayPort, DashboardPort, MetricsPort);
            try
            {
                await process.WaitForOutputAsync("GrainFS silo started", _options.StartTimeout, cancellationToken).ConfigureAwait(false);
                return new SiloProcess(process, _options, Data, _siloPort, GatewayPort) { DashboardPort = DashboardPort, MetricsPort = MetricsPort };
            }
            catch (InvalidOperationException) when (DateTime.UtcNow < deadline && process.HasExited && process.Output.Contains("Address already in use", StringComparison.Ordinal))
            {
                await process.DisposeAsync().ConfigureAwait(false);
                await Task.Delay(1000, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                await process.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
    }

    private static TestProcess Start(SiloProcessOptions options, string data, int siloPort, int gateway, int dashboard, int metrics)
    {
        var args = new List<string>
        {
            "--data", data,
            "--silo-port", Text(siloPort),
            "--gateway-port", Text(gateway),
            // Port 0 turns the dashboard and the metrics endpoint off.
            "--dashboard-port", Text(dashboard),
            "--metrics-port", Text(metrics),
            "--data-port", "0",
        };
        foreach (var tier in options.Tiers ?? [$"MEM={Path.Combine(data, "mem")}:128MiB", $"SSD={Path.Combine(data, "ssd")}:256MiB"])
        {
            args.Add("--tier");
            args.Add(tier);
        }

        args.AddRange(options.ExtraArgs);
        var output = new TestProcessOptions
        {
            LogFile = options.LogFile,
            OnStandardError = options.ForwardStandardError ? line => Console.Error.WriteLine($"silo: {line}") : null,
        };
        return TestProcess.StartDotnet(options.Dll ?? Repo.SiloDll, args, options.Environment, output);
    }

    private static string Text(int port) => port.ToString(CultureInfo.InvariantCulture);

    /// <summary>The dashboard's port (0: off).</summary>
    public int DashboardPort { get; private init; }

    /// <summary>The metrics endpoint's port (0: off).</summary>
    public int MetricsPort { get; private init; }

    /// <summary>Runs the grainfs CLI against this silo's gateway.</summary>
    public Task<(int ExitCode, string Stdout, string Stderr)> CliAsync(params string[] args) =>
        Cli.RunAsync(["--gateway-port", Text(GatewayPort), .. args]);

    /// <summary>The silo's resident set size (VmRSS), for benchmarks that report memory per cached entry.</summary>
    public long ResidentBytes() => Process.ResidentBytes();

    /// <summary>Kills the silo (it keeps nothing that a clean stop would save for the tests).</summary>
    public ValueTask DisposeAsync() => Process.DisposeAsync();
}

/// <summary>How to start a <see cref="SiloProcess"/>: the tests take the defaults, the benchmarks size the tiers.</summary>
public sealed class SiloProcessOptions
{
    /// <summary>The silo's dll; null for the one built next to this repository (a benchmark's <c>--silo DLL</c> overrides it).</summary>
    public string? Dll { get; init; }

    /// <summary>The data folder; null for a new folder under the run root.</summary>
    public string? Data { get; init; }

    /// <summary>
    /// The <c>--tier</c> values (<c>MEM=/dev/shm/x:4GiB</c>); null for the small test tiers under the data folder
    /// (MEM 128 MiB, SSD 256 MiB), empty for the silo's own defaults.
    /// </summary>
    public IReadOnlyList<string>? Tiers { get; init; }

    /// <summary>More command-line arguments, after the ports and tiers.</summary>
    public IEnumerable<string> ExtraArgs { get; init; } = [];

    /// <summary>Extra environment; a null value removes a variable.</summary>
    public IReadOnlyDictionary<string, string?>? Environment { get; init; }

    /// <summary>Serve the dashboard and the metrics endpoint on free ports (the tests); false turns both off (the benchmarks, which measure without them).</summary>
    public bool Dashboard { get; init; } = true;

    /// <summary>Serve the metrics endpoint on a free port even without the dashboard (the soak samples the silos' managed heap there).</summary>
    public bool Metrics { get; init; }

    /// <summary>Write the silo's stderr to this process's stderr as it comes, prefixed <c>silo: </c>, so a benchmark shows the silo's errors.</summary>
    public bool ForwardStandardError { get; init; }

    /// <summary>A file the silo's output is appended to (the comparison harness keeps a log per process).</summary>
    public string? LogFile { get; init; }

    /// <summary>How long the silo may take to report it started.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(90);
}

/// <summary>The grainfs command line, run as a process.</summary>
public static class Cli
{
    /// <summary>Runs the CLI built next to this repository to completion (2 minutes at most).</summary>
    public static Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment = null) =>
        RunAsync(Repo.CliDll, args, environment);

    /// <summary>Runs the CLI in <paramref name="cliDll"/> to completion (2 minutes at most).</summary>
    public static Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string cliDll, IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment = null) =>
        TestProcess.RunAsync("dotnet", [cliDll, .. args], environment, TimeSpan.FromMinutes(2));
}
