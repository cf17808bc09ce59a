using System.Diagnostics;
using System.Globalization;
using GrainFs.Fuse;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Fuse;

/// <summary>An embedded silo process with a local folder of many small files mounted at /data.</summary>
public sealed class SupervisedMountSilo : IAsyncLifetime
{
    public const int Files = 400;

    public SiloProcess Silo { get; private set; } = null!;

    public string Folder { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Folder = TestProcess.NewFolder("fuse-sup");
        var random = new Random(5);
        for (var i = 0; i < Files; i++)
        {
            var bytes = new byte[30_000 + (i * 97)];
            random.NextBytes(bytes);
            await File.WriteAllBytesAsync(Path.Combine(Folder, $"f{i:D3}"), bytes);
        }

        Silo = await SiloProcess.StartAsync("fuse-sup");
        Assert.Equal(0, (await Silo.CliAsync("fs", "mount", "/data", $"file://{Folder}")).ExitCode);
    }

    public async Task DisposeAsync() => await Silo.DisposeAsync();
}

/// <summary>
/// The supervisor that `grainfs mount` runs keeps the kernel's FUSE connection while the process serving it dies or is
/// replaced: readers pause and go on, open files and the working directory keep working, writers lose nothing.
/// </summary>
public sealed class FuseSupervisorTests(SupervisedMountSilo fixture) : IClassFixture<SupervisedMountSilo>
{
    [Fact]
    public async Task The_mount_survives_SIGKILL_of_its_serving_process_during_reads()
    {
        var mount = await FuseProcess.StartAsync(fixture.Silo);
        await using (mount)
        {
            var state = MountState.For(mount.MountPoint, 0);
            var read = 0;
            var wrong = new List<string>();
            var longest = TimeSpan.Zero;
            // Every file is read once: the kernel has none of them cached, so every read reaches the serving process.
            var reader = Task.Run(async () =>
            {
                for (var i = 0; i < SupervisedMountSilo.Files; i++)
                {
                    var name = $"f{i:D3}";
                    var clock = Stopwatch.StartNew();
                    var got = await File.ReadAllBytesAsync(Path.Combine(mount.MountPoint, "data", name));
                    longest = clock.Elapsed > longest ? clock.Elapsed : longest;
                    var want = await File.ReadAllBytesAsync(Path.Combine(fixture.Folder, name));
                    if (!got.AsSpan().SequenceEqual(want))
                    {
                        wrong.Add(name);
                    }

                    Volatile.Write(ref read, i + 1);
                    await Task.Delay(5);
                }
            });

            var killed = new List<int>();
            for (var k = 0; k < 4; k++)
            {
                // Each kill lands while the reader is reading, after the previous replacement has served some reads.
                var from = Volatile.Read(ref read);
                await Until(() => Volatile.Read(ref read) >= from + 20 || reader.IsCompleted, TimeSpan.FromSeconds(60));
                var serving = MountState.ReadPid(state.ServingFile);
                Assert.True(serving > 0 && serving != mount.Process.Id, $"serving process {serving}");
                SigKill(serving);
                killed.Add(serving);
                await ReplacedAsync(state, serving);
            }

            await reader.WaitAsync(TimeSpan.FromMinutes(3));
            Console.WriteLine($"supervisor: {SupervisedMountSilo.Files} reads across {killed.Count} SIGKILLs of the serving process, longest read {longest.TotalMilliseconds:F0} ms");
            Assert.True(killed.Count == 4 && Volatile.Read(ref read) == SupervisedMountSilo.Files, $"{read} read");
            Assert.Empty(wrong);
            Assert.False(mount.Process.HasExited, mount.Process.Output);
            Assert.Equal(SupervisedMountSilo.Files, Directory.GetFiles(Path.Combine(mount.MountPoint, "data"), "f???").Length);
            Assert.Contains("FUSE_NOTIFY_RESEND", mount.Process.Output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Open_files_and_listings_keep_working_across_a_kill_and_an_upgrade()
    {
        var mount = await FuseProcess.StartAsync(fixture.Silo);
        await using (mount)
        {
            var state = MountState.For(mount.MountPoint, 0);
            var path = Path.Combine(mount.MountPoint, "data", "f123");
            var expected = await File.ReadAllBytesAsync(Path.Combine(fixture.Folder, "f123"));
            await using var open = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            var got = new byte[expected.Length];
            Assert.Equal(1000, await open.ReadAsync(got.AsMemory(0, 1000)));
            // Only the fixture's own files (another test writes beside them).
            var listing = Directory.EnumerateFiles(Path.Combine(mount.MountPoint, "data"), "f???").GetEnumerator();
            Assert.True(listing.MoveNext());

            var first = MountState.ReadPid(state.ServingFile);
            SigKill(first);
            await ReplacedAsync(state, first);
            Assert.Equal(5000, await open.ReadAtLeastAsync(got.AsMemory(1000, 5000), 5000));

            var (code, stdout, stderr) = await Cli.RunAsync(["mount", mount.MountPoint, "--upgrade"]);
            Assert.True(code == 0, stdout + stderr);
            Assert.Matches(@"serving process \d+ replaced by \d+", stdout);
            await open.ReadExactlyAsync(got.AsMemory(6000));
            Assert.Equal(expected, got);

            var names = 1;
            while (listing.MoveNext())
            {
                names++;
            }

            Assert.Equal(SupervisedMountSilo.Files, names);
            // Names looked up before the kill are still known (the inode journal), and new ones resolve.
            Assert.Equal(expected, await File.ReadAllBytesAsync(path));
            Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(fixture.Folder, "f399")), await File.ReadAllBytesAsync(Path.Combine(mount.MountPoint, "data", "f399")));
            Assert.Contains("inode(s) taken over", mount.Process.Output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task An_upgrade_waits_for_files_open_for_writing_and_loses_nothing_they_wrote()
    {
        var mount = await FuseProcess.StartAsync(fixture.Silo);
        await using (mount)
        {
            var state = MountState.For(mount.MountPoint, 0);
            var name = $"written-{Guid.NewGuid().ToString("N")[..6]}";
            var data = new byte[3 << 20];
            new Random(9).NextBytes(data);
            var before = MountState.ReadPid(state.ServingFile);
            var writer = new FileStream(Path.Combine(mount.MountPoint, "data", name), FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1);
            await writer.WriteAsync(data.AsMemory(0, 1 << 20));
            var upgrade = Cli.RunAsync(["mount", mount.MountPoint, "--upgrade"]);
            await Task.Delay(TimeSpan.FromSeconds(2));
            Assert.False(upgrade.IsCompleted, "the upgrade went ahead with a file open for writing");
            Assert.Equal(before, MountState.ReadPid(state.ServingFile));
            await writer.WriteAsync(data.AsMemory(1 << 20));
            await writer.DisposeAsync();
            var (code, stdout, stderr) = await upgrade.WaitAsync(TimeSpan.FromMinutes(2));
            Assert.True(code == 0, stdout + stderr);
            Assert.NotEqual(before, MountState.ReadPid(state.ServingFile));
            Assert.Equal(data, await File.ReadAllBytesAsync(Path.Combine(mount.MountPoint, "data", name)));
        }
    }

    [Fact]
    public async Task SIGTERM_to_the_supervisor_unmounts_stops_its_serving_process_and_removes_its_state()
    {
        var mount = await FuseProcess.StartAsync(fixture.Silo);
        await using (mount)
        {
            var state = MountState.For(mount.MountPoint, 0);
            var serving = MountState.ReadPid(state.ServingFile);
            Assert.True(serving > 0 && Alive(serving));
            mount.Process.Terminate();
            Assert.Equal(0, await mount.Process.WaitForExitAsync(TimeSpan.FromSeconds(30)));
            Assert.False(FuseProcess.IsMounted(mount.MountPoint));
            await Until(() => !Alive(serving), TimeSpan.FromSeconds(10));
            Assert.False(Directory.Exists(state.Folder));
        }
    }

    [Fact]
    public async Task A_read_order_is_announced_again_by_the_next_serving_process_and_followed_to_its_end()
    {
        var mount = await FuseProcess.StartAsync(fixture.Silo);
        await using (mount)
        {
            var state = MountState.For(mount.MountPoint, 0);
            var files = Enumerable.Range(200, 100).Select(i => Path.Combine(mount.MountPoint, "data", $"f{i:D3}")).ToList();
            var job = $"sup-{Guid.NewGuid().ToString("N")[..6]}";
            using (var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified))
            {
                await socket.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(OrderSocket.PathFor(mount.MountPoint, 0)));
                var request = System.Text.Encoding.UTF8.GetBytes($"{{\"v\":1,\"job\":\"{job}\",\"window\":200000}}\n" + string.Join('\0', files));
                await socket.SendAsync(request);
                socket.Shutdown(System.Net.Sockets.SocketShutdown.Send);
                var reply = new byte[4096];
                var n = await socket.ReceiveAsync(reply);
                Assert.Contains("\"accepted\":100", System.Text.Encoding.UTF8.GetString(reply, 0, n), StringComparison.Ordinal);
            }

            Assert.Single(Directory.GetFiles(state.OrdersFolder, "*.order"));
            var first = MountState.ReadPid(state.ServingFile);
            SigKill(first);
            await ReplacedAsync(state, first);
            await mount.Process.WaitForOutputAsync($"Read order of job {job} (100 files) announced again", TimeSpan.FromSeconds(30));

            // The next process follows the reader to the end of the order, which then is over and no longer kept.
            foreach (var file in files)
            {
                Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(fixture.Folder, Path.GetFileName(file))), await File.ReadAllBytesAsync(file));
            }

            await Until(() => Directory.GetFiles(state.OrdersFolder, "*.order").Length == 0, TimeSpan.FromSeconds(30));
        }
    }

