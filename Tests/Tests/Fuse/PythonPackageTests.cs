using System.Text.RegularExpressions;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Fuse;

/// <summary>
/// The Python package, installed offline into a virtual environment as a user would (pip install ./Client/Python),
/// against the FUSE mount of a silo over moto: an announced order is fetched from S3 before anyone reads it (and
/// nothing else is), a missing file is skipped, and the PyTorch sampler yields exactly the wrapped sampler's indices.
/// </summary>
public sealed class PythonPackageTests(FuseFixture fixture) : IClassFixture<FuseFixture>
{
    private static readonly Lazy<Task<string>> Venv = new(MakeVenvAsync);

    // A copy of the package installed into a venv that sees Debian's python3-torch; the python to run.
    private static async Task<string> MakeVenvAsync()
    {
        var folder = TestProcess.NewFolder("pyvenv");
        var source = Path.Combine(folder, "src");
        foreach (var file in Directory.EnumerateFiles(Path.Combine(Repo.Root, "Client", "Python"), "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(Path.Combine(Repo.Root, "Client", "Python"), file);
            if (relative.StartsWith("build", StringComparison.Ordinal) || relative.Contains(".egg-info", StringComparison.Ordinal))
            {
                continue;
            }

            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(source, relative))!);
            File.Copy(file, Path.Combine(source, relative));
        }

        var venv = Path.Combine(folder, "venv");
        var (code, stdout, stderr) = await TestProcess.RunAsync("/usr/bin/python3", ["-m", "venv", "--system-site-packages", venv]);
        Assert.True(code == 0, $"python3 -m venv (apt-get install python3-venv): {stdout}{stderr}");
        (code, stdout, stderr) = await TestProcess.RunAsync(Path.Combine(venv, "bin", "pip"), ["install", "--no-index", "--no-build-isolation", source], timeout: TimeSpan.FromMinutes(3));
        Assert.True(code == 0, $"pip install ./Client/Python offline: {stdout}{stderr}");
        return Path.Combine(venv, "bin", "python");
    }

    private static async Task<string> PythonAsync(string script, params string[] args)
    {
        var python = await Venv.Value;
        var (code, stdout, stderr) = await TestProcess.RunAsync(python, ["-c", script, .. args], timeout: TimeSpan.FromMinutes(2));
        Assert.True(code == 0, stdout + stderr);
        return stdout;
    }

    [Fact]
    public async Task An_announced_order_is_fetched_before_it_is_read_and_nothing_else_is()
    {
        var bucket = await fixture.Moto.CreateBucketAsync("pyorder");
        var random = new Random(21);
        for (var i = 0; i < 60; i++)
        {
            var data = new byte[20_000];
            random.NextBytes(data);
            await fixture.Moto.PutAsync(bucket, $"ds/f{i:D3}.bin", data);
        }

        var mount = "/pyorder-" + Guid.NewGuid().ToString("N")[..6];
        Assert.Equal(0, (await fixture.Silo.CliAsync("fs", "mount", mount, $"s3://{bucket}/ds", "--readonly")).ExitCode);
        var folder = fixture.Mount.MountPoint + mount;
        int Gets(int file) => Regex.Matches(fixture.Moto.Log, $"\"GET /{bucket}/ds/f{file:D3}.bin").Count;

        // The first 40 files, in order, and one that does not exist; nobody reads any of them.
        var output = await PythonAsync("""
            import sys, grainfs
            folder = sys.argv[1]
            paths = [f"{folder}/f{i:03d}.bin" for i in range(40)] + [f"{folder}/missing.bin"]
            print("accepted", grainfs.prefetch(paths, job="pyorder"))
            """, folder);
        Assert.Contains("accepted 41", output, StringComparison.Ordinal);
        for (var i = 0; i < 300 && Enumerable.Range(0, 40).Any(f => Gets(f) == 0); i++)
        {
            await Task.Delay(50);
        }

        Assert.All(Enumerable.Range(0, 40), f => Assert.Equal(1, Gets(f)));
        Assert.All(Enumerable.Range(40, 20), f => Assert.Equal(0, Gets(f)));

        // Reading them now takes nothing more from S3.
        var (code, read) = await FuseFixture.Shell($"cat {folder}/f0[0-3]?.bin | wc -c");
        Assert.True(code == 0 && read.Trim() == (40 * 20_000).ToString(System.Globalization.CultureInfo.InvariantCulture), read);
        Assert.All(Enumerable.Range(0, 40), f => Assert.Equal(1, Gets(f)));
    }

    [Fact]
    public async Task The_sampler_yields_exactly_the_wrapped_samplers_indices_every_epoch_and_on_every_rank()
    {
        var output = await PythonAsync("""
            import sys, torch, warnings
            from torch.utils.data import RandomSampler, DistributedSampler, SequentialSampler
            from grainfs.torch import EpochOrderSampler
            folder = sys.argv[1]
            data = list(range(97))
            paths = lambda i: f"{folder}/local/video.bin"
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                for epoch in range(3):
                    plain = list(RandomSampler(data, generator=torch.Generator().manual_seed(epoch)))
                    wrapped = EpochOrderSampler(RandomSampler(data, generator=torch.Generator().manual_seed(epoch)), paths)
                    assert list(wrapped) == plain and len(wrapped) == len(plain), f"epoch {epoch}"
                    for rank in range(2):
                        d = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=3)
                        w = EpochOrderSampler(DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=3), paths)
                        d.set_epoch(epoch); w.set_epoch(epoch)
                        assert list(w) == list(d), f"epoch {epoch} rank {rank}"
                assert list(EpochOrderSampler(SequentialSampler(data), paths)) == data
            print("sampler ok")
            """, fixture.Mount.MountPoint);
        Assert.Contains("sampler ok", output, StringComparison.Ordinal);
    }
}
