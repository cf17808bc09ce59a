using System.Text.Json;
using Amazon.S3.Model;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Processes;

/// <summary>The embedded silo as its own process, driven by the grainfs CLI as a user would.</summary>
public sealed class EmbeddedSiloFixture : IAsyncLifetime
{
    public SiloProcess Silo { get; private set; } = null!;

    public MotoServer Moto { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Moto = await MotoServer.Shared;
        // The silo reaches S3 through the standard AWS environment, as an operator would configure it.
        Silo = await SiloProcess.StartAsync("embedded", environment: Moto.Environment);
    }

    public async Task DisposeAsync() => await Silo.DisposeAsync();
}

public sealed class EmbeddedSiloCliTests(EmbeddedSiloFixture fixture) : IClassFixture<EmbeddedSiloFixture>
{
    private static Dictionary<string, long> JsonFiles(string json, string prefix)
    {
        using var document = JsonDocument.Parse(json);
        var files = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var item in document.RootElement.EnumerateArray())
        {
            var path = item.GetProperty("path").GetString()!;
            Assert.StartsWith(prefix + "/", path, StringComparison.Ordinal);
            Assert.False(string.IsNullOrEmpty(item.GetProperty("mtime").GetString()));
            Assert.True(item.TryGetProperty("etag", out _));
            if (item.GetProperty("kind").GetString() == "file")
            {
                files.Add(path[(prefix.Length + 1)..], item.GetProperty("size").GetInt64());
            }
            else
            {
                Assert.Equal("directory", item.GetProperty("kind").GetString());
            }
        }

