using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace GrainFs.Benchmarks;

/// <summary>An embedded silo process for a benchmark, on free loopback ports, stopped on dispose.</summary>
internal sealed class SiloHandle : IAsyncDisposable
{
    private readonly Process _process;

    private SiloHandle(Process process, int gatewayPort)
    {
        _process = process;
        GatewayPort = gatewayPort;
    }

    public int GatewayPort { get; }

    public static async Task<SiloHandle> StartAsync(BenchArgs args, IEnumerable<string>? extra = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var dll = args.Text("--silo", FindSilo());
        var gateway = FreePort();
        var data = Path.Combine(Path.GetTempPath(), "grainfs-bench", "silo-" + Guid.NewGuid().ToString("N")[..6]);
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        foreach (var a in new[] { dll, "--data", data, "--silo-port", FreePort().ToString(CultureInfo.InvariantCulture), "--gateway-port", gateway.ToString(CultureInfo.InvariantCulture), "--dashboard-port", "0", "--metrics-port", "0", "--data-port", "0" }.Concat(extra ?? []))
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        var process = Process.Start(info)!;
        var started = new TaskCompletionSource();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data?.Contains("GrainFS silo started", StringComparison.Ordinal) == true)
            {
                started.TrySetResult();
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                Console.Error.WriteLine($"silo: {e.Data}");
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (await Task.WhenAny(started.Task, Task.Delay(TimeSpan.FromSeconds(90))) != started.Task)
        {
            process.Kill(true);
            throw new InvalidOperationException("the silo did not start within 90 s");
        }

        return new SiloHandle(process, gateway);
    }

    /// <summary>The silo's resident set size (VmRSS).</summary>
    public long ResidentBytes()
    {
        foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            }
        }

        return 0;
    }

    private static string FindSilo()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Orleans.sln")))
            {
                foreach (var configuration in new[] { "Release", "Debug" })
                {
                    var path = Path.Combine(dir.FullName, "Silo", "bin", configuration, "net10.0", "grainfs-silo.dll");
                    if (File.Exists(path))
                    {
                        return path;
                    }
                }
            }
        }

        throw new FileNotFoundException("grainfs-silo.dll not found: build the solution (dotnet build Orleans.sln -c Release) or pass --silo <dll>");
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
