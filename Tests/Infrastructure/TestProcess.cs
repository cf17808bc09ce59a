using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;

namespace GrainFs.Tests.Infrastructure;

/// <summary>
/// A child process of the test run (a silo, the CLI, moto). Output is captured; the process is killed
/// with its children on dispose, and at the latest when the test host exits. Every child carries
/// GRAINFS_TEST_ROOT so the test script can reap leftovers of a crashed run.
/// </summary>
public sealed class TestProcess : IAsyncDisposable
{
    private static readonly ConcurrentDictionary<int, Process> Live = new();
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _disposed;

    static TestProcess()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var p in Live.Values)
            {
                try
                {
                    p.Kill(entireProcessTree: true);
                }
                catch (InvalidOperationException)
                {
                }
            }
        };
    }

    private TestProcess(Process process)
    {
        _process = process;
    }

    /// <summary>The root folder of this test run.</summary>
    public static string RunRoot { get; } = CreateRunRoot();

    private static string CreateRunRoot()
    {
        var root = Environment.GetEnvironmentVariable("GRAINFS_TEST_ROOT") is { Length: > 0 } given
            ? given
            : Path.Combine(Path.GetTempPath(), "grainfs-tests", Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        return root;
    }

    /// <summary>A fresh folder under the run root.</summary>
    public static string NewFolder(string name)
    {
        var path = Path.Combine(RunRoot, $"{name}-{Guid.NewGuid().ToString("N")[..6]}");
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>The process id.</summary>
    public int Id => _process.Id;

    /// <summary>True once the process has exited.</summary>
    public bool HasExited => _exited.Task.IsCompleted;

    /// <summary>The exit code (after exit).</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>Everything written to stdout and stderr so far.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts <paramref name="fileName"/> with arguments and extra environment.</summary>
    public static TestProcess Start(string fileName, IEnumerable<string> arguments, IReadOnlyDictionary<string, string?>? environment = null, string? workingDirectory = null)
    {
        var info = StartInfo(fileName, arguments, environment, workingDirectory);
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var wrapper = new TestProcess(process);
        process.OutputDataReceived += (_, e) => wrapper.Append(e.Data);
        process.ErrorDataReceived += (_, e) => wrapper.Append(e.Data);
        process.Exited += (_, _) => wrapper._exited.TrySetResult();
        process.Start();
        Live[process.Id] = process;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return wrapper;
    }

    /// <summary>Starts a .NET program (a dll) with <c>dotnet</c>.</summary>
    public static TestProcess StartDotnet(string dll, IEnumerable<string> arguments, IReadOnlyDictionary<string, string?>? environment = null) =>
        Start("dotnet", new[] { dll }.Concat(arguments), environment, Path.GetDirectoryName(dll));

    /// <summary>Runs a program to completion (killed after <paramref name="timeout"/>) and returns its exit code and output.</summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string fileName, IEnumerable<string> arguments, IReadOnlyDictionary<string, string?>? environment = null, TimeSpan? timeout = null)
    {
        var info = StartInfo(fileName, arguments, environment, null);
        using var process = Process.Start(info)!;
        Live[process.Id] = process;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{fileName} {string.Join(' ', info.ArgumentList)} did not finish in {timeout ?? TimeSpan.FromMinutes(2)}");
        }
        finally
        {
            Live.TryRemove(process.Id, out _);
        }

        return (process.ExitCode, await stdout, await stderr);
    }

    private static ProcessStartInfo StartInfo(string fileName, IEnumerable<string> arguments, IReadOnlyDictionary<string, string?>? environment, string? workingDirectory)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? RunRoot,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        info.Environment["GRAINFS_TEST_ROOT"] = RunRoot;
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                info.Environment.Remove(key);
            }
            else
            {
                info.Environment[key] = value;
            }
        }

        return info;
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    /// <summary>Waits until the output contains <paramref name="text"/>; throws with the output if the process exits or time runs out.</summary>
    public async Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!Output.Contains(text, StringComparison.Ordinal))
        {
            if (HasExited)
            {
                throw new InvalidOperationException($"process exited ({_process.ExitCode}) before printing '{text}':\n{Output}");
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"no '{text}' within {timeout}:\n{Output}");
            }

            await Task.WhenAny(_exited.Task, Task.Delay(100));
        }
    }

    /// <summary>Waits for the process to exit.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        if (await Task.WhenAny(_exited.Task, Task.Delay(timeout)) != _exited.Task)
        {
            throw new TimeoutException($"process {Id} did not exit within {timeout}:\n{Output}");
        }

        await _process.WaitForExitAsync();
        return _process.ExitCode;
    }

    /// <summary>SIGKILL, the way a crashed node disappears.</summary>
    public void Kill()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }
    }

    /// <summary>SIGTERM, a clean stop.</summary>
    public void Terminate()
    {
        if (!HasExited)
        {
            _ = NativeKill(_process.Id, 15);
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int NativeKill(int pid, int signal);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        var id = _process.Id;
        Kill();
        await Task.WhenAny(_exited.Task, Task.Delay(5000));
        Live.TryRemove(id, out _);
        _process.Dispose();
    }
}
