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
}
