using System.Text.Json;
using GrainFs.Client;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Processes;

/// <summary>
/// A cache tier on a disk that fails reads: infra/chaos/faultfs.py (a pass-through FUSE file system that returns the
/// errno it is told to) under the SSD tier of a silo process, an HDD tier beside it on a healthy folder.
/// </summary>
public sealed class TierDiskFaultProcessTests
{
    [Fact]
    public async Task A_block_the_disk_cannot_read_is_refilled_elsewhere_and_its_tier_taken_out_of_service()
    {
        var folder = TestProcess.NewFolder("diskfault-data");
        var files = Enumerable.Range(0, 6).Select(i =>
        {
            var bytes = new byte[200_000 + i];
            new Random(i).NextBytes(bytes);
            File.WriteAllBytes(Path.Combine(folder, $"f{i}"), bytes);
            return bytes;
        }).ToList();
        await using var disk = await FaultFs.StartAsync();
        var hdd = TestProcess.NewFolder("diskfault-hdd");
        await using var silo = await SiloProcess.StartAsync("diskfault", new SiloProcessOptions { Tiers = [$"SSD={disk.MountPoint}:64MiB", $"HDD={hdd}:64MiB"] });
        Assert.Equal(0, (await silo.CliAsync("fs", "mount", "/d", $"file://{folder}")).ExitCode);
        Assert.Equal(0, (await silo.CliAsync("fs", "load", "/d")).ExitCode);
        Assert.Equal(6, Directory.GetFiles(Path.Combine(disk.Backing, "blocks"), "*", SearchOption.AllDirectories).Length);

        // The disk now fails every read of a block file; a reader through the data port and one that reads the files
        // itself (short-circuit) both get the right bytes.
        await disk.FailAsync("read EIO");
        foreach (var shortCircuit in new[] { false, true })
        {
            await using var client = await GrainFsClient.ConnectAsync(new GrainFsClientOptions { GatewayPort = silo.GatewayPort, ShortCircuit = shortCircuit, MetadataCacheEntries = 0 });
            for (var i = 0; i < files.Count; i++)
            {
                var buffer = new byte[files[i].Length + 10];
                var read = await client.ReadAsync($"/d/f{i}", 0, buffer);
                Assert.True(read.IsOk, $"f{i} (short-circuit {shortCircuit}): {read.Message}");
                Assert.Equal(files[i], buffer[..read.Value]);
            }
        }

        // The worker dropped what it could not read, took the tier out of service, and holds the blocks on HDD now.
        var (code, stdout, stderr) = await silo.CliAsync("report", "--json");
        Assert.True(code == 0, stderr);
        var worker = JsonDocument.Parse(stdout).RootElement.GetProperty("workers")[0];
        var ssd = worker.GetProperty("tiers").EnumerateArray().First(t => t.GetProperty("tier").GetString() == "SSD");
        Assert.True(ssd.TryGetProperty("outOfService", out var reason) && reason.GetString()!.Length > 0, ssd.ToString());
        Assert.True(worker.GetProperty("lost").GetInt64() >= 1, worker.ToString());
        // The refills complete (renamed into place) just after their bytes reached the readers.
        var onHdd = 0;
        for (var i = 0; i < 100 && (onHdd = Directory.GetFiles(Path.Combine(hdd, "blocks"), "*", SearchOption.AllDirectories).Length) < 6; i++)
        {
            await Task.Delay(100);
        }

        Assert.Equal(6, onHdd);
        Assert.Contains("the disk failed to read", silo.Process.Output, StringComparison.Ordinal);
        Assert.False(silo.Process.HasExited);
    }
}

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
