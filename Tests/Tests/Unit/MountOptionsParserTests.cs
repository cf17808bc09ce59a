using GrainFs.Grains.Namespace;
using GrainFs.Storage.UnderStorage;

namespace GrainFs.Tests.Unit;

public class MountOptionsParserTests
{
    private static Dictionary<string, string> Raw(params string[] pairs) =>
        pairs.Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : string.Empty);

    [Fact]
    public void Parses_every_known_option()
    {
        Assert.True(MountOptionsParser.TryParse("s3", Raw("readonly=true", "sync-interval=5m", "owner=1000", "group=100", "mode=0750", "endpoint=http://127.0.0.1:9000", "secret-key=s"), out var options, out var error), error);
        Assert.True(options.ReadOnly);
        Assert.Equal(300, options.SyncIntervalSeconds);
        Assert.Equal(1000, options.Owner);
        Assert.Equal(100, options.Group);
        Assert.Equal(Convert.ToInt32("750", 8), options.Mode);
        Assert.Equal("http://127.0.0.1:9000", options.Properties["endpoint"]);
        Assert.Equal(MountOptions.Redaction, options.Redacted().Properties["secret-key"]);
        Assert.Equal("s", options.Properties["secret-key"]);
    }

    [Theory]
    [InlineData("file", "nosuchoption=1", "unknown mount option 'nosuchoption'")]
    [InlineData("file", "endpoint=http://x", "unknown mount option 'endpoint'")]
    [InlineData("s3", "sync-interval=soon", "sync-interval")]
    [InlineData("s3", "sync-interval=-2", "sync-interval")]
    [InlineData("s3", "sync-interval=99999999d", "option sync-interval: '99999999d'")]
    [InlineData("file", "sync-interval=3000000000", "option sync-interval: '3000000000'")]
    [InlineData("s3", "mode=0999", "mode")]
    [InlineData("s3", "owner=alice", "numeric uid")]
    [InlineData("s3", "readonly=maybe", "readonly")]
    [InlineData("s3", "region=", "needs a value")]
    public void Refuses_bad_options_naming_them(string scheme, string option, string words)
    {
        Assert.False(MountOptionsParser.TryParse(scheme, Raw(option), out _, out var error));
        Assert.Contains(words, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Options_survive_the_store_as_json()
    {
        Assert.True(MountOptionsParser.TryParse("s3", Raw("readonly", "sync-interval=30", "region=eu-west-1"), out var options, out _));
        var back = MountOptionsParser.FromJson(MountOptionsParser.ToJson(options));
        Assert.Equal(options.ReadOnly, back.ReadOnly);
        Assert.Equal(options.SyncIntervalSeconds, back.SyncIntervalSeconds);
        Assert.Equal("eu-west-1", back.Properties["region"]);
    }

    [Theory]
    [InlineData("s3://bucket", "s3", "bucket", "")]
    [InlineData("s3://my.bucket-1/a/b/", "s3", "my.bucket-1", "a/b")]
    [InlineData("file:///data/set/", "file", "/data/set", "")]
    [InlineData("FILE:///x", "file", "/x", "")]
    public void Parses_under_storage_uris(string uri, string scheme, string location, string prefix)
    {
        Assert.True(UnderStorageFactory.TryParse(uri, out var parsed, out var error), error);
        Assert.Equal(scheme, parsed.Scheme);
        Assert.Equal(location, parsed.Location);
        Assert.Equal(prefix, parsed.Prefix);
    }

    [Theory]
    [InlineData("nosuch://x", "unsupported under-storage scheme 'nosuch'")]
    [InlineData("/tmp", "not an under-storage URI")]
    [InlineData("file://relative", "absolute path")]
    [InlineData("file:///a/../b", "'..'")]
    [InlineData("s3://Bad_Bucket", "not a valid bucket name")]
    [InlineData("s3://b", "not a valid bucket name")]
    [InlineData("s3://bucket/a//b", "empty")]
    public void Refuses_bad_uris_naming_them(string uri, string words)
    {
        Assert.False(UnderStorageFactory.TryParse(uri, out _, out var error));
        Assert.Contains(words, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Never_echoes_credentials_put_in_a_uri()
    {
        Assert.False(UnderStorageFactory.TryParse("s3://AKIAEXAMPLE:SuperSecret@bucket/x", out _, out var error));
        Assert.DoesNotContain("SuperSecret", error, StringComparison.Ordinal);
        Assert.DoesNotContain("AKIAEXAMPLE", error, StringComparison.Ordinal);
    }

    [Fact]
    public void S3_settings_come_from_options_then_the_aws_environment()
    {
        var env = new Dictionary<string, string?>
        {
            ["AWS_ENDPOINT_URL_S3"] = "http://127.0.0.1:9",
            ["AWS_REGION"] = "eu-north-1",
            ["AWS_ACCESS_KEY_ID"] = "envkey",
            ["AWS_SECRET_ACCESS_KEY"] = "envsecret",
        };
        var s3 = new S3UnderStorageProvider();
        string? Env(string key) => env.GetValueOrDefault(key);
        Assert.True(UnderStorageFactory.TryParse("s3://bucket/p", out var uri, out _));
        var fromEnv = s3.Resolve(uri, new Dictionary<string, string>(), Env);
        Assert.Equal("http://127.0.0.1:9", fromEnv.Endpoint);
        Assert.Equal("eu-north-1", fromEnv.Region);
        Assert.True(fromEnv.PathStyle);
        Assert.Equal("envkey", fromEnv.Credentials!.GetCredentials().AccessKey);
        Assert.DoesNotContain("envsecret", fromEnv.ToString(), StringComparison.Ordinal);

        var fromOptions = s3.Resolve(uri, new Dictionary<string, string> { ["region"] = "ap-east-1", ["path-style"] = "false", ["access-key"] = "k", ["secret-key"] = "s" }, Env);
        Assert.Equal("ap-east-1", fromOptions.Region);
        Assert.False(fromOptions.PathStyle);
        Assert.Equal("k", fromOptions.Credentials!.GetCredentials().AccessKey);

        var half = Assert.Throws<UnderStorageException>(() => s3.Resolve(uri, new Dictionary<string, string> { ["access-key"] = "k" }, Env));
        Assert.Contains("together", half.Message, StringComparison.Ordinal);

        var inUrl = Assert.Throws<UnderStorageException>(() => s3.Resolve(uri, new Dictionary<string, string> { ["endpoint"] = "http://AKID:hunter2@10.0.0.5:9000" }, Env));
        Assert.Contains("credentials in the endpoint URL are not accepted", inUrl.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", inUrl.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("AKID", inUrl.Message, StringComparison.Ordinal);
    }
}
