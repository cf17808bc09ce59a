using System.Globalization;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Fuse;

/// <summary>
/// The test infrastructure's wait for a mount (the benchmark harness waits for rclone and s3fs with it): woken by the
/// kernel's mount-table change, and given up when the daemon exits.
/// </summary>
public sealed class MountTableTests(EmbeddedFuseSilo fixture) : IClassFixture<EmbeddedFuseSilo>
{
    [Fact]
    public async Task A_wait_for_a_mount_returns_once_the_daemon_has_mounted()
    {
        var folder = TestProcess.NewFolder("mount-wait");
        var daemon = TestProcess.StartDotnet(Repo.CliDll, ["--gateway-port", fixture.Silo.GatewayPort.ToString(CultureInfo.InvariantCulture), "mount", folder]);
        await using (daemon)
        {
            try
            {
                Assert.True(await MountTable.WaitForMountAsync(folder, daemon.Exited, TimeSpan.FromSeconds(60)), daemon.Output);
                Assert.True(MountTable.IsMounted(folder));
            }
            finally
            {
                if (MountTable.IsMounted(folder))
                {
                    await Cli.RunAsync(["umount", folder]);
                }
            }
        }
    }

    [Fact]
    public async Task A_wait_for_a_mount_gives_up_when_the_daemon_exits_without_mounting()
    {
        var folder = TestProcess.NewFolder("mount-gone");
        // No silo listens there: the daemon gives up before it mounts.
        await using var daemon = TestProcess.StartDotnet(Repo.CliDll, ["--gateway-port", Ports.Free().ToString(CultureInfo.InvariantCulture), "mount", folder]);
        Assert.False(await MountTable.WaitForMountAsync(folder, daemon.Exited, TimeSpan.FromSeconds(60)));
        Assert.True(daemon.HasExited);
    }
}
