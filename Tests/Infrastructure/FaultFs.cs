namespace GrainFs.Tests.Infrastructure;

/// <summary>infra/chaos/faultfs.py mounted over a folder of its own: a disk that fails on command.</summary>
public sealed class FaultFs : IAsyncDisposable
{
    private readonly TestProcess _process;
    private readonly string _control;

    private FaultFs(TestProcess process, string backing, string mountPoint, string control)
    {
        _process = process;
        Backing = backing;
        MountPoint = mountPoint;
        _control = control;
    }

    /// <summary>The folder the file system passes its calls to.</summary>
    public string Backing { get; }

    /// <summary>Where it is mounted.</summary>
    public string MountPoint { get; }

    public static async Task<FaultFs> StartAsync()
    {
        var root = TestProcess.NewFolder("faultfs");
        var backing = Directory.CreateDirectory(Path.Combine(root, "backing")).FullName;
        var mountPoint = Directory.CreateDirectory(Path.Combine(root, "mnt")).FullName;
        var control = Path.Combine(root, "control");
        await File.WriteAllTextAsync(control, string.Empty);
        var process = TestProcess.Start("/usr/bin/python3", [Path.Combine(Repo.Root, "infra", "chaos", "faultfs.py"), backing, mountPoint, control]);
        if (!await MountTable.WaitForMountAsync(mountPoint, process.Exited, TimeSpan.FromSeconds(30)))
        {
            var output = process.Output;
            await process.DisposeAsync();
            throw new InvalidOperationException("faultfs.py did not mount (python3-fusepy and libfuse2 are needed):\n" + output);
        }

        return new FaultFs(process, backing, mountPoint, control);
    }

    /// <summary>From now on, the fault named (`OP ERRNO [PATH-SUBSTRING]`, one per line; empty: none).</summary>
    public Task FailAsync(string faults) => File.WriteAllTextAsync(_control, faults + "\n");

    public async ValueTask DisposeAsync()
    {
        await TestProcess.RunAsync("fusermount3", ["-u", "-z", MountPoint], timeout: TimeSpan.FromSeconds(30));
        await _process.DisposeAsync();
    }
}
