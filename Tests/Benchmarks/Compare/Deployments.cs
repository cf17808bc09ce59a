using System.Collections.Concurrent;
using GrainFs.Client;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Benchmarks.Compare;

/// <summary>A tool the harness needs is missing, or a system did not start: a one-line reason, non-zero exit.</summary>
internal sealed class HarnessException(string message) : Exception(message);

/// <summary>
/// Every process the harness starts, by name, and every mount it makes, each with its output in logs/NAME.log.
/// Stopped and unmounted on dispose, on Ctrl-C and on SIGTERM, so a failed or interrupted run leaves nothing behind.
/// </summary>
internal sealed class ChildProcesses : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, (IAsyncDisposable Child, string? MountPoint)> _children = new(StringComparer.Ordinal);
    private readonly string _logs;

    public ChildProcesses(string logs)
    {
        _logs = logs;
        Directory.CreateDirectory(logs);
    }

    /// <summary>The log file of the child named <paramref name="name"/>.</summary>
    public string LogOf(string name) => Path.Combine(_logs, name.Replace(' ', '-') + ".log");

    /// <summary>Starts a named child with its output in logs/NAME.log (a null environment value removes the variable).</summary>
    public TestProcess Start(string name, string file, IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment = null, string? mountPoint = null)
    {
        TestProcess process;
        try
        {
            process = TestProcess.Start(file, args, environment, Directory.GetCurrentDirectory(), new TestProcessOptions { LogFile = LogOf(name) });
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new HarnessException($"cannot start {file} for {name}: {e.Message}");
        }

        return Track(name, process, mountPoint);
    }

    /// <summary>Takes a child started by the test infrastructure (a silo, s3rver, a FUSE daemon) into the harness's cleanup.</summary>
    public T Track<T>(string name, T child, string? mountPoint = null)
        where T : IAsyncDisposable
    {
        _children[name] = (child, mountPoint);
        return child;
    }

    /// <summary>Starts a FUSE daemon and waits until the kernel shows its mount (60 s), woken by each change of the mount table.</summary>
    public async Task MountAsync(string name, string file, IEnumerable<string> args, string mountPoint, IReadOnlyDictionary<string, string?>? environment, CancellationToken cancellationToken)
    {
        var process = Start(name, file, args, environment, mountPoint);
        bool mounted;
        try
        {
            mounted = await MountTable.WaitForMountAsync(mountPoint, process.Exited, TimeSpan.FromSeconds(60), cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new HarnessException($"{name} did not mount {mountPoint} within 60 s; see {LogOf(name)}");
        }

        if (!mounted)
        {
            throw new HarnessException($"{name} exited ({process.ExitCode}) before mounting {mountPoint}; see {LogOf(name)}");
        }
    }

    /// <summary>Stops a named child (unmounting its mount first).</summary>
    public async Task StopAsync(string name)
    {
        if (!_children.TryRemove(name, out var child))
        {
            return;
        }

        if (child.MountPoint is { } mount && MountTable.IsMounted(mount))
        {
            await TestProcess.RunAsync("fusermount3", ["-u", "-z", mount]);
        }

        await child.Child.DisposeAsync();
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

/// <summary>An embedded GrainFS silo process with the benchmark bucket mounted at /bench, and an SDK client on its host.</summary>
internal sealed class GrainFsDeployment : IAsyncDisposable
{
    public const string Host = "bench-host";

    private GrainFsDeployment(S3rverServer server, SiloProcess silo, GrainFsClient client, string cliDll)
    {
        Server = server;
        Silo = silo;
        Client = client;
        CliDll = cliDll;
    }

    public S3rverServer Server { get; }

    /// <summary>The silo; stopped by the harness's <see cref="ChildProcesses"/>, after the mounts that use it.</summary>
    public SiloProcess Silo { get; }

    public GrainFsClient Client { get; }

    public string CliDll { get; }

    /// <summary>The MEM tier of the deployment named <paramref name="name"/>: RAM, so the harness removes it when it ends rather than leave it occupied.</summary>
    public static string MemoryTier(string name = "compare") => Path.Combine("/dev/shm", "grainfs-" + name);

    /// <summary>Removes the MEM tier folders of every deployment (after their silos have stopped, or before they start).</summary>
    public static void RemoveMemoryTier()
    {
        foreach (var folder in Directory.GetDirectories("/dev/shm", "grainfs-compare*"))
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>
    /// Starts a silo named <paramref name="name"/> with a MEM tier of <paramref name="memTier"/> bytes and, unless
    /// <paramref name="memoryOnly"/>, an SSD tier twice that size, and mounts the bucket at /bench.
    /// </summary>
    public static async Task<GrainFsDeployment> StartAsync(ChildProcesses children, S3rverServer server, string work, string siloDll, string cliDll, long memTier, CancellationToken cancellationToken, string name = "compare", bool memoryOnly = false)
    {
        var data = Path.Combine(work, name == "compare" ? "grainfs" : "grainfs-" + name);
        var log = children.LogOf(name == "compare" ? "grainfs-silo" : "grainfs-silo-" + name);
        var memory = MemoryTier(name);
        if (Directory.Exists(memory))
        {
            Directory.Delete(memory, recursive: true);
        }

        SiloProcess silo;
        try
        {
            silo = await SiloProcess.StartAsync(name, new SiloProcessOptions
            {
                Dll = siloDll,
                Data = data,
                Tiers = memoryOnly ? [$"MEM={memory}:{memTier}"] : [$"MEM={memory}:{memTier}", $"SSD={Path.Combine(data, "ssd")}:{memTier * 2}"],
                ExtraArgs = ["--host", Host],
                Dashboard = false,
                LogFile = log,
            }, cancellationToken);
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException)
        {
            throw new HarnessException($"the GrainFS silo did not start ({e.Message.Split('\n')[0]}); see {log}");
        }

        children.Track(name == "compare" ? "grainfs-silo" : "grainfs-silo-" + name, silo);
        GrainFsClient client;
        try
        {
            client = await GrainFsClient.ConnectAsync(new GrainFsClientOptions { GatewayPort = silo.GatewayPort, Host = Host }, cancellationToken: cancellationToken);
        }
        catch (GrainFsConnectException e)
        {
            throw new HarnessException($"the GrainFS silo started but took no client: {e.Message}; see {log}");
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
            await client.DisposeAsync();
            throw new HarnessException($"GrainFS could not mount the bucket: {mounted.Message}");
        }

        return new GrainFsDeployment(server, silo, client, cliDll);
    }

    public async Task FreeAsync(CancellationToken cancellationToken) =>
        GrainFsSdkSystem.Check(await Client.FreeAsync("/bench", cancellationToken));

    public ValueTask DisposeAsync() => Client.DisposeAsync();
}
