using System.Globalization;

namespace GrainFs.Tests.Infrastructure;

/// <summary>`grainfs mount` running as its own process against a silo; disposed with `grainfs umount` and a kill.</summary>
public sealed class FuseProcess : IAsyncDisposable
{
    private readonly string _cliDll;

    private FuseProcess(TestProcess process, string mountPoint, string cliDll)
    {
        Process = process;
        MountPoint = mountPoint;
        _cliDll = cliDll;
    }

    /// <summary>The FUSE daemon's process.</summary>
    public TestProcess Process { get; }

    /// <summary>Where the file system is mounted.</summary>
    public string MountPoint { get; }

    /// <summary>
    /// Mounts at a new folder (or <paramref name="mountPoint"/>) and waits for the daemon's "mounted at" line, which it
    /// prints once the kernel holds the mount; then checks the kernel's mount table.
    /// </summary>
    /// <param name="silo">The silo whose gateway the daemon connects to.</param>
    /// <param name="options">Arguments after `mount DIR` (--root, --uid, --host …).</param>
    /// <param name="mountPoint">An existing folder; null for a new one under the run root.</param>
    /// <param name="cliDll">The CLI's dll; null for the one built next to this repository (a benchmark's <c>--cli DLL</c>).</param>
    /// <param name="logFile">A file the daemon's output is appended to.</param>
    /// <param name="cancellationToken">Stops the wait (the daemon is stopped).</param>
    public static async Task<FuseProcess> StartAsync(SiloProcess silo, IEnumerable<string>? options = null, string? mountPoint = null, string? cliDll = null, string? logFile = null, CancellationToken cancellationToken = default)
    {
        // The daemon and the kernel name the mount point by its full path.
        var folder = Path.TrimEndingDirectorySeparator(Path.GetFullPath(mountPoint ?? TestProcess.NewFolder("mnt")));
        var cli = cliDll ?? Repo.CliDll;
        var process = TestProcess.StartDotnet(cli, ["--gateway-port", silo.GatewayPort.ToString(CultureInfo.InvariantCulture), "mount", folder, .. options ?? []], options: new TestProcessOptions { LogFile = logFile });
        try
        {
            await process.WaitForOutputAsync($"mounted at {folder};", TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false);
            if (!IsMounted(folder))
            {
                throw new InvalidOperationException($"grainfs mount reported a mount at {folder} that the kernel does not list:\n{process.Output}");
            }
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException)
        {
            await process.DisposeAsync().ConfigureAwait(false);
            throw new InvalidOperationException($"grainfs mount did not mount {folder}:\n{process.Output}", e);
        }
        catch
        {
            await process.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return new FuseProcess(process, folder, cli);
    }

    /// <summary>True when the kernel lists <paramref name="path"/> as a mount point.</summary>
    public static bool IsMounted(string path) => MountTable.IsMounted(path);

    /// <summary>Unmounts (`grainfs umount`, then a lazy `fusermount3 -u -z` if the daemon left the mount) and stops the daemon.</summary>
    public async ValueTask DisposeAsync()
    {
        if (IsMounted(MountPoint))
        {
            await Cli.RunAsync(_cliDll, ["umount", MountPoint]).ConfigureAwait(false);
        }

        if (!Process.HasExited)
        {
            try
            {
                await Process.WaitForExitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Killed below.
            }
        }

        await Process.DisposeAsync().ConfigureAwait(false);
        if (IsMounted(MountPoint))
        {
            await TestProcess.RunAsync("fusermount3", ["-u", "-z", MountPoint]).ConfigureAwait(false);
        }
    }
}
