using Amazon.S3.Model;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Fuse;

/// <summary>
/// A real FUSE mount (`grainfs mount` as its own process) of an embedded silo process that has a local folder
/// and a moto bucket mounted side by side, read with ordinary programs.
/// </summary>
public sealed class FuseFixture : IAsyncLifetime
{
    public SiloProcess Silo { get; private set; } = null!;

    public FuseProcess Mount { get; private set; } = null!;

    public MotoServer Moto { get; private set; } = null!;

    /// <summary>The source folder.</summary>
    public string Source { get; private set; } = null!;

    /// <summary>The bucket's contents as downloaded from the S3 server.</summary>
    public string Downloaded { get; private set; } = null!;

    public string Bucket { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Moto = await MotoServer.Shared;
        Source = TestProcess.NewFolder("fuse-src");
        TestData.ImageFolder(Source, classes: 3, perClass: 40, maxSize: 150_000);
        var big = new byte[(5 << 20) + 12345];
        new Random(9).NextBytes(big);
        await File.WriteAllBytesAsync(Path.Combine(Source, "video.bin"), big);
        var images = Path.Combine(Source, "images");
        var (code, stdout, stderr) = await TestProcess.RunAsync("/usr/bin/python3", ["-c", """
            import os, random, sys
            from PIL import Image
            root = sys.argv[1]
            r = random.Random(5)
            for c in range(4):
                d = os.path.join(root, f"class{c}")
                os.makedirs(d, exist_ok=True)
                for i in range(24):
                    w, h = r.randint(40, 200), r.randint(40, 200)
                    Image.frombytes("RGB", (w, h), bytes(r.getrandbits(8) for _ in range(w * h * 3))).save(os.path.join(d, f"img{i:03d}.jpg"), quality=90)
            """, images]);
        if (code != 0)
        {
            throw new InvalidOperationException($"making JPEGs with Debian's python3-pil failed: {stdout}{stderr}");
        }

        Bucket = await Moto.CreateBucketAsync("fuse");
        await Moto.UploadFolderAsync(Source, Bucket, "ds");
        Downloaded = TestProcess.NewFolder("fuse-dl");
        using (var client = Moto.Client())
        {
            string? token = null;
            do
            {
                var page = await client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = Bucket, Prefix = "ds/", ContinuationToken = token });
                foreach (var item in page.S3Objects ?? [])
                {
                    var target = Path.Combine(Downloaded, item.Key["ds/".Length..]);
                    Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                    using var response = await client.GetObjectAsync(Bucket, item.Key);
                    await using var file = File.Create(target);
                    await response.ResponseStream.CopyToAsync(file);
                }

                token = page.IsTruncated == true ? page.NextContinuationToken : null;
            }
            while (token is not null);
        }

        Silo = await SiloProcess.StartAsync("fuse", environment: Moto.Environment);
        Assert.Equal(0, (await Silo.CliAsync("fs", "mount", "/local", $"file://{Source}")).ExitCode);
        Assert.Equal(0, (await Silo.CliAsync("fs", "mount", "/s3", $"s3://{Bucket}/ds", "--readonly")).ExitCode);
        Mount = await FuseProcess.StartAsync(Silo);
    }

    public async Task DisposeAsync()
    {
        await Mount.DisposeAsync();
        await Silo.DisposeAsync();
    }

    /// <summary>Runs a shell command line; returns its exit code and combined output.</summary>
    public static async Task<(int Code, string Output)> Shell(string command)
    {
        var (code, stdout, stderr) = await TestProcess.RunAsync("/bin/bash", ["-c", command], timeout: TimeSpan.FromMinutes(3));
        return (code, stdout + stderr);
    }
}

public sealed class FuseTests(FuseFixture fixture) : IClassFixture<FuseFixture>
{
    private string M => fixture.Mount.MountPoint;

