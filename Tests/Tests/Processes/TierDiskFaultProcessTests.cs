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

        // A FUSE mount reads every file once while the disk is healthy (its daemon then answers reads of these blocks
        // straight from the block files).
        await using var fuse = await FuseProcess.StartAsync(silo);
        for (var i = 0; i < files.Count; i++)
        {
            Assert.Equal(files[i], await File.ReadAllBytesAsync(Path.Combine(fuse.MountPoint, "d", $"f{i}")));
        }

        // The disk now fails every read of a block file; a reader through the data port, one that reads the files
        // itself (short-circuit) and one through the FUSE mount (the kernel's cached pages dropped) get the right bytes.
        await disk.FailAsync("read EIO");
        await File.WriteAllTextAsync("/proc/sys/vm/drop_caches", "1");
        for (var i = 0; i < files.Count; i++)
        {
            Assert.Equal(files[i], await File.ReadAllBytesAsync(Path.Combine(fuse.MountPoint, "d", $"f{i}")));
        }

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

        // The worker dropped what it could not read and took the tier out of service (its refills go to HDD meanwhile).
        var (code, stdout, stderr) = await silo.CliAsync("report", "--json");
        Assert.True(code == 0, stderr);
        var worker = JsonDocument.Parse(stdout).RootElement.GetProperty("workers")[0];
        var ssd = worker.GetProperty("tiers").EnumerateArray().First(t => t.GetProperty("tier").GetString() == "SSD");
        Assert.True(ssd.TryGetProperty("outOfService", out var reason) && reason.GetString()!.Length > 0, ssd.ToString());
        Assert.True(worker.GetProperty("lost").GetInt64() >= 1, worker.ToString());
        Assert.Contains("the disk failed to read", silo.Process.Output, StringComparison.Ordinal);
        Assert.False(silo.Process.HasExited);
    }
}
