using GrainFs.DataPlane;
using GrainFs.DataPlane.Blocks;
using GrainFs.Silo.Hosting;
using GrainFs.Storage.Cache;
using GrainFs.Storage.UnderStorage;
using GrainFs.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace GrainFs.Tests.Unit;

/// <summary>The silo's options as <see cref="SiloConfiguration.Load"/> binds, completes and validates them (no process, no cluster).</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class SiloOptionsTests
{
    private static SiloConfiguration Load(Dictionary<string, string?> values) =>
        SiloConfiguration.Load(new ConfigurationBuilder().AddInMemoryCollection(values).Build());

    private static IReadOnlyList<string> Failures(Dictionary<string, string?> values) =>
        [.. Assert.Throws<OptionsValidationException>(() => Load(values)).Failures];

    [Fact]
    public void Defaults_are_those_of_the_readme()
    {
        var data = TestProcess.NewFolder("defaults");
        var settings = Load(new() { ["GrainFs:Data"] = data });
        var silo = settings.Silo;
        Assert.Null(silo.Cluster);
        Assert.Equal("grainfs", silo.ClusterId);
        Assert.Equal(data, silo.Data);
        Assert.Equal((11111, 30000, 8080, 9464, 0), (silo.SiloPort, silo.GatewayPort, silo.DashboardPort, silo.MetricsPort, silo.DataPort));
        Assert.Equal(Environment.MachineName, silo.Host);
        Assert.Equal(["gpu", "read", "write"], silo.RoleList);
        Assert.Equal("127.0.0.1", silo.AdvertisedAddress);
        Assert.Equal("127.0.0.1", silo.ListenAddress);
        Assert.Equal($"{Environment.MachineName}-11111", silo.SiloName);
        Assert.Equal(TimeSpan.FromMinutes(10), silo.DirectoryIdleTimeout);
        Assert.Empty(silo.AllowLocalRoots);
        Assert.Equal("prometheus", settings.Telemetry.Exporter);
        Assert.Equal(NamespaceOptionsDefaults(), (settings.Namespace.ShardThreshold, settings.Namespace.TargetShardEntries, settings.Namespace.MaxPageEntries, settings.Namespace.SyncRetryDelay));
        Assert.Equal(("tinylfu", 0.95, 0.85), (settings.Cache.Policy, settings.Cache.HighWatermark, settings.Cache.LowWatermark));

        var ssd = Assert.Single(settings.Cache.Tiers, t => t.Name == "SSD");
        Assert.Equal(Path.Combine(data, "cache"), ssd.Path);
        Assert.InRange(ssd.Capacity, 64L << 20, 20L << 30);
        if (Directory.Exists("/dev/shm"))
        {
            Assert.Equal("MEM", settings.Cache.Tiers[0].Name);
            // Named after the silo's user too: another user's silo never shares it (and one made by another user is refused).
            Assert.Equal($"/dev/shm/grainfs-{UnixFiles.EffectiveUserId}-{Environment.MachineName}-11111", settings.Cache.Tiers[0].Path);
            Assert.InRange(settings.Cache.Tiers[0].Capacity, 64L << 20, 1L << 30);
        }
    }

    private static (int, int, int, TimeSpan) NamespaceOptionsDefaults() => (65_536, 32_768, 5_000, TimeSpan.FromSeconds(10));

    [Fact]
    public void Values_are_normalised_as_the_silo_uses_them()
    {
        var settings = Load(new()
        {
            ["GrainFs:Host"] = "gpu-7",
            ["GrainFs:SiloPort"] = "12000",
            ["GrainFs:Roles"] = " GPU, read ,gpu ",
            ["GrainFs:Data"] = "~/grainfs-unit-test",
            ["GrainFs:Telemetry:Exporter"] = "OTLP",
            ["GrainFs:Cache:Policy"] = "LRU",
            ["GrainFs:Cache:Tiers:0"] = "ssd=/data/grainfs:200GiB",
            ["GrainFs:Cache:Tiers:1"] = "MEM=/dev/shm/grainfs:4GiB",
        });
        Assert.Equal("gpu-7-12000", settings.Silo.SiloName);
        Assert.Equal(["gpu", "read"], settings.Silo.RoleList);
        Assert.Equal(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), "grainfs-unit-test"), settings.Silo.Data);
        Assert.Equal("otlp", settings.Telemetry.Exporter);
        Assert.Equal("lru", settings.Cache.Policy);
        Assert.Equal([new TierSpec(TierKind.Mem, "/dev/shm/grainfs", 4L << 30), new TierSpec(TierKind.Ssd, "/data/grainfs", 200L << 30)], settings.Cache.Tiers);
    }

    [Fact]
    public void Allowed_local_roots_come_from_a_repeatable_flag_or_a_colon_separated_variable_with_links_resolved()
    {
        var real = RealPath.ResolveOrFull(TestProcess.NewFolder("allowed-real"));
        var link = Path.Combine(TestProcess.NewFolder("allowed-link"), "to-real");
        Directory.CreateSymbolicLink(link, real);
        var other = RealPath.ResolveOrFull(TestProcess.NewFolder("allowed-other"));

        Assert.True(SettingNames.TryParse(["--allow-local-root", link, $"--allow-local-root={other}/"], SettingNames.SiloSettings, out var flags, out var rest, out _));
        Assert.Empty(rest);
        var variable = SettingNames.FromEnvironment(SettingNames.SiloSettings, name => name == "GRAINFS_ALLOW_LOCAL_ROOT" ? $"{link}:{other}/" : null);
        Assert.Equal(flags.OrderBy(p => p.Key), variable.OrderBy(p => p.Key));
        Assert.Equal(["GrainFs:AllowLocalRoots:0", "GrainFs:AllowLocalRoots:1"], flags.Keys.Order(StringComparer.Ordinal));

        var settings = Load(new(flags) { ["GrainFs:Data"] = TestProcess.NewFolder("allowed-data") });
        Assert.Equal([real, other], settings.Silo.AllowLocalRoots);
    }

    [Fact]
    public void An_allowed_local_root_must_be_an_absolute_existing_folder()
    {
        var file = Path.Combine(TestProcess.NewFolder("allowed-file"), "file");
        File.WriteAllText(file, "x");
        var failures = Failures(new()
        {
            ["GrainFs:Data"] = TestProcess.NewFolder("allowed-bad"),
            ["GrainFs:AllowLocalRoots:0"] = "relative/folder",
            ["GrainFs:AllowLocalRoots:1"] = "/no/such/folder",
            ["GrainFs:AllowLocalRoots:2"] = file,
        });
        Assert.Equal(
            [
                "GrainFs:AllowLocalRoots:0 = 'relative/folder': not the absolute path of an existing folder (--allow-local-root)",
                "GrainFs:AllowLocalRoots:1 = '/no/such/folder': not the absolute path of an existing folder (--allow-local-root)",
                $"GrainFs:AllowLocalRoots:2 = '{file}': not the absolute path of an existing folder (--allow-local-root)",
            ],
            failures);
    }

    [Fact]
    public void A_cluster_silo_advertises_an_address()
    {
        var settings = Load(new() { ["GrainFs:Cluster"] = "Host=db;Database=grainfs", ["GrainFs:Data"] = TestProcess.NewFolder("cluster-defaults") });
        Assert.True(settings.Silo.IsCluster);
        Assert.NotNull(settings.Silo.AdvertisedIPAddress);
    }

    [Fact]
    public void Every_problem_is_reported_once_naming_its_key()
    {
        var failures = Failures(new()
        {
            ["GrainFs:SiloPort"] = "0",
            ["GrainFs:DataPort"] = "30000",
            ["GrainFs:Roles"] = ",",
            ["GrainFs:ListenAddress"] = "localhost",
            ["GrainFs:DirectoryIdleTimeout"] = "00:00:30",
            ["GrainFs:ClusterId"] = new string('c', 151),
            ["GrainFs:Cache:Tiers:0"] = "SSD=/a:512KiB",
            ["GrainFs:Cache:LowWatermark"] = "0.99",
            ["GrainFs:Namespace:MaxPageEntries"] = "0",
        });
        Assert.Equal(
            [
                "GrainFs:SiloPort = '0': not a port number (1-65535)",
                "GrainFs:DataPort = 30000: the same port as GrainFs:GatewayPort",
                "GrainFs:Roles = ',': give at least one of gpu, read, write",
                "GrainFs:ListenAddress = 'localhost': not an IP address",
                "GrainFs:DirectoryIdleTimeout = '00:00:30': a duration longer than 00:01:00 (hh:mm:ss)",
                "GrainFs:ClusterId: at most 150 characters",
                "GrainFs:Cache:Tiers: tier SSD capacity 512 KiB is below 1 MiB",
                "GrainFs:Cache: watermarks must satisfy 0 < LowWatermark (0.99) < HighWatermark (0.95) <= 1",
                "GrainFs:Namespace:MaxPageEntries must be between 1 and 100000 (was 0)",
            ],
            failures);
    }

    [Fact]
    public void Cache_problems_are_reported_even_when_the_silo_section_is_bad()
    {
        var failures = Failures(new() { ["GrainFs:SiloPort"] = "abc", ["GrainFs:Cache:Policy"] = "fifo", ["GrainFs:Data"] = TestProcess.NewFolder("bad-silo") });
        Assert.Equal(["GrainFs:SiloPort = 'abc': not a whole number", "GrainFs:Cache:Policy = 'fifo': use one of lru, tinylfu"], failures);
    }

    [Fact]
    public void A_silo_reads_its_cluster_from_a_private_file_and_never_shows_the_password()
    {
        var folder = TestProcess.NewFolder("silo-cfile");
        var file = Path.Combine(folder, "cluster.conn");
        File.WriteAllText(file, "Host=db;Port=5433;Username=grainfs;Password=pw-not-shown;Database=grainfs\n");
        File.SetUnixFileMode(file, UnixFileMode.UserRead);
        var settings = Load(new() { ["GrainFs:ClusterFile"] = file, ["GrainFs:Data"] = folder });
        Assert.True(settings.Silo.IsCluster);
        Assert.Equal("Host=db;Port=5433;Username=grainfs;Password=pw-not-shown;Database=grainfs", settings.Silo.Cluster);
        Assert.Contains("cluster=Host=db;Port=5433;Database=grainfs;Username=grainfs ", settings.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("pw-not-shown", settings.ToString(), StringComparison.Ordinal);

        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.OtherRead);
        var failures = Failures(new() { ["GrainFs:ClusterFile"] = file, ["GrainFs:Data"] = folder });
        Assert.Equal([$"GrainFs:ClusterFile: '{file}' is readable or writable by group or others (mode 0404); it holds the database connection, so make it 0600 (chmod 600 '{file}')"], failures);
    }
}
