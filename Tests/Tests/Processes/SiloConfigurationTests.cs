using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Processes;

/// <summary>A bad value stops the silo before it starts, with a message naming the key.</summary>
public sealed class SiloConfigurationTests
{
    [Theory]
    [InlineData("--silo-port abc", "GrainFs:SiloPort = 'abc'")]
    [InlineData("--gateway-port 70000", "GrainFs:GatewayPort = '70000'")]
    [InlineData("--dashboard-port 5000 --metrics-port 5000", "the same port as GrainFs:DashboardPort")]
    [InlineData("--roles gpu,teapot", "unknown role 'teapot'")]
    [InlineData("--advertise not-an-ip", "GrainFs:AdvertisedAddress = 'not-an-ip'")]
    [InlineData("--telemetry carrier-pigeon", "GrainFs:Telemetry:Exporter")]
    [InlineData("--host bad,host", "GrainFs:Host")]
    [InlineData("--cluster Hostt=x;;Pasword", "GrainFs:Cluster")]
    [InlineData("--no-such-flag 1", "unknown argument '--no-such-flag'")]
    [InlineData("--data", "--data needs a value")]
    [InlineData("--allow-local-root relative/folder", "GrainFs:AllowLocalRoots:0 = 'relative/folder': not the absolute path of an existing folder")]
    [InlineData("--short-circuit-group no-such-group-x", "GrainFs:Cache:ShortCircuitGroup = 'no-such-group-x': no such group")]
    public async Task Bad_settings_stop_the_silo_naming_the_key(string args, string words)
    {
        var (code, stdout, stderr) = await TestProcess.RunAsync("dotnet", [Repo.SiloDll, .. args.Split(' ')], timeout: TimeSpan.FromSeconds(60));
        Assert.Equal(2, code);
        Assert.Contains(words, stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("GrainFS silo started", stdout, StringComparison.Ordinal);
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task A_tier_folder_another_user_made_or_others_may_write_stops_the_silo_naming_it()
    {
        Assert.Equal("root", Environment.UserName);
        var root = TestProcess.NewFolder("tierrefused");
        var foreign = Path.Combine(root, "foreign");
        var open = Path.Combine(root, "open");
        Directory.CreateDirectory(foreign);
        Directory.CreateDirectory(open);
        await TestProcess.RunAsync("chown", ["65534:65534", foreign]);
        File.SetUnixFileMode(open, (UnixFileMode)Convert.ToInt32("777", 8));
        var (code, stdout, stderr) = await TestProcess.RunAsync(
            "dotnet",
            [Repo.SiloDll, "--data", TestProcess.NewFolder("tierrefused-data"), "--tier", $"MEM={foreign}:64MiB", "--tier", $"SSD={open}:64MiB"],
            timeout: TimeSpan.FromSeconds(60));
        Assert.Equal(2, code);
        Assert.Contains($"grainfs-silo: configuration error: GrainFs:Cache:Tiers: tier MEM folder '{foreign}' is owned by user 65534 (nobody), not by this silo's user 0 (root) (mode 0755)", stderr, StringComparison.Ordinal);
        Assert.Contains($"grainfs-silo: configuration error: GrainFs:Cache:Tiers: tier SSD folder '{open}' is writable by group or others (owner 0 (root), mode 0777)", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("GrainFS silo started", stdout, StringComparison.Ordinal);
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task A_tier_folder_of_a_newer_format_or_with_a_damaged_format_file_is_refused_and_left_untouched()
    {
        var root = TestProcess.NewFolder("tierformat");
        var newer = Path.Combine(root, "newer");
        var damaged = Path.Combine(root, "damaged");
        foreach (var folder in new[] { newer, damaged })
        {
            Directory.CreateDirectory(Path.Combine(folder, "blocks", "ab"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            await File.WriteAllTextAsync(Path.Combine(folder, "blocks", "ab", "block-of-a-newer-silo"), "not format 1");
        }

        await File.WriteAllTextAsync(Path.Combine(newer, "FORMAT"), "grainfs-tier-format 2\n");
        await File.WriteAllTextAsync(Path.Combine(damaged, "FORMAT"), "\u0001garbage\n");
        var (code, stdout, stderr) = await TestProcess.RunAsync(
            "dotnet",
            [Repo.SiloDll, "--data", TestProcess.NewFolder("tierformat-data"), "--tier", $"MEM={newer}:64MiB", "--tier", $"SSD={damaged}:64MiB"],
            timeout: TimeSpan.FromSeconds(60));
        Assert.Equal(2, code);
        Assert.Contains($"tier MEM folder '{newer}' is in tier format 2, written by a newer GrainFS; this one reads format 1", stderr, StringComparison.Ordinal);
        Assert.Contains($"tier SSD folder '{damaged}': its FORMAT file says '?garbage', not 'grainfs-tier-format N'", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("GrainFS silo started", stdout, StringComparison.Ordinal);
        Assert.All(new[] { newer, damaged }, folder => Assert.True(File.Exists(Path.Combine(folder, "blocks", "ab", "block-of-a-newer-silo"))));
    }

    [Fact]
    public async Task Help_lists_every_setting_with_its_key_and_variable()
    {
        var (code, stdout, _) = await TestProcess.RunAsync("dotnet", [Repo.SiloDll, "--help"], timeout: TimeSpan.FromSeconds(60));
        Assert.Equal(0, code);
        foreach (var setting in GrainFs.DataPlane.SettingNames.SiloSettings)
        {
            Assert.Contains($"  {setting.Flag} ", stdout, StringComparison.Ordinal);
            Assert.Contains($"key {setting.Key}, env {setting.Env}", stdout, StringComparison.Ordinal);
        }

        Assert.Contains("  --allow-local-root folder that file:// mounts must be, or lie below", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Environment_variables_are_read_and_checked_too()
    {
        var (code, _, stderr) = await TestProcess.RunAsync("dotnet", [Repo.SiloDll], new Dictionary<string, string?> { ["GRAINFS_SILO_PORT"] = "-5" }, TimeSpan.FromSeconds(60));
        Assert.Equal(2, code);
        Assert.Contains("GrainFs:SiloPort = '-5'", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("GrainFs__Cache__Policy", "fifo", "GrainFs:Cache:Policy = 'fifo'")]
    [InlineData("GrainFs__Namespace__MaxPageEntries", "abc", "GrainFs:Namespace:MaxPageEntries = 'abc'")]
    [InlineData("GrainFs__Namespace__ShardThreshold", "0", "GrainFs:Namespace:ShardThreshold must be at least 1")]
    [InlineData("GrainFs__DirectoryIdleTimeout", "soon", "GrainFs:DirectoryIdleTimeout = 'soon'")]
    [InlineData("GrainFs__Cache__HighWatermark", "lots", "GrainFs:Cache:HighWatermark = 'lots'")]
    [InlineData("GrainFs__Cache__Tiers__0", "MEM=/dev/shm/x:many", "GrainFs:Cache:Tiers:0: 'MEM=/dev/shm/x:many': capacity")]
    [InlineData("GrainFs__Telemetry__OtlpEndpoint", "collector", "GrainFs:Telemetry:OtlpEndpoint = 'collector'")]
    public async Task Bad_configuration_keys_stop_the_silo_naming_the_key(string variable, string value, string words)
    {
        var (code, stdout, stderr) = await TestProcess.RunAsync("dotnet", [Repo.SiloDll], new Dictionary<string, string?> { [variable] = value }, TimeSpan.FromSeconds(60));
        Assert.Equal(2, code);
        Assert.Contains($"grainfs-silo: configuration error: {words}", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("GrainFS silo started", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_bad_value_is_reported_at_once()
    {
        var (code, _, stderr) = await TestProcess.RunAsync(
            "dotnet",
            [Repo.SiloDll, "--silo-port", "abc", "--roles", "teapot", "--tier", "bogus"],
            new Dictionary<string, string?> { ["GrainFs__Namespace__MaxPageEntries"] = "abc", ["GRAINFS_TELEMETRY"] = "smoke" },
            TimeSpan.FromSeconds(60));
        Assert.Equal(2, code);
        foreach (var words in new[] { "GrainFs:SiloPort = 'abc'", "unknown role 'teapot'", "GrainFs:Cache:Tiers:0: 'bogus'", "GrainFs:Namespace:MaxPageEntries = 'abc'", "GrainFs:Telemetry:Exporter = 'smoke'" })
        {
            Assert.Contains(words, stderr, StringComparison.Ordinal);
        }

        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, null, "GrainFs:SiloPort = 'abc'")]
    [InlineData("-5", null, "GrainFs:SiloPort = '-5'")]
    [InlineData("-5", "70000", "GrainFs:SiloPort = '70000'")]
    public async Task Flags_win_over_short_variables_which_win_over_configuration_keys(string? shortVariable, string? flag, string words)
    {
        var environment = new Dictionary<string, string?> { ["GrainFs__SiloPort"] = "abc", ["GRAINFS_SILO_PORT"] = shortVariable };
        string[] args = flag is null ? [Repo.SiloDll] : [Repo.SiloDll, "--silo-port", flag];
        var (code, _, stderr) = await TestProcess.RunAsync("dotnet", args, environment, TimeSpan.FromSeconds(60));
        Assert.Equal(2, code);
        Assert.Contains(words, stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), line => line.Contains("GrainFs:SiloPort", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_bad_cluster_connection_string_is_named_without_its_value()
    {
        var (code, _, stderr) = await TestProcess.RunAsync("dotnet", [Repo.SiloDll, "--cluster", "Host=db;Password=pw-not-shown;Colour=blue"], timeout: TimeSpan.FromSeconds(60));
        Assert.Equal(2, code);
        Assert.Contains("GrainFs:Cluster: not an Npgsql connection string", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("pw-not-shown", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_cluster_database_without_the_schema_is_refused_with_the_fix_and_no_password()
    {
        var pg = await PostgresServer.Shared;
        var connection = pg.ConnectionString("postgres") + ";Password=pw-not-shown";
        var (code, _, stderr) = await TestProcess.RunAsync("dotnet", [Repo.SiloDll, "--cluster", connection, "--data", TestProcess.NewFolder("noschema")], timeout: TimeSpan.FromSeconds(60));
        Assert.Equal(1, code);
        Assert.Contains("infra/db/apply.sh", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("pw-not-shown", stderr, StringComparison.Ordinal);
    }
}
