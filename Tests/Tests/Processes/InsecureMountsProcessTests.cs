using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Processes;

/// <summary>
/// A silo run with --insecure-no-auth has no cluster key: its mount table still loads and stores mounts (credentials as
/// given), and a client without credentials reads files (it gets every mount's block-name key).
/// </summary>
public sealed class InsecureMountsProcessTests
{
    [Fact]
    public async Task A_silo_without_a_cluster_key_mounts_lists_and_reads_a_bucket()
    {
        var moto = await MotoServer.Shared;
        var bucket = await moto.CreateBucketAsync("insecure");
        await moto.PutAsync(bucket, "a.txt", "hello"u8.ToArray());
        await using var silo = await SiloProcess.StartAsync("insecure", ["--insecure-no-auth"]);
        var insecure = new Dictionary<string, string?> { ["GRAINFS_INSECURE_NO_AUTH"] = "true" };
        var port = silo.GatewayPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var (code, _, err) = await Cli.RunAsync(["--gateway-port", port, "fs", "mount", "/s", $"s3://{bucket}", "--option", $"endpoint={moto.Endpoint}", "--option", $"access-key={MotoServer.AccessKey}", "--option", $"secret-key={MotoServer.SecretKey}"], insecure);
        Assert.True(code == 0, err);
        // Listed from the bucket with the credentials as stored.
        var (lcode, text, lerr) = await Cli.RunAsync(["--gateway-port", port, "fs", "ls", "/s"], insecure);
        Assert.True(lcode == 0, lerr);
        Assert.Contains("a.txt", text, StringComparison.Ordinal);

        // Read through the cache; the switch on the command line (not followed by a value) works as the variable does.
        var (ccode, content, cerr) = await Cli.RunAsync(["--gateway-port", port, "--insecure-no-auth", "fs", "cat", "/s/a.txt"]);
        Assert.True(ccode == 0, cerr);
        Assert.Equal("hello", content);
    }
}
