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
    public async Task Bad_settings_stop_the_silo_naming_the_key(string args, string words)
    {
        var (code, stdout, stderr) = await TestProcess.RunAsync("dotnet", [Repo.SiloDll, .. args.Split(' ')], timeout: TimeSpan.FromSeconds(60));
        Assert.Equal(2, code);
        Assert.Contains(words, stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("GrainFS silo started", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Environment_variables_are_read_and_checked_too()
    {
        var (code, _, stderr) = await TestProcess.RunAsync("dotnet", [Repo.SiloDll], new Dictionary<string, string?> { ["GRAINFS_SILO_PORT"] = "-5" }, TimeSpan.FromSeconds(60));
        Assert.Equal(2, code);
        Assert.Contains("GrainFs:SiloPort = '-5'", stderr, StringComparison.Ordinal);
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
