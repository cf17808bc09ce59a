using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Fuse;

/// <summary>
/// Writes through a real FUSE mount with ordinary programs: an embedded silo process with a moto bucket mounted
/// read-write, and a second FUSE mount of the same cluster to see what another host's kernel sees.
/// </summary>
public sealed class FuseWriteFixture : IAsyncLifetime
{
    public SiloProcess Silo { get; private set; } = null!;

    public FuseProcess Mount { get; private set; } = null!;

    public FuseProcess Second { get; private set; } = null!;

    public MotoServer Moto { get; private set; } = null!;

    public string Bucket { get; private set; } = null!;

    /// <summary>Local data to write into the mount.</summary>
    public string Source { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Moto = await MotoServer.Shared;
        Source = TestProcess.NewFolder("fusew-src");
        TestData.ImageFolder(Path.Combine(Source, "tree"), classes: 3, perClass: 20, maxSize: 200_000);
        var big = new byte[(9 << 20) + 4321];
        new Random(11).NextBytes(big);
        await File.WriteAllBytesAsync(Path.Combine(Source, "big.bin"), big);
        Bucket = await Moto.CreateBucketAsync("fusew");
        Silo = await SiloProcess.StartAsync("fusew", environment: Moto.Environment);
        Assert.Equal(0, (await Silo.CliAsync("fs", "mount", "/w", $"s3://{Bucket}", "--option", "block-size=1MiB")).ExitCode);
        Mount = await FuseProcess.StartAsync(Silo);
        Second = await FuseProcess.StartAsync(Silo);
    }

    public async Task DisposeAsync()
    {
        await Second.DisposeAsync();
        await Mount.DisposeAsync();
        await Silo.DisposeAsync();
    }
}

public sealed class FuseWriteTests(FuseWriteFixture fixture) : IClassFixture<FuseWriteFixture>
{
    private string M => fixture.Mount.MountPoint;

    private static Task<(int Code, string Output)> Shell(string command) => FuseFixture.Shell(command);

    private static string Unique(string name) => $"{name}-{Guid.NewGuid().ToString("N")[..6]}";

