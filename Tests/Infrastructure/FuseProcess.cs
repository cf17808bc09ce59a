namespace GrainFs.Tests.Infrastructure;

/// <summary>`grainfs mount` running as its own process against a silo; disposed with `grainfs umount` and a kill.</summary>
public sealed class FuseProcess : IAsyncDisposable
{
    private FuseProcess(TestProcess process, string mountPoint)
    {
        Process = process;
        MountPoint = mountPoint;
    }

    public TestProcess Process { get; }

    public string MountPoint { get; }

    /// <summary>Mounts at a new folder (or <paramref name="mountPoint"/>) and waits until the kernel shows the mount.</summary>
    public static async Task<FuseProcess> StartAsync(SiloProcess silo, IEnumerable<string>? options = null, string? mountPoint = null)
    {
        var folder = mountPoint ?? TestProcess.NewFolder("mnt");
        var process = TestProcess.StartDotnet(Repo.CliDll, ["--gateway-port", silo.GatewayPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "mount", folder, .. options ?? []]);
        var fuse = new FuseProcess(process, folder);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!IsMounted(folder))
        {
            if (process.HasExited || DateTime.UtcNow > deadline)
            {
                await process.DisposeAsync();
                throw new InvalidOperationException($"grainfs mount did not mount {folder}:\n{process.Output}");
            }

            await Task.Delay(100);
        }

        return fuse;
    }

    /// <summary>True when the kernel lists <paramref name="path"/> as a mount point.</summary>
    public static bool IsMounted(string path) =>
        File.ReadLines("/proc/self/mountinfo").Any(line => line.Split(' ') is { Length: > 4 } fields && fields[4] == path);

    public async ValueTask DisposeAsync()
    {
        if (IsMounted(MountPoint))
        {
            await Cli.RunAsync(["umount", MountPoint]);
        }

        if (!Process.HasExited)
        {
            try
            {
                await Process.WaitForExitAsync(TimeSpan.FromSeconds(10));
            }
            catch (TimeoutException)
            {
                // Killed below.
            }
        }

        await Process.DisposeAsync();
        if (IsMounted(MountPoint))
        {
            await TestProcess.RunAsync("fusermount3", ["-u", "-z", MountPoint]);
        }
    }
}
