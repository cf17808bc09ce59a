using GrainFs.DataPlane;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Processes;

/// <summary>A silo started with --short-circuit-group shares its block files with that group, and with no one else.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class TierFolderProcessTests
{
    [Fact]
    public async Task A_short_circuit_group_may_read_the_block_files_a_silo_writes()
    {
        Assert.True(UnixFiles.TryGetGroupId("nogroup", out var gid));
        await using var silo = await SiloProcess.StartAsync("scgroup", ["--short-circuit-group", "nogroup"]);
        var folder = TestProcess.NewFolder("scgroup-src");
        await File.WriteAllBytesAsync(Path.Combine(folder, "f.bin"), new byte[200_000]);
        var (code, _, err) = await silo.CliAsync("fs", "mount", "/sc", $"file://{folder}");
        Assert.True(code == 0, err);
        (code, _, err) = await silo.CliAsync("fs", "load", "/sc");
        Assert.True(code == 0, err);

        var mem = Path.Combine(silo.Data, "mem");

        // Marked with the format it is written in (checked at every start: a newer one is refused before it is read).
        Assert.Equal("grainfs-tier-format 1\n", await File.ReadAllTextAsync(Path.Combine(mem, "FORMAT")));
        Assert.Equal(0x400 | Convert.ToInt32("750", 8), UnixFiles.Stat(mem)!.Value.Permissions);
        Assert.Equal(gid, UnixFiles.Stat(mem)!.Value.Gid);
        var blocks = Directory.GetFiles(Path.Combine(mem, "blocks"), "*", SearchOption.AllDirectories);
        var block = Assert.Single(blocks);
        Assert.Equal(Convert.ToInt32("640", 8), UnixFiles.Stat(block)!.Value.Permissions);
        Assert.Equal(gid, UnixFiles.Stat(block)!.Value.Gid);
        var (read, _, readErr) = await TestProcess.RunAsync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "head", "-c", "16", block]);
        Assert.True(read == 0, readErr);

        // The SSD tier, untouched so far, is the group's too; the journal is not.
        Assert.Equal(gid, UnixFiles.Stat(Path.Combine(silo.Data, "ssd"))!.Value.Gid);
        if (Directory.Exists(Path.Combine(silo.Data, "ssd", "journal")))
        {
            Assert.Equal(Convert.ToInt32("700", 8), UnixFiles.Stat(Path.Combine(silo.Data, "ssd", "journal"))!.Value.Permissions);
        }
    }
}
