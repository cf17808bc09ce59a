using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Amazon.Runtime;
using Amazon.S3;
using GrainFs.Client;

namespace GrainFs.Benchmarks.Compare;

/// <summary>A tool the harness needs is missing, or a system did not start: a one-line reason, non-zero exit.</summary>
internal sealed class HarnessException(string message) : Exception(message);

/// <summary>
/// Every process the harness starts, by name, and every mount it makes. Stopped and unmounted on dispose, on
/// Ctrl-C and on SIGTERM, so a failed or interrupted run leaves nothing behind.
/// </summary>
internal sealed class ChildProcesses : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, (Process Process, string? MountPoint)> _children = new(StringComparer.Ordinal);
    private readonly string _logs;

    public ChildProcesses(string logs)
    {
        _logs = logs;
        Directory.CreateDirectory(logs);
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Starts a named child with its output in logs/NAME.log.</summary>
    public Process Start(string name, string file, IEnumerable<string> args, IEnumerable<string>? removeEnvironment = null, IReadOnlyDictionary<string, string>? environment = null, string? mountPoint = null)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var variable in removeEnvironment ?? [])
        {
            info.Environment.Remove(variable);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        Process process;
        try
        {
            process = Process.Start(info)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new HarnessException($"cannot start {file} for {name}: {e.Message}");
        }

        var log = new StreamWriter(Path.Combine(_logs, name.Replace(' ', '-') + ".log"), append: true) { AutoFlush = true };
        process.OutputDataReceived += (_, e) => Write(log, e.Data);
        process.ErrorDataReceived += (_, e) => Write(log, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _children[name] = (process, mountPoint);
        return process;
    }

    private static void Write(StreamWriter log, string? line)
    {
        if (line is not null)
        {
            lock (log)
            {
                log.WriteLine(line);
            }
        }
    }

    /// <summary>Starts a FUSE daemon and waits until the kernel shows its mount (60 s).</summary>
    public async Task MountAsync(string name, string file, IEnumerable<string> args, string mountPoint, IEnumerable<string>? removeEnvironment, CancellationToken cancellationToken)
    {
        var process = Start(name, file, args, removeEnvironment, mountPoint: mountPoint);
        var clock = Stopwatch.StartNew();
        while (!IsMounted(mountPoint))
        {
            if (process.HasExited)
            {
                throw new HarnessException($"{name} exited ({process.ExitCode}) before mounting {mountPoint}; see {Path.Combine(_logs, name.Replace(' ', '-') + ".log")}");
            }

            if (clock.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new HarnessException($"{name} did not mount {mountPoint} within 60 s");
            }

            await Task.Delay(100, cancellationToken);
        }
    }

    public static bool IsMounted(string path) =>
        File.ReadLines("/proc/self/mountinfo").Any(line => line.Split(' ') is { Length: > 4 } fields && fields[4] == path);

    /// <summary>Stops a named child (unmounting its mount first).</summary>
    public async Task StopAsync(string name)
    {
        if (!_children.TryRemove(name, out var child))
        {
            return;
        }

        if (child.MountPoint is { } mount && IsMounted(mount))
        {
            using var umount = Process.Start(new ProcessStartInfo("fusermount3", ["-u", "-z", mount]) { RedirectStandardError = true })!;
            await umount.WaitForExitAsync();
        }

        if (!child.Process.HasExited)
        {
            child.Process.Kill(entireProcessTree: true);
            await child.Process.WaitForExitAsync();
        }

        child.Process.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        // Mounts first (their daemons may depend on the servers), then everything else.
        foreach (var name in _children.Where(c => c.Value.MountPoint is not null).Select(c => c.Key).ToList())
        {
            await StopAsync(name);
        }

        foreach (var name in _children.Keys.ToList())
        {
            await StopAsync(name);
        }
    }
}

/// <summary>The S3-compatible server on loopback: s3rver (Node, range-aware), started by the harness.</summary>
internal sealed class S3Server(string endpoint, string bucket)
{
    public const string Key = "S3RVER";

    public string Name => "s3rver";

    public string Endpoint { get; } = endpoint;

    public string Bucket { get; } = bucket;

    public string AccessKey => Key;

    public string SecretKey => Key;

    public AmazonS3Client Client() => new(new BasicAWSCredentials(AccessKey, SecretKey), new AmazonS3Config
    {
        ServiceURL = Endpoint,
        ForcePathStyle = true,
        AuthenticationRegion = "us-east-1",
        MaxErrorRetry = 3,
        RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
        ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
    });