    [Fact]
    public async Task Cp_dd_tar_rsync_and_rm_work_through_the_mount_and_land_in_s3()
    {
        var d = Unique("tools");
        var src = fixture.Source;
        var (code, output) = await Shell($"""
            set -e
            mkdir '{M}/w/{d}'
            cp -r '{src}/tree' '{M}/w/{d}/cp'
            dd if='{src}/big.bin' of='{M}/w/{d}/dd.bin' bs=1M status=none
            tar -C '{src}' -cf /tmp/{d}.tar tree
            mkdir '{M}/w/{d}/tar' && tar -C '{M}/w/{d}/tar' -xf /tmp/{d}.tar
            rsync -a '{src}/tree/' '{M}/w/{d}/rsync/'
            diff -r '{src}/tree' '{M}/w/{d}/cp'
            diff -r '{src}/tree' '{M}/w/{d}/tar/tree'
            diff -r '{src}/tree' '{M}/w/{d}/rsync'
            cmp '{src}/big.bin' '{M}/w/{d}/dd.bin'
            rm -f /tmp/{d}.tar
            """);
        Assert.True(code == 0, output);

        // rsync -a kept the times and modes it set, as a local folder would.
        (code, output) = await Shell($"cd '{src}/tree' && find . -type f -printf '%P %m %Ts\\n' | sort > /tmp/{d}.a; cd '{M}/w/{d}/rsync' && find . -type f -printf '%P %m %Ts\\n' | sort > /tmp/{d}.b; diff /tmp/{d}.a /tmp/{d}.b; rc=$?; rm -f /tmp/{d}.a /tmp/{d}.b; exit $rc");
        Assert.True(code == 0, output);

        // Persisted, the bytes are in the bucket.
        var persisted = await fixture.Silo.CliAsync("fs", "persist", $"/w/{d}", "--timeout", "2m");
        Assert.True(persisted.ExitCode == 0, persisted.Stdout + persisted.Stderr);
        using (var s3 = fixture.Moto.Client())
        {
            using var response = await s3.GetObjectAsync(fixture.Bucket, $"{d}/dd.bin");
            using var copy = new MemoryStream();
            await response.ResponseStream.CopyToAsync(copy);
            Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(src, "big.bin")), copy.ToArray());
        }

        (code, output) = await Shell($"rm -r '{M}/w/{d}/cp' && test ! -e '{M}/w/{d}/cp' && ls '{M}/w/{d}'");
        Assert.True(code == 0, output);
        Assert.DoesNotContain("cp", output.Split('\n'), StringComparer.Ordinal);
    }

    [Fact]
    public async Task Torch_save_then_os_replace_is_a_checkpoint_torch_load_reads_back()
    {
        var d = Unique("ckpt");
        var (code, output) = await Shell($$"""
            mkdir '{{M}}/w/{{d}}' && /usr/bin/python3 - <<'PY'
            import os, torch
            d = "{{M}}/w/{{d}}"
            torch.manual_seed(3)
            state = {"w": torch.randn(256, 1024), "b": torch.randn(1024), "step": 7}
            for step in range(3):
                state["step"] = step
                torch.save(state, os.path.join(d, "ckpt.pt.tmp"))
                os.replace(os.path.join(d, "ckpt.pt.tmp"), os.path.join(d, "ckpt.pt"))
            back = torch.load(os.path.join(d, "ckpt.pt"))
            assert back["step"] == 2, back["step"]
            assert torch.equal(back["w"], state["w"]) and torch.equal(back["b"], state["b"])
            assert not os.path.exists(os.path.join(d, "ckpt.pt.tmp"))
            print("ok")
            PY
            """);
        Assert.True(code == 0 && output.Contains("ok", StringComparison.Ordinal), output);
    }

    [Fact]
    public async Task Errors_of_writes_are_the_posix_ones()
    {
        var d = Unique("errs");
        var (code, output) = await Shell($"""
            cd '{M}/w' && mkdir {d} && cd {d}
            echo x > f
            mkdir dir && touch dir/inner
            set -o noclobber; (echo y > f) 2>&1; set +o noclobber
            rmdir dir 2>&1
            rm dir 2>&1
            mkdir f 2>&1
            ln -s f link 2>&1
            echo z >> f 2>&1
            df -k . | tail -1
            """);
        Assert.Contains("cannot overwrite existing file", output, StringComparison.Ordinal);
        Assert.Contains("Directory not empty", output, StringComparison.Ordinal);
        Assert.Contains("Is a directory", output, StringComparison.Ordinal);
        Assert.Contains("File exists", output, StringComparison.Ordinal);
        Assert.Contains("Operation not permitted", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_file_closed_in_one_mount_is_seen_whole_by_another_mount_within_a_second()
    {
        var d = Unique("vis");
        var other = fixture.Second.MountPoint;
        var (code, output) = await Shell($"mkdir '{M}/w/{d}' && echo one > '{M}/w/{d}/f' && cat '{other}/w/{d}/f'");
        Assert.True(code == 0 && output.Trim() == "one", output);

        // A new version (and a new name) shows up in the other mount despite its 60 s attribute and entry timeouts.
        (code, output) = await Shell($"""
            stat '{other}/w/{d}/g' >/dev/null 2>&1
            echo "second version, longer" > '{M}/w/{d}/f'
            echo new > '{M}/w/{d}/g'
            for i in $(seq 1 20); do
              a=$(cat '{other}/w/{d}/f' 2>/dev/null); b=$(cat '{other}/w/{d}/g' 2>/dev/null)
              [ "$a" = "second version, longer" ] && [ "$b" = new ] && echo seen && exit 0
              sleep 0.05
            done
            echo "not seen: '$a' '$b'"; exit 1
            """);
        Assert.True(code == 0, output);
    }
}