        return files;
    }

    [Fact]
    public async Task Ls_json_of_a_bucket_and_a_folder_lists_exactly_what_s3_and_find_list()
    {
        var folder = TestProcess.NewFolder("cli-ds");
        TestData.ImageFolder(folder, classes: 6, perClass: 50, maxSize: 120_000);
        Directory.CreateDirectory(Path.Combine(folder, "empty-dir"));
        await File.WriteAllTextAsync(Path.Combine(folder, "README"), "top-level file");
        var bucket = await fixture.Moto.CreateBucketAsync("cli");
        await fixture.Moto.UploadFolderAsync(folder, bucket, "ds");

        var suffix = Guid.NewGuid().ToString("N")[..6];
        var (code, _, err) = await fixture.Silo.CliAsync("fs", "mount", $"/local{suffix}", $"file://{folder}");
        Assert.True(code == 0, err);
        (code, _, err) = await fixture.Silo.CliAsync("fs", "mount", $"/s3{suffix}", $"s3://{bucket}/ds", "--readonly", "--sync-interval", "300");
        Assert.True(code == 0, err);

        // What `find -type f` and `aws s3 ls --recursive` (ListObjectsV2) report.
        var find = TestData.Find(folder);
        var s3 = new Dictionary<string, long>(StringComparer.Ordinal);
        using (var client = fixture.Moto.Client())
        {
            string? token = null;
            do
            {
                var page = await client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = bucket, Prefix = "ds/", ContinuationToken = token });
                foreach (var o in page.S3Objects ?? [])
                {
                    s3.Add(o.Key["ds/".Length..], o.Size ?? 0);
                }

                token = page.IsTruncated == true ? page.NextContinuationToken : null;
            }
            while (token is not null);
        }

        var (lcode, localJson, lerr) = await fixture.Silo.CliAsync("fs", "ls", "-R", "--json", $"/local{suffix}");
        Assert.True(lcode == 0, lerr);
        var (scode, s3Json, serr) = await fixture.Silo.CliAsync("fs", "ls", "-R", "--json", $"/s3{suffix}");
        Assert.True(scode == 0, serr);
        Assert.Equal(find.OrderBy(x => x.Key), JsonFiles(localJson, $"/local{suffix}").OrderBy(x => x.Key));
        Assert.Equal(s3.OrderBy(x => x.Key), JsonFiles(s3Json, $"/s3{suffix}").OrderBy(x => x.Key));
        Assert.Equal(301, s3.Count);

        var (statCode, statJson, _) = await fixture.Silo.CliAsync("fs", "stat", "--json", $"/s3{suffix}/class02/img0007.jpg");
        Assert.Equal(0, statCode);
        Assert.Equal(find["class02/img0007.jpg"], Assert.Single(JsonFiles(statJson, $"/s3{suffix}")).Value);

        var (mcode, mounts, _) = await fixture.Silo.CliAsync("fs", "mounts", "--json");
        Assert.Equal(0, mcode);
        using var document = JsonDocument.Parse(mounts);
        var s3Mount = document.RootElement.EnumerateArray().Single(m => m.GetProperty("path").GetString() == $"/s3{suffix}");
        Assert.True(s3Mount.GetProperty("readOnly").GetBoolean());
        Assert.Equal(300, s3Mount.GetProperty("syncIntervalSeconds").GetInt32());
    }

    [Theory]
    [InlineData("fs mount /m{0}/nested file:///tmp", "nested mounts are not allowed")]
    [InlineData("fs mount relative file:///tmp", "not absolute")]
    [InlineData("fs mount /x/../y file:///tmp", "'..'")]
    [InlineData("fs mount /z{0} nosuch://x", "unsupported under-storage scheme")]
    [InlineData("fs mount /q{0} file:///tmp --option nosuchoption=1", "unknown mount option 'nosuchoption'")]
    [InlineData("fs mount /q{0} file:///no/such/folder", "no such directory")]
    [InlineData("fs mount /q{0} s3://key:secret@bucket", "credentials in the URI are not accepted")]
    [InlineData("fs stat /nonexistent/file", "no such file or directory")]
    [InlineData("fs ls /m{0}/../../etc", "'..'")]
    [InlineData("fs unmount /never-mounted", "not a mount point")]
    [InlineData("fs frobnicate /x", "unknown command")]
    [InlineData("fs ls", "missing arguments")]
    [InlineData("fs ls -Z /", "unknown option '-Z'")]
    public async Task Bad_input_gets_a_one_line_error_and_a_non_zero_exit(string command, string words)
    {
        var suffix = Guid.NewGuid().ToString("N")[..6];
        var guard = TestProcess.NewFolder("guard");
        var mounted = await fixture.Silo.CliAsync("fs", "mount", $"/m{suffix}", $"file://{guard}");
        Assert.Equal(0, mounted.ExitCode);
        var args = string.Format(System.Globalization.CultureInfo.InvariantCulture, command, suffix).Split(' ');
        var (code, stdout, stderr) = await fixture.Silo.CliAsync(args);
        Assert.NotEqual(0, code);
        Assert.Contains(words, stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.DoesNotContain("root:x:0:0", stdout + stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", stderr.Replace("secret-key", string.Empty, StringComparison.Ordinal), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Credentials_given_as_options_never_show_in_mounts_or_the_silo_log()
    {
        var bucket = await fixture.Moto.CreateBucketAsync("creds");
        await fixture.Moto.PutAsync(bucket, "x", [1]);
        const string secret = "Sup3rS3cretValue-never-print";
        var path = $"/creds{Guid.NewGuid().ToString("N")[..6]}";
        var (code, _, err) = await fixture.Silo.CliAsync("fs", "mount", path, $"s3://{bucket}", "--option", $"endpoint={fixture.Moto.Endpoint}", "--option", "access-key=AKIDVISIBLE", "--option", $"secret-key={secret}");
        Assert.True(code == 0, err);
        var (_, plain, _) = await fixture.Silo.CliAsync("fs", "mounts");
        var (_, json, _) = await fixture.Silo.CliAsync("fs", "mounts", "--json");
        var (_, ls, _) = await fixture.Silo.CliAsync("fs", "ls", "-l", path);
        Assert.Contains(path, plain, StringComparison.Ordinal);
        Assert.Contains("x", ls, StringComparison.Ordinal);
        foreach (var text in new[] { plain, json, fixture.Silo.Process.Output })
        {
            Assert.DoesNotContain(secret, text, StringComparison.Ordinal);
            Assert.DoesNotContain("AKIDVISIBLE", text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task The_cli_says_so_when_no_silo_listens()
    {
        var (code, _, stderr) = await Cli.RunAsync(["--gateway-port", Ports.Free().ToString(System.Globalization.CultureInfo.InvariantCulture), "fs", "mounts"]);
        Assert.Equal(3, code);
        Assert.Contains("cannot reach the embedded silo at 127.0.0.1:", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Load_cat_free_and_report_work_from_the_command_line()
    {
        var folder = TestProcess.NewFolder("cli-cache");
        var data = new byte[3_000_000];
        new Random(21).NextBytes(data);
        await File.WriteAllBytesAsync(Path.Combine(folder, "blob.bin"), data);
        TestData.ImageFolder(folder, classes: 2, perClass: 5);
        var path = $"/cache{Guid.NewGuid().ToString("N")[..6]}";
        Assert.Equal(0, (await fixture.Silo.CliAsync("fs", "mount", path, $"file://{folder}", "--option", "block-size=1MiB")).ExitCode);

        var (code, stdout, stderr) = await fixture.Silo.CliAsync("fs", "load", path);
        Assert.True(code == 0, stderr);
        Assert.Matches(@"Loaded 11 files, 13 blocks, .* in [0-9.]+ s \([0-9.]+ MB/s\)", stdout);
        Assert.Contains("100.0 %", stderr, StringComparison.Ordinal);

        var cat = await TestProcess.RunAsync("/bin/bash", ["-c", $"dotnet '{Repo.CliDll}' --gateway-port {fixture.Silo.GatewayPort} fs cat {path}/blob.bin | cmp - '{folder}/blob.bin' && echo same"]);
        Assert.Contains("same", cat.Stdout, StringComparison.Ordinal);

        (code, stdout, _) = await fixture.Silo.CliAsync("report", "--json");
        Assert.Equal(0, code);
        using var report = JsonDocument.Parse(stdout);
        var worker = Assert.Single(report.RootElement.GetProperty("workers").EnumerateArray());
        Assert.False(string.IsNullOrEmpty(worker.GetProperty("silo").GetString()));
        Assert.False(string.IsNullOrEmpty(worker.GetProperty("host").GetString()));
        var tiers = worker.GetProperty("tiers").EnumerateArray().ToList();
        Assert.Equal(["MEM", "SSD"], tiers.Select(t => t.GetProperty("tier").GetString()));
        Assert.All(tiers, t => Assert.True(t.GetProperty("used").GetInt64() <= t.GetProperty("capacity").GetInt64()));
        Assert.True(tiers.Sum(t => t.GetProperty("blocks").GetInt32()) >= 13);

        (code, stdout, stderr) = await fixture.Silo.CliAsync("fs", "free", path);
        Assert.True(code == 0, stderr);
        Assert.Contains("Freed 13 blocks", stdout, StringComparison.Ordinal);
        (code, _, stderr) = await fixture.Silo.CliAsync("fs", "ttl", path, "soon");
        Assert.Equal(2, code);
        Assert.Contains("not a duration", stderr, StringComparison.Ordinal);
    }
}