    /// <summary>Starts s3rver from <paramref name="s3rverBin"/> keeping its objects under <paramref name="folder"/>.</summary>
    public static async Task<S3Server> StartAsync(ChildProcesses children, string s3rverBin, string folder, string bucket, CancellationToken cancellationToken)
    {
        if (!File.Exists(s3rverBin))
        {
            throw new HarnessException($"s3rver is not installed at {s3rverBin} (infra/bench/run.sh installs it with npm)");
        }

        Directory.CreateDirectory(folder);
        var port = ChildProcesses.FreePort();
        // s3rver 3.7 hashes listings in a way OpenSSL 3 (Node 18+) refuses unless the legacy provider is enabled.
        children.Start("s3rver", "node", [s3rverBin, "-d", folder, "-a", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), "--configure-bucket", bucket, "--silent"],
            environment: new Dictionary<string, string> { ["NODE_OPTIONS"] = "--openssl-legacy-provider" });
        var endpoint = $"http://127.0.0.1:{port}";
        using var http = new HttpClient();
        for (var i = 0; i < 150; i++)
        {
            try
            {
                await http.GetAsync(endpoint, cancellationToken);
                return new S3Server(endpoint, bucket);
            }
            catch (HttpRequestException)
            {
                await Task.Delay(200, cancellationToken);
            }
        }

        throw new HarnessException("s3rver did not start within 30 s");
    }
}

/// <summary>An embedded GrainFS silo process with the benchmark bucket mounted at /bench, and an SDK client on its host.</summary>
internal sealed class GrainFsDeployment : IAsyncDisposable
{
    public const string Host = "bench-host";

    private GrainFsDeployment(S3Server server, GrainFsClient client, int gatewayPort, string cliDll)
    {
        Server = server;
        Client = client;
        GatewayPort = gatewayPort;
        CliDll = cliDll;
    }

    public S3Server Server { get; }

    public GrainFsClient Client { get; }

    public int GatewayPort { get; }

    public string CliDll { get; }

    /// <summary>The silo's MEM tier: RAM, so the harness removes it when it ends rather than leave it occupied.</summary>
    public static string MemoryTier => Path.Combine("/dev/shm", "grainfs-compare");

    /// <summary>Removes the MEM tier folder (after the silo has stopped, or before it starts).</summary>
    public static void RemoveMemoryTier()
    {
        if (Directory.Exists(MemoryTier))
        {
            Directory.Delete(MemoryTier, recursive: true);
        }
    }

    public static async Task<GrainFsDeployment> StartAsync(ChildProcesses children, S3Server server, string work, string siloDll, string cliDll, long memTier, CancellationToken cancellationToken)
    {
        var gateway = ChildProcesses.FreePort();
        var data = Path.Combine(work, "grainfs");
        var shm = MemoryTier;
        RemoveMemoryTier();

        var silo = children.Start("grainfs-silo", "dotnet",
            [siloDll, "--data", data, "--silo-port", ChildProcesses.FreePort().ToString(CultureInfo.InvariantCulture), "--gateway-port", gateway.ToString(CultureInfo.InvariantCulture),
             "--dashboard-port", "0", "--metrics-port", "0", "--data-port", "0", "--host", Host, "--tier", $"MEM={shm}:{memTier}", "--tier", $"SSD={Path.Combine(data, "ssd")}:{memTier * 2}"]);
        GrainFsClient? client = null;
        for (var attempt = 0; client is null; attempt++)
        {
            if (silo.HasExited)
            {
                throw new HarnessException($"the GrainFS silo exited ({silo.ExitCode}); see logs/grainfs-silo.log");
            }

            try
            {
                client = await GrainFsClient.ConnectAsync(new GrainFsClientOptions { GatewayPort = gateway, Host = Host, ConnectTimeout = TimeSpan.FromSeconds(5) }, cancellationToken: cancellationToken);
            }
            catch (GrainFsConnectException) when (attempt < 12)
            {
                await Task.Delay(1000, cancellationToken);
            }
        }

        var mounted = await client.MountAsync("/bench", $"s3://{server.Bucket}", new Dictionary<string, string>
        {
            ["endpoint"] = server.Endpoint,
            ["access-key"] = server.AccessKey,
            ["secret-key"] = server.SecretKey,
            ["readonly"] = "true",
        }, cancellationToken);
        if (!mounted.IsOk)
        {
            throw new HarnessException($"GrainFS could not mount the bucket: {mounted.Message}");
        }

        return new GrainFsDeployment(server, client, gateway, cliDll);
    }

    public async Task FreeAsync(CancellationToken cancellationToken) =>
        GrainFsSdkSystem.Check(await Client.FreeAsync("/bench", cancellationToken));

    public ValueTask DisposeAsync() => Client.DisposeAsync();
}
