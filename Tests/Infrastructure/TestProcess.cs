using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;

namespace GrainFs.Tests.Infrastructure;

/// <summary>
/// A child process of a test run or a benchmark (a silo, the CLI, moto, s3rver). Output is captured (and written
/// to a log file when asked); the process is killed with its children on dispose, and at the latest when this
/// process exits. Every child carries GRAINFS_TEST_ROOT so infra/test/run-tests.sh can reap leftovers of a
/// crashed run.
/// </summary>
public sealed class TestProcess : IAsyncDisposable
{
    private static readonly ConcurrentDictionary<int, Process> Live = new();
    private static readonly Lock RunRootLock = new();

    // How long the pipes of an exited process may take to deliver their last lines.
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(5);
    private static string? _runRoot;
    private static string? _ownedRunRoot;
    private static string? _runRootParent;

    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly List<(string Text, TaskCompletionSource Seen)> _watches = [];
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Action<string>? _onStandardError;
    private StreamWriter? _log;
    private int _openStreams = 2;
    private int _disposed;

    static TestProcess()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            KillAll();
            RemoveOwnedRunRoot();
        };
    }

    private TestProcess(Process process, TestProcessOptions? options)
    {
        _process = process;
        _onStandardError = options?.OnStandardError;
        if (options?.LogFile is { } log)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(log))!);
            _log = new StreamWriter(log, append: true) { AutoFlush = true };
        }
    }

    /// <summary>
    /// The root folder of this run: GRAINFS_TEST_ROOT when the caller (infra/test/run-tests.sh) owns one and removes
    /// it, else a folder of this process's own, created on first use.
    /// </summary>
    public static string RunRoot
    {
        get
        {
            lock (RunRootLock)
            {
                return _runRoot ??= CreateRunRoot();
            }
        }
    }

    private static string CreateRunRoot()
    {
        if (Environment.GetEnvironmentVariable("GRAINFS_TEST_ROOT") is { Length: > 0 } given)
        {
            Directory.CreateDirectory(given);
            return given;
        }

        var parent = _runRootParent ?? Path.Combine(Path.GetTempPath(), "grainfs-tests");
        var root = Path.Combine(parent, $"run-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}");
        Directory.CreateDirectory(root);
        if (_runRootParent is not null)
        {
            _ownedRunRoot = root;
        }

        return root;
    }

    /// <summary>
    /// Makes this process remove its run root when it ends (the returned handle is disposed, or the process exits),
    /// unless GRAINFS_TEST_ROOT names one that the caller owns. For programs such as the benchmarks, which, unlike a
    /// test run under infra/test/run-tests.sh, have no script to remove their scratch folders. Call it before
    /// anything asks for <see cref="RunRoot"/>.
    /// </summary>
    /// <param name="parent">The folder the run root is created in.</param>
    public static IDisposable OwnRunRoot(string parent)
    {
        lock (RunRootLock)
        {
            if (_runRoot is not null)
            {
                throw new InvalidOperationException($"the run root {_runRoot} is already in use; call OwnRunRoot first");
            }

            _runRootParent = parent;
        }

        return new OwnedRunRoot();
    }

    private static void KillAll()
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
    }

    private static void RemoveOwnedRunRoot()
    {
        string? root;
        lock (RunRootLock)
        {
            root = _ownedRunRoot;
            _ownedRunRoot = null;
        }

        if (root is null || !Directory.Exists(root))
        {
            return;
        }

        // A recursive delete would descend into a mount left under the root and delete what it shows.
        if (MountTable.MountsUnder(root).FirstOrDefault() is { } mount)
        {
            Console.Error.WriteLine($"kept {root}: {mount} is still mounted under it");
            return;
        }

        Directory.Delete(root, recursive: true);
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

    /// <summary>Completes when the process exits, for waits that must give up when it does.</summary>
    public Task Exited => _exited.Task;

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

    /// <summary>Starts <paramref name="fileName"/> with arguments and extra environment (a null value removes a variable).</summary>
    public static TestProcess Start(string fileName, IEnumerable<string> arguments, IReadOnlyDictionary<string, string?>? environment = null, string? workingDirectory = null, TestProcessOptions? options = null)
    {
        var info = StartInfo(fileName, arguments, environment, workingDirectory);
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var wrapper = new TestProcess(process, options);
        process.OutputDataReceived += (_, e) => wrapper.Append(e.Data, standardError: false);
        process.ErrorDataReceived += (_, e) => wrapper.Append(e.Data, standardError: true);
        process.Exited += (_, _) => wrapper._exited.TrySetResult();
        try
        {
            process.Start();
        }
        catch
        {
            wrapper.CloseLog();
            process.Dispose();
            throw;
        }

        Live[process.Id] = process;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return wrapper;
    }

    /// <summary>Starts a .NET program (a dll) with <c>dotnet</c>, in the dll's folder.</summary>
    public static TestProcess StartDotnet(string dll, IEnumerable<string> arguments, IReadOnlyDictionary<string, string?>? environment = null, TestProcessOptions? options = null) =>
        Start("dotnet", new[] { dll }.Concat(arguments), environment, Path.GetDirectoryName(dll), options);

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
            await process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
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

        return (process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
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

    private void Append(string? line, bool standardError)
    {
        if (line is null)
        {
            // End of one stream; after both, the output is complete.
            if (Interlocked.Decrement(ref _openStreams) == 0)
            {
                _drained.TrySetResult();
            }

            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
            _log?.WriteLine(line);
            for (var i = _watches.Count - 1; i >= 0; i--)
            {
                if (line.Contains(_watches[i].Text, StringComparison.Ordinal))
                {
                    _watches[i].Seen.TrySetResult();
                    _watches.RemoveAt(i);
                }
            }
        }

        if (standardError)
        {
            _onStandardError?.Invoke(line);
        }
    }

    /// <summary>A task that completes when a line containing <paramref name="text"/> arrives (at once if one has).</summary>
    private TaskCompletionSource Watch(string text)
    {
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_output)
        {
            if (_output.ToString().Contains(text, StringComparison.Ordinal))
            {
                seen.SetResult();
            }
            else
            {
                _watches.Add((text, seen));
            }
        }

        return seen;
    }

    private void Unwatch(TaskCompletionSource seen)
    {
        lock (_output)
        {
            _watches.RemoveAll(w => w.Seen == seen);
        }
    }

    /// <summary>
    /// Waits until a line of the output contains <paramref name="text"/>: woken by the line itself. Throws with the
    /// output if the process exits first or <paramref name="timeout"/> passes.
    /// </summary>
    public async Task WaitForOutputAsync(string text, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var seen = Watch(text);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            if (await Task.WhenAny(seen.Task, _exited.Task).WaitAsync(deadline.Token).ConfigureAwait(false) != seen.Task)
            {
                // Exited: its last lines may still be in the pipes, so the verdict waits for both pipes to end (a
                // grandchild holding them open gets a few seconds, not the whole timeout).
                await Task.WhenAny(seen.Task, _drained.Task).WaitAsync(DrainTimeout, deadline.Token).ConfigureAwait(false);
                if (!seen.Task.IsCompleted)
                {
                    throw new InvalidOperationException($"process exited ({_process.ExitCode}) before printing '{text}':\n{Output}");
                }
            }
        }
        catch (TimeoutException) when (!seen.Task.IsCompleted)
        {
            throw new InvalidOperationException($"process exited ({_process.ExitCode}) before printing '{text}':\n{Output}");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"no '{text}' within {timeout}:\n{Output}");
        }
        finally
        {
            Unwatch(seen);
        }
    }

    /// <summary>Waits for the process to exit (its output read to the end).</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _exited.Task.WaitAsync(timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"process {Id} did not exit within {timeout}:\n{Output}");
        }

        await _process.WaitForExitAsync().ConfigureAwait(false);
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

    /// <summary>The resident set size (VmRSS in /proc/PID/status), for benchmarks that report memory; 0 after exit.</summary>
    public long ResidentBytes()
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            // Exited and reaped.
        }

        return 0;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int NativeKill(int pid, int signal);

    private void CloseLog()
    {
        lock (_output)
        {
            _log?.Dispose();
            _log = null;
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        var id = _process.Id;
        Kill();
        try
        {
            await _exited.Task.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            // The last lines, for the log file.
            await _drained.Task.WaitAsync(DrainTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }

        Live.TryRemove(id, out _);
        CloseLog();
        _process.Dispose();
    }

    /// <summary>Removes the run root this process owns (see <see cref="OwnRunRoot"/>) once every child is stopped.</summary>
    private sealed class OwnedRunRoot : IDisposable
    {
        public void Dispose()
        {
            KillAll();
            RemoveOwnedRunRoot();
        }
    }
}

/// <summary>What a <see cref="TestProcess"/> does with its output besides keeping it.</summary>
public sealed class TestProcessOptions
{
    /// <summary>A file the output is appended to line by line, so a long run's logs survive it (the benchmark harness's logs/NAME.log).</summary>
    public string? LogFile { get; init; }

    /// <summary>Called with each line of stderr, to forward a child's errors as they happen.</summary>
    public Action<string>? OnStandardError { get; init; }
}
