using GrainFs.Storage.UnderStorage;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Processes;

/// <summary>
/// A silo started with --allow-local-root, driven by the grainfs CLI as an administrator would: file:// mounts outside
/// the allowed folders are refused naming the flag, and inside a mount no symbolic link leads to the files beside it.
/// </summary>
public sealed class LocalRootProcessTests
{
    [Fact]
    public async Task Mounts_are_confined_to_the_allowed_roots_and_links_never_lead_outside_a_mount()
    {
        var allowed = RealPath.ResolveOrFull(TestProcess.NewFolder("allowed"));
        var set = Directory.CreateDirectory(Path.Combine(allowed, "set")).FullName;
        await File.WriteAllTextAsync(Path.Combine(set, "ok.txt"), "inside");
        Directory.CreateSymbolicLink(Path.Combine(set, "etc-link"), "/etc");
        File.CreateSymbolicLink(Path.Combine(set, "passwd-link"), "/etc/passwd");
        Directory.CreateSymbolicLink(Path.Combine(set, "up"), "..");
        Directory.CreateDirectory(Path.Combine(set, "deep"));
        File.CreateSymbolicLink(Path.Combine(set, "deep", "inside-link"), "../ok.txt");
        var other = TestProcess.NewFolder("not-allowed");

        await using var silo = await SiloProcess.StartAsync("allow-root", ["--allow-local-root", allowed]);
        var suffix = Guid.NewGuid().ToString("N")[..6];

        // A folder that is a link out of the allowed root is judged by where it leads.
        var (code, _, err) = await silo.CliAsync("fs", "mount", $"/etc-link{suffix}", $"file://{set}/etc-link");
        Assert.NotEqual(0, code);
        Assert.Contains("(which resolves to /etc) is outside the folders this silo allows for local mounts (--allow-local-root", err, StringComparison.Ordinal);

        (code, _, err) = await silo.CliAsync("fs", "mount", $"/ok{suffix}", $"file://{set}");
        Assert.True(code == 0, err);

        foreach (var folder in new[] { "/etc", other })
        {
            (code, _, err) = await silo.CliAsync("fs", "mount", $"/no{suffix}", $"file://{folder}");
            Assert.NotEqual(0, code);
            Assert.Contains($"the folder {folder} is outside the folders this silo allows for local mounts (--allow-local-root {allowed})", err, StringComparison.Ordinal);
        }

        var (_, listing, _) = await silo.CliAsync("fs", "ls", $"/ok{suffix}");
        Assert.Equal(["deep", "ok.txt"], listing.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Order(StringComparer.Ordinal));
        foreach (var path in new[] { "passwd-link", "etc-link/passwd", "up/set/../../../etc/passwd", "up/up/etc/passwd", "up/set/ok.txt/../../../etc/passwd" })
        {
            var (catCode, stdout, stderr) = await silo.CliAsync("fs", "cat", $"/ok{suffix}/{path}");
            Assert.NotEqual(0, catCode);
            Assert.DoesNotContain("root:", stdout + stderr, StringComparison.Ordinal);
        }

        var (insideCode, inside, insideErr) = await silo.CliAsync("fs", "cat", $"/ok{suffix}/deep/inside-link");
        Assert.True(insideCode == 0, insideErr);
        Assert.Equal("inside", inside);
    }
}