    [Fact]
    public async Task Warm_reads_are_answered_from_the_block_files_and_every_byte_matches_the_source()
    {
        // O_DIRECT so that every read reaches the daemon; the first pass checks each block once, later passes are
        // answered from the block files (spliced), inside a block and across the 4 MiB block boundary alike.
        var mount = await FuseProcess.StartAsync(fixture.Silo, ["--read-only"]);
        int code;
        string output;
        try
        {
            (code, output) = await FuseFixture.Shell($$"""
            /usr/bin/python3 - '{{mount.MountPoint}}/local/video.bin' '{{fixture.Source}}/video.bin' <<'EOF'
            import os, sys
            source = open(sys.argv[2], 'rb').read()
            fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
            reads = [(0, 1 << 20), (4096, 131072), ((4 << 20) - 65536, 131072), (4 << 20, 1 << 20), (len(source) - 4096, 65536), (12345, 777)]
            for n in range(3):
                for offset, size in reads:
                    got = os.pread(fd, size, offset)
                    want = source[offset:offset + size]
                    assert got == want, f"pass {n}: {len(got)} bytes at {offset} differ from the source's {len(want)}"
            print("ok")
            EOF
            """);
        }
        finally
        {
            await mount.DisposeAsync();
        }

        Assert.True(code == 0 && output.Contains("ok", StringComparison.Ordinal), output);
        var line = mount.Process.Output.Split('\n').Single(l => l.Contains("Read requests:", StringComparison.Ordinal));
        var fromFiles = long.Parse(System.Text.RegularExpressions.Regex.Match(line, @"Read requests: (\d+) answered").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(fromFiles >= 6, line);
    }

    [Fact]
    public async Task Diff_find_ls_stat_cat_and_dd_see_exactly_the_sources()
    {
        var (code, output) = await FuseFixture.Shell($"diff -r '{M}/local' '{fixture.Source}'");
        Assert.True(code == 0, output);
        (code, output) = await FuseFixture.Shell($"diff -r '{M}/s3' '{fixture.Downloaded}'");
        Assert.True(code == 0, output);

        (code, output) = await FuseFixture.Shell($"find '{M}/s3' -type f | wc -l");
        Assert.Equal(TestData.Find(fixture.Source).Count, int.Parse(output.Trim(), System.Globalization.CultureInfo.InvariantCulture));

        (code, output) = await FuseFixture.Shell($"ls -lR '{M}/local'");
        Assert.True(code == 0, output);
        Assert.Contains("img0039.jpg", output, StringComparison.Ordinal);
        Assert.Contains("-r", output, StringComparison.Ordinal);

        (code, output) = await FuseFixture.Shell($"stat -c '%s %F %a' '{M}/local/video.bin' '{M}/s3/class01'");
        Assert.True(code == 0, output);
        Assert.Equal([$"{new FileInfo(Path.Combine(fixture.Source, "video.bin")).Length} regular file 644", "0 directory 755"], output.Trim().Split('\n'));

        (code, output) = await FuseFixture.Shell($"cat '{M}/s3/class02/img0007.jpg' | cmp - '{fixture.Source}/class02/img0007.jpg' && echo same");
        Assert.Contains("same", output, StringComparison.Ordinal);

        (code, output) = await FuseFixture.Shell($"dd if='{M}/s3/video.bin' bs=1M 2>/dev/null | cmp - '{fixture.Source}/video.bin' && dd if='{M}/local/video.bin' of=/dev/null bs=64k skip=10 count=3 2>&1");
        Assert.True(code == 0, output);
        Assert.Contains("196608 bytes", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ls_a_lists_dot_and_dotdot_as_a_local_folder_does()
    {
        var (code, mounted) = await FuseFixture.Shell($"ls -a1 '{M}/local/class01'");
        Assert.True(code == 0, mounted);
        var (_, source) = await FuseFixture.Shell($"ls -a1 '{fixture.Source}/class01'");
        Assert.Equal(source, mounted);
        Assert.StartsWith(".\n..\n", mounted, StringComparison.Ordinal);

        // "." carries the directory's own inode and ".." its parent's, as stat reports them.
        (code, var inodes) = await FuseFixture.Shell($"ls -ai1 '{M}/local/class01' | head -2 | awk '{{print $1}}'; stat -c %i '{M}/local/class01' '{M}/local'");
        Assert.True(code == 0, inodes);
        var numbers = inodes.Trim().Split('\n');
        Assert.Equal(numbers[2], numbers[0]);
        Assert.Equal(numbers[3], numbers[1]);
    }

    [Fact]
    public async Task Many_concurrent_readers_get_the_same_bytes_as_the_source()
    {
        var files = TestData.Find(fixture.Source).Keys.Where(k => k.StartsWith("class", StringComparison.Ordinal)).ToList();
        var readers = Enumerable.Range(0, 32).Select(i => Task.Run(async () =>
        {
            var random = new Random(i);
            for (var n = 0; n < 20; n++)
            {
                var file = files[random.Next(files.Count)];
                var root = n % 2 == 0 ? "local" : "s3";
                var read = await File.ReadAllBytesAsync(Path.Combine(M, root, file));
                Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(fixture.Source, file)), read);
            }
        }));
        await Task.WhenAll(readers);
    }

    [Fact]
    public async Task Every_error_comes_back_as_its_errno_from_a_real_syscall()
    {
        async Task Expect(string command, string words)
        {
            var (code, output) = await FuseFixture.Shell(command);
            Assert.True(code != 0, $"{command} succeeded: {output}");
            Assert.Contains(words, output, StringComparison.Ordinal);
        }

        await Expect($"cat '{M}/local/nope'", "No such file or directory");
        await Expect($"ls '{M}/local/video.bin/x'", "Not a directory");
        await Expect($"cat '{M}/local/class00'", "Is a directory");
        await Expect($"stat '{M}/local/{new string('n', 300)}'", "File name too long");
        // The mount was made without allow_other: another user may not enter it at all.
        await Expect($"setpriv --reuid=65534 --regid=65534 --clear-groups cat '{M}/local/video.bin'", "Permission denied");
    }

    [Fact]
    public async Task The_default_mount_is_read_write_to_the_kernel()
    {
        var (code, output) = await FuseFixture.Shell($"findmnt -no OPTIONS '{M}'");
        Assert.True(code == 0, output);
        Assert.StartsWith("rw,", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_read_only_mount_refuses_every_change_with_erofs_and_still_reads()
    {
        await using var mount = await FuseProcess.StartAsync(fixture.Silo, ["--read-only"]);
        var m = mount.MountPoint;
        var (code, output) = await FuseFixture.Shell($"findmnt -no OPTIONS '{m}'");
        Assert.True(code == 0, output);
        Assert.StartsWith("ro,", output, StringComparison.Ordinal);

        foreach (var change in new[]
        {
            $"touch '{m}/local/newfile'",
            $"mkdir '{m}/local/newdir'",
            $"rm '{m}/local/video.bin'",
            $"rmdir '{m}/local/class00'",
            $"mv '{m}/local/video.bin' '{m}/local/moved.bin'",
            $"chmod 600 '{m}/local/video.bin'",
            $"truncate -s 0 '{m}/local/video.bin'",
            $"echo more >> '{m}/local/video.bin'",
            $"touch -m '{m}/local/video.bin'",
            $"ln -s video.bin '{m}/local/link'",
            $"ln '{m}/local/video.bin' '{m}/local/hard'",
        })
        {
            (code, output) = await FuseFixture.Shell(change);
            Assert.True(code != 0, $"{change} succeeded: {output}");
            Assert.Contains("Read-only file system", output, StringComparison.Ordinal);
        }

        (code, output) = await FuseFixture.Shell($"cmp '{m}/local/video.bin' '{fixture.Source}/video.bin' && ls '{m}/local' | grep -c -e newfile -e newdir -e moved.bin -e link -e hard");
        Assert.True(output.Trim() == "0", output);
    }

    [Fact]
    public async Task An_uncached_read_with_under_storage_down_is_eio_and_cached_data_still_reads()
    {
        await using var moto = await MotoServer.StartAsync();
        var bucket = await moto.CreateBucketAsync("eio");
        await moto.PutAsync(bucket, "d/cached.bin", [1, 2, 3, 4]);
        await moto.PutAsync(bucket, "d/never.bin", [5, 6, 7, 8]);
        var path = $"/eio{Guid.NewGuid().ToString("N")[..6]}";
        var options = moto.MountOptions.SelectMany(kv => new[] { "--option", $"{kv.Key}={kv.Value}" });
        Assert.Equal(0, (await fixture.Silo.CliAsync(["fs", "mount", path, $"s3://{bucket}", .. options])).ExitCode);
        var (code, output) = await FuseFixture.Shell($"ls '{M}{path}/d' && cat '{M}{path}/d/cached.bin' | od -An -tu1");
        Assert.True(code == 0, output);
        await moto.StopAsync();

        (code, output) = await FuseFixture.Shell($"cat '{M}{path}/d/never.bin'");
        Assert.NotEqual(0, code);
        Assert.Contains("Input/output error", output, StringComparison.Ordinal);
        Assert.Contains($"{path}/d/never.bin", fixture.Mount.Process.Output, StringComparison.Ordinal);
        (code, output) = await FuseFixture.Shell($"cat '{M}{path}/d/cached.bin' | od -An -tu1");
        Assert.True(code == 0, output);
        Assert.Equal("1   2   3   4", output.Trim());
    }

    [Fact]
    public async Task A_pytorch_dataloader_reads_the_mount_as_it_reads_the_source_folder()
    {
        var script = Path.Combine(AppContext.BaseDirectory, "Fuse", "dataloader_check.py");
        var (code, stdout, stderr) = await TestProcess.RunAsync("/usr/bin/python3", [script, Path.Combine(M, "s3", "images"), Path.Combine(fixture.Source, "images")], timeout: TimeSpan.FromMinutes(5));
        Assert.True(code == 0, stdout + stderr);
        Assert.Equal("ok 192", stdout.Trim());
    }
}
