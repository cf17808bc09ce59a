using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Fuse;

/// <summary>Mounting, signals, unmounting busy and dead mounts, and mount errors.</summary>
public sealed class FuseLifecycleTests(EmbeddedFuseSilo fixture) : IClassFixture<EmbeddedFuseSilo>
{
    [Fact]
    public async Task Sigterm_unmounts_cleanly_and_the_daemon_exits_zero()
    {
        var mount = await FuseProcess.StartAsync(fixture.Silo);
        await using (mount)
        {
            Assert.True(Directory.Exists(Path.Combine(mount.MountPoint, "data")));
            mount.Process.Terminate();
            Assert.Equal(0, await mount.Process.WaitForExitAsync(TimeSpan.FromSeconds(20)));
            Assert.False(FuseProcess.IsMounted(mount.MountPoint));
        }
    }

    [Fact]
    public async Task Umount_while_a_file_is_open_detaches_and_the_open_file_still_reads()
    {
        var mount = await FuseProcess.StartAsync(fixture.Silo);
        await using (mount)
        {
            var path = Path.Combine(mount.MountPoint, "data", "file.bin");
            await using var open = new FileStream(path, FileMode.Open, FileAccess.Read);
            var first = new byte[1000];
            Assert.Equal(1000, await open.ReadAsync(first));
            var (code, stdout, stderr) = await Cli.RunAsync(["umount", mount.MountPoint]);
            Assert.True(code == 0, stdout + stderr);
            Assert.False(FuseProcess.IsMounted(mount.MountPoint));
            var rest = new byte[1000];
            Assert.Equal(1000, await open.ReadAsync(rest));
            Assert.Equal(fixture.Data.AsSpan(1000, 1000).ToArray(), rest);
            open.Close();
            Assert.Equal(0, await mount.Process.WaitForExitAsync(TimeSpan.FromSeconds(20)));
        }
    }

    [Fact]
    public async Task Umount_clears_a_dead_mount_left_by_a_killed_daemon()
    {
        var mount = await FuseProcess.StartAsync(fixture.Silo);
        await using (mount)
        {
            mount.Process.Kill();
            await mount.Process.WaitForExitAsync(TimeSpan.FromSeconds(10));
            var (dead, output) = await FuseFixture.Shell($"ls '{mount.MountPoint}'");
            Assert.NotEqual(0, dead);
            Assert.Contains("Transport endpoint is not connected", output, StringComparison.Ordinal);
            var (code, stdout, stderr) = await Cli.RunAsync(["umount", mount.MountPoint]);
            Assert.True(code == 0, stdout + stderr);
            Assert.False(FuseProcess.IsMounted(mount.MountPoint));
        }
    }

    [Fact]
    public async Task Mount_errors_are_one_line_and_non_zero()
    {
        var gateway = fixture.Silo.GatewayPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var missing = Path.Combine(TestProcess.RunRoot, "no-such-dir-" + Guid.NewGuid().ToString("N")[..6]);
        var (code, _, stderr) = await Cli.RunAsync(["--gateway-port", gateway, "mount", missing]);
        Assert.NotEqual(0, code);
        Assert.Contains("does not exist", stderr, StringComparison.Ordinal);

        var full = TestProcess.NewFolder("full");
        await File.WriteAllTextAsync(Path.Combine(full, "x"), "x");
        (code, _, stderr) = await Cli.RunAsync(["--gateway-port", gateway, "mount", full]);
        Assert.NotEqual(0, code);
        Assert.Contains("is not empty", stderr, StringComparison.Ordinal);

        (code, _, stderr) = await Cli.RunAsync(["--gateway-port", Ports.Free().ToString(System.Globalization.CultureInfo.InvariantCulture), "mount", TestProcess.NewFolder("empty")]);
        Assert.Equal(3, code);
        Assert.Contains("cannot reach the embedded silo", stderr, StringComparison.Ordinal);

        (code, _, stderr) = await Cli.RunAsync(["--gateway-port", gateway, "mount", TestProcess.NewFolder("empty"), "--root", "/not-there"]);
        Assert.NotEqual(0, code);
        Assert.Contains("/not-there", stderr, StringComparison.Ordinal);

        (code, _, stderr) = await Cli.RunAsync(["umount", TestProcess.NewFolder("not-mounted")]);
        Assert.NotEqual(0, code);
        Assert.Contains("is not a mount point", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_kernel_read_ahead_window_is_raised_from_the_kernels_128_KiB_and_follows_the_option()
    {
        // The tests run as root, as a mount daemon for training hosts does: the window can be set.
        foreach (var (options, kib) in new[] { (Array.Empty<string>(), "4096"), (["--kernel-read-ahead", "1MiB"], "1024") })
        {
            var mount = await FuseProcess.StartAsync(fixture.Silo, options);
            await using (mount)
            {
                Assert.True(Directory.Exists(Path.Combine(mount.MountPoint, "data")));
                var file = $"/sys/class/bdi/{GrainFs.Fuse.FuseMount.DeviceOf(mount.MountPoint)}/read_ahead_kb";
                var value = string.Empty;
                for (var i = 0; i < 100 && (value = File.ReadAllText(file).Trim()) != kib; i++)
                {
                    await Task.Delay(50);
                }

                Assert.Equal(kib, value);
                // The daemon logs the window once it is set, which can be a moment after the test sees it.
                await mount.Process.WaitForOutputAsync($"Kernel read-ahead of {mount.MountPoint}: {kib} KiB", TimeSpan.FromSeconds(10));
            }
        }

        var (code, _, stderr) = await Cli.RunAsync(["--gateway-port", fixture.Silo.GatewayPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "mount", TestProcess.NewFolder("empty"), "--kernel-read-ahead", "64KiB"]);
        Assert.Equal(2, code);
        Assert.Contains("--kernel-read-ahead '64KiB'", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Options_map_owner_and_mode_and_a_root_subtree()
    {
        var mount = await FuseProcess.StartAsync(fixture.Silo, ["--root", "/data", "--uid", "1234", "--gid", "4321", "--mode", "0444", "--allow-other"]);
        await using (mount)
        {
            var (code, output) = await FuseFixture.Shell($"stat -c '%u %g %a' '{mount.MountPoint}/file.bin' && setpriv --reuid=65534 --regid=65534 --clear-groups ls '{mount.MountPoint}'");
            Assert.True(code == 0, output);
            Assert.StartsWith("1234 4321 444", output, StringComparison.Ordinal);
            Assert.Contains("file.bin", output, StringComparison.Ordinal);
        }
    }
}

/// <summary>An embedded silo process with one local mount (/data) for lifecycle tests.</summary>
public sealed class EmbeddedFuseSilo : IAsyncLifetime
{
    public SiloProcess Silo { get; private set; } = null!;

    public byte[] Data { get; } = Enumerable.Range(0, 100_000).Select(i => (byte)(i * 7)).ToArray();

    public async Task InitializeAsync()
    {
        var folder = TestProcess.NewFolder("fuse-life");
        await File.WriteAllBytesAsync(Path.Combine(folder, "file.bin"), Data);
        Silo = await SiloProcess.StartAsync("fuse-life");
        Assert.Equal(0, (await Silo.CliAsync("fs", "mount", "/data", $"file://{folder}")).ExitCode);
    }

    public async Task DisposeAsync() => await Silo.DisposeAsync();
}
