using GrainFs.Client;
using Microsoft.Extensions.Configuration;

namespace GrainFs.Tests.Unit;

public class ClientOptionsTests
{
    private static GrainFsClientOptions Bind(Dictionary<string, string?> values) =>
        GrainFsClientOptions.FromConfiguration(new ConfigurationBuilder().AddInMemoryCollection(values).Build());

    [Fact]
    public void Defaults_hold_without_configuration()
    {
        var options = Bind([]);
        Assert.Null(options.Cluster);
        Assert.Equal(GrainFsClientOptions.DEFAULT_CLUSTER_ID, options.ClusterId);
        Assert.Equal(GrainFsClientOptions.DEFAULT_GATEWAY_PORT, options.GatewayPort);
        Assert.Equal(Environment.MachineName, options.Host);
        Assert.Equal(GrainFsClientOptions.DEFAULT_METADATA_CACHE_ENTRIES, options.MetadataCacheEntries);
    }

    [Fact]
    public void The_silo_keys_bind_the_client_too()
    {
        var options = Bind(new()
        {
            ["GrainFs:Cluster"] = "Host=db;Database=grainfs",
            ["GrainFs:ClusterId"] = "prod",
            ["GrainFs:GatewayPort"] = "31000",
            ["GrainFs:Host"] = "gpu-3",
            ["GrainFs:MetadataTtl"] = "00:00:30",
        });
        Assert.Equal(("Host=db;Database=grainfs", "prod", 31000, "gpu-3", TimeSpan.FromSeconds(30)), (options.Cluster, options.ClusterId, options.GatewayPort, options.Host, options.MetadataTtl));
    }

    [Fact]
    public void Every_bad_value_is_named_by_its_flag_variable_and_key_without_a_password()
    {
        var e = Assert.Throws<ArgumentException>(() => Bind(new()
        {
            ["GrainFs:GatewayPort"] = "abc",
            ["GrainFs:Cluster"] = "Host=db;Password=pw-not-shown;Colour=blue",
            ["GrainFs:ListPageSize"] = "0",
        }));
        Assert.Equal(
            "--gateway-port / GRAINFS_GATEWAY_PORT / GrainFs:GatewayPort = 'abc': not a whole number; "
            + "--cluster / GRAINFS_CLUSTER / GrainFs:Cluster: not an Npgsql connection string (Couldn't set colour (Parameter 'colour')); "
            + "GrainFs:ListPageSize = '0': at least 1",
            e.Message);
        Assert.DoesNotContain("pw-not-shown", e.Message, StringComparison.Ordinal);
    }

    private static string ClusterFile(string text, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite)
    {
        var path = Path.Combine(Infrastructure.TestProcess.NewFolder("client-cfile"), "cluster.conn");
        File.WriteAllText(path, text);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, mode);
        }

        return path;
    }

    [Fact]
    public void The_connection_string_comes_from_a_private_cluster_file()
    {
        var file = ClusterFile("# the cluster\n\n  Host=db;Username=grainfs;Password=pw-in-file;Database=grainfs  \n");
        var options = Bind(new() { ["GrainFs:ClusterFile"] = file });
        Assert.Equal("Host=db;Username=grainfs;Password=pw-in-file;Database=grainfs", options.Cluster);
        Assert.Equal(options.Cluster, options.ClusterConnectionString());
        Assert.Equal(options.Cluster, new GrainFsClientOptions { ClusterFile = file }.ClusterConnectionString());
        Assert.Null(new GrainFsClientOptions().ClusterConnectionString());
    }

    [Fact]
    public void A_cluster_file_others_may_read_is_refused_naming_the_file_and_its_mode_not_its_password()
    {
        var file = ClusterFile("Host=db;Password=pw-not-shown", UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        var e = Assert.Throws<ArgumentException>(() => Bind(new() { ["GrainFs:ClusterFile"] = file }));
        Assert.Equal($"--cluster-file / GRAINFS_CLUSTER_FILE / GrainFs:ClusterFile: '{file}' is readable or writable by group or others (mode 0640); it holds the database connection, so make it 0600 (chmod 600 '{file}')", e.Message);
        Assert.Throws<ArgumentException>(() => new GrainFsClientOptions { ClusterFile = file }.ClusterConnectionString());

        var both = Assert.Throws<ArgumentException>(() => Bind(new() { ["GrainFs:ClusterFile"] = ClusterFile("Host=a;Password=pw-not-shown"), ["GrainFs:Cluster"] = "Host=b" }));
        Assert.Contains("give the connection string with --cluster or --cluster-file, not both", both.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("pw-not-shown", e.Message + both.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Gateways_are_host_port_pairs_resolved_for_static_clustering()
    {
        var options = Bind(new() { ["GrainFs:Gateways"] = "10.0.0.5:30000, localhost:30001,[::1]:30002" });
        Assert.Equal(
            [new System.Net.IPEndPoint(System.Net.IPAddress.Parse("10.0.0.5"), 30000), new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 30001), new System.Net.IPEndPoint(System.Net.IPAddress.IPv6Loopback, 30002)],
            options.GatewayEndPoints());
        Assert.Empty(new GrainFsClientOptions().GatewayEndPoints());

        foreach (var (text, words) in new[]
        {
            ("silo-1", "'silo-1' is not host:port"),
            ("silo-1:0", "'silo-1:0': '0' is not a port number (1-65535)"),
            ("silo-1:30000,:30001", "':30001' is not host:port"),
            ("::1:30000", "'::1:30000' is not host:port"),
            (",", "',' names no gateway"),
        })
        {
            var e = Assert.Throws<ArgumentException>(() => Bind(new() { ["GrainFs:Gateways"] = text }));
            Assert.StartsWith($"--gateways / GRAINFS_GATEWAYS / GrainFs:Gateways: {words}", e.Message, StringComparison.Ordinal);
        }

        var unknown = Assert.Throws<GrainFsConnectException>(() => new GrainFsClientOptions { Gateways = "no-such-host.invalid:30000" }.GatewayEndPoints());
        Assert.Contains("gateway 'no-such-host.invalid:30000' (--gateways): cannot resolve 'no-such-host.invalid'", unknown.Message, StringComparison.Ordinal);
    }
}
