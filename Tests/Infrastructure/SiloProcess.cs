namespace GrainFs.Tests.Infrastructure;

/// <summary>A silo started as its own process, the way operators run it, on free loopback ports.</summary>
public sealed class SiloProcess : IAsyncDisposable
{
    private SiloProcess(TestProcess process, int gatewayPort, string data)
    {
        Process = process;
        GatewayPort = gatewayPort;
        Data = data;
    }

    public TestProcess Process { get; }

    public int GatewayPort { get; }

    public string Data { get; }

    /// <summary>Starts a silo; waits until it reports it started.</summary>
    public static async Task<SiloProcess> StartAsync(string name, IEnumerable<string>? extraArgs = null, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var gateway = Ports.Free();
        var data = TestProcess.NewFolder($"silo-{name}");
        var args = new List<string>
        {
            "--data", data,
            "--silo-port", Ports.Free().ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--gateway-port", gateway.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--dashboard-port", Ports.Free().ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--metrics-port", Ports.Free().ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--data-port", "0",
            "--tier", $"MEM={Path.Combine(data, "mem")}:128MiB",
            "--tier", $"SSD={Path.Combine(data, "ssd")}:256MiB",
        };
        args.AddRange(extraArgs ?? []);
        var process = TestProcess.StartDotnet(Repo.SiloDll, args, environment);
        var silo = new SiloProcess(process, gateway, data);
        await process.WaitForOutputAsync("GrainFS silo started", TimeSpan.FromSeconds(90));
        return silo;
    }

    /// <summary>Runs the grainfs CLI against this silo's gateway.</summary>
    public Task<(int ExitCode, string Stdout, string Stderr)> CliAsync(params string[] args) =>
        Cli.RunAsync(["--gateway-port", GatewayPort.ToString(System.Globalization.CultureInfo.InvariantCulture), .. args]);

    public ValueTask DisposeAsync() => Process.DisposeAsync();
}

/// <summary>The grainfs command line, run as a process.</summary>
public static class Cli
{
    public static Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment = null) =>
        TestProcess.RunAsync("dotnet", [Repo.CliDll, .. args], environment, TimeSpan.FromMinutes(2));
}