    [Fact]
    public async Task A_mount_point_given_with_a_trailing_slash_is_found_by_its_name_for_upgrades_and_read_orders()
    {
        var folder = TestProcess.NewFolder("slash");
        var gateway = fixture.Silo.GatewayPort.ToString(CultureInfo.InvariantCulture);
        // As shell completion writes it.
        await using var daemon = TestProcess.StartDotnet(Repo.CliDll, ["--gateway-port", gateway, "mount", folder + "/"]);
        await daemon.WaitForOutputAsync($"mounted at {folder};", TimeSpan.FromSeconds(60));
        try
        {
            Assert.True(File.Exists(OrderSocket.PathFor(folder, 0)), "the order socket is not where a client looks for it");
            var (code, stdout, stderr) = await Cli.RunAsync(["mount", folder, "--upgrade"]);
            Assert.True(code == 0, stdout + stderr);
        }
        finally
        {
            await Cli.RunAsync(["umount", folder]);
        }
    }

    [Fact]
    public async Task Upgrading_a_mount_without_a_supervisor_is_a_clear_error()
    {
        var (code, _, stderr) = await Cli.RunAsync(["mount", TestProcess.NewFolder("not-mounted"), "--upgrade"]);
        Assert.NotEqual(0, code);
        Assert.Contains("no supervised GrainFS mount at", stderr, StringComparison.Ordinal);
    }

    /// <summary>Waits until another process than <paramref name="old"/> serves the mount.</summary>
    private static Task ReplacedAsync(MountState state, int old) =>
        Until(() => MountState.ReadPid(state.ServingFile) is var now && now != 0 && now != old, TimeSpan.FromSeconds(60));

    private static async Task Until(Func<bool> condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < timeout, $"not within {timeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s");
            await Task.Delay(20);
        }
    }

    private static void SigKill(int pid)
    {
        using var process = Process.GetProcessById(pid);
        process.Kill();
    }

    private static bool Alive(int pid) => Directory.Exists($"/proc/{pid}");
}
