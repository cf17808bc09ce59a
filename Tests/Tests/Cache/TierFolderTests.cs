using GrainFs.DataPlane;
using GrainFs.DataPlane.Blocks;
using GrainFs.Storage.Cache;
using GrainFs.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace GrainFs.Tests.Cache;

/// <summary>Tier folders are the silo user's own: made 0700 (0750 with a short-circuit group), and refused when another user made them or may write them.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class TierFolderTests
{
    private const int Setgid = 0x400;

    private static int ModeOf(string path) => UnixFiles.Stat(path)!.Value.Permissions;

    private static uint GroupOf(string path) => UnixFiles.Stat(path)!.Value.Gid;

    private static CacheOptions Options(string mem, string ssd, string? group = null) => new()
    {
        Tiers = [new TierSpec(TierKind.Mem, mem, 64 << 20), new TierSpec(TierKind.Ssd, ssd, 64 << 20)],
        ShortCircuitGroup = group,
    };

    private static async Task<CachedBlock> FillAsync(TierStore store, BlockKey key, int length = 100_000)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        var fill = store.StartFill(key, data.Length, _ => ValueTask.FromResult<Stream>(new MemoryStream(data)));
        Assert.NotNull(fill);
        await fill.Completion;
        Assert.True(store.TryGet(key, out var block));
        return block;
    }

    private static Task ChownAsync(string owner, string path, bool link = false) =>
        TestProcess.RunAsync("chown", link ? ["-h", owner, path] : [owner, path]);

    [Fact]
    public async Task A_fresh_tier_folder_is_the_silo_users_alone_and_so_are_its_block_files()
    {
        var root = TestProcess.NewFolder("tierfresh");
        var options = Options(Path.Combine(root, "mem"), Path.Combine(root, "ssd"));
        Assert.Empty(options.Validate());
        await using var store = new TierStore(options, NullLogger.Instance);
        await store.InitializeAsync();
        foreach (var folder in new[] { "mem", "mem/blocks", "mem/tmp", "ssd", "ssd/blocks", "ssd/tmp" })
        {
            Assert.Equal(Convert.ToInt32("700", 8), ModeOf(Path.Combine(root, folder)));
        }

        var block = await FillAsync(store, new BlockKey(11, 1, 0));
        Assert.Equal(Convert.ToInt32("600", 8), ModeOf(block.Path));
        Assert.Equal(Convert.ToInt32("700", 8), ModeOf(Path.GetDirectoryName(block.Path)!));
    }

    [Fact]
    public async Task With_a_short_circuit_group_folders_are_0750_of_that_group_and_block_files_0640()
    {
        Assert.True(UnixFiles.TryGetGroupId("nogroup", out var gid));
        var root = TestProcess.NewFolder("tiergroup");
        var options = Options(Path.Combine(root, "mem"), Path.Combine(root, "ssd"), "nogroup");
        Assert.Empty(options.Validate());
        await using (var store = new TierStore(options, NullLogger.Instance))
        {
            await store.InitializeAsync();
            var block = await FillAsync(store, new BlockKey(12, 1, 0));
            foreach (var folder in new[] { Path.Combine(root, "mem"), Path.Combine(root, "mem", "blocks"), Path.Combine(root, "mem", "tmp"), Path.GetDirectoryName(block.Path)! })
            {
                Assert.Equal(Setgid | Convert.ToInt32("750", 8), ModeOf(folder));
                Assert.Equal(gid, GroupOf(folder));
            }

            Assert.Equal(Convert.ToInt32("640", 8), ModeOf(block.Path));
            Assert.Equal(gid, GroupOf(block.Path));

            // A member of the group (nobody, in nogroup) reads the block file itself.
            var (code, _, err) = await TestProcess.RunAsync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "head", "-c", "16", block.Path]);
            Assert.True(code == 0, err);
        }

        // The same folders without the group: back to the silo's user alone, the blocks found again included.
        await using var restarted = new TierStore(Options(Path.Combine(root, "mem"), Path.Combine(root, "ssd")), NullLogger.Instance);
        await restarted.InitializeAsync();
        Assert.True(restarted.TryGet(new BlockKey(12, 1, 0), out var kept));
        Assert.Equal(Convert.ToInt32("700", 8), ModeOf(Path.Combine(root, "mem")));
        Assert.Equal(Convert.ToInt32("600", 8), ModeOf(kept.Path));
        var (denied, _, _) = await TestProcess.RunAsync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "head", "-c", "16", kept.Path]);
        Assert.NotEqual(0, denied);
    }

    [Fact]
    public async Task A_tier_folder_another_user_made_is_refused_naming_it_its_owner_and_mode()
    {
        Assert.Equal("root", Environment.UserName);
        var root = TestProcess.NewFolder("tierforeign");
        var mem = Path.Combine(root, "mem");
        Directory.CreateDirectory(mem);
        await ChownAsync("65534:65534", mem);
        var options = Options(mem, Path.Combine(root, "ssd"));
        var problem = Assert.Single(options.Validate());
        Assert.Equal($"GrainFs:Cache:Tiers: tier MEM folder '{mem}' is owned by user 65534 (nobody), not by this silo's user 0 (root) (mode 0755): another user could read, replace or plant its blocks; remove it, or give it to the silo's user (chown)", problem);
        Assert.Throws<ArgumentException>(() => new TierStore(options, NullLogger.Instance));
        Assert.Equal(Convert.ToInt32("755", 8), ModeOf(mem));

        // Made by another user after the configuration was checked: the store refuses it at start all the same.
        var late = Path.Combine(root, "late");
        var store = new TierStore(Options(late, Path.Combine(root, "ssd2")), NullLogger.Instance);
        await using (store)
        {
            Directory.CreateDirectory(late);
            await ChownAsync("65534", late);
            var e = await Assert.ThrowsAsync<InvalidOperationException>(() => store.InitializeAsync());
            Assert.Contains($"'{late}' is owned by user 65534 (nobody)", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_tier_folder_others_may_write_or_a_link_another_user_made_is_refused()
    {
        var root = TestProcess.NewFolder("tieropen");
        var open = Path.Combine(root, "open");
        Directory.CreateDirectory(open);
        File.SetUnixFileMode(open, (UnixFileMode)Convert.ToInt32("777", 8));
        Assert.Equal(
            $"GrainFs:Cache:Tiers: tier MEM folder '{open}' is writable by group or others (owner 0 (root), mode 0777): other users could replace or plant its blocks; make it 0700 (chmod 700) or remove it",
            Assert.Single(Options(open, Path.Combine(root, "ssd")).Validate()));
        File.SetUnixFileMode(open, (UnixFileMode)Convert.ToInt32("770", 8));
        Assert.Contains("(owner 0 (root), mode 0770)", Assert.Single(Options(open, Path.Combine(root, "ssd")).Validate()), StringComparison.Ordinal);

        var target = TestProcess.NewFolder("tierlinktarget");
        var link = Path.Combine(root, "link");
        File.CreateSymbolicLink(link, target);
        Assert.Empty(Options(link, Path.Combine(root, "ssd")).Validate());
        await ChownAsync("65534", link, link: true);
        Assert.Contains($"'{link}' is a symbolic link owned by user 65534 (nobody)", Assert.Single(Options(link, Path.Combine(root, "ssd")).Validate()), StringComparison.Ordinal);

        var file = Path.Combine(root, "file");
        await File.WriteAllTextAsync(file, "x");
        Assert.Contains($"'{file}' is not a folder", Assert.Single(Options(file, Path.Combine(root, "ssd")).Validate()), StringComparison.Ordinal);
        Assert.Equal(
            "GrainFs:Cache:ShortCircuitGroup = 'no-such-group-x': no such group",
            Assert.Single(Options(Path.Combine(root, "m"), Path.Combine(root, "s"), "no-such-group-x").Validate()));
    }

    [Fact]
    public async Task An_own_folder_that_others_may_read_is_tightened_at_start()
    {
        var root = TestProcess.NewFolder("tierown");
        var mem = Path.Combine(root, "mem");
        Directory.CreateDirectory(Path.Combine(mem, "blocks", "ab"));
        File.SetUnixFileMode(mem, (UnixFileMode)Convert.ToInt32("755", 8));
        var options = Options(mem, Path.Combine(root, "ssd"));
        Assert.Empty(options.Validate());
        await using var store = new TierStore(options, NullLogger.Instance);
        await store.InitializeAsync();
        Assert.Equal(Convert.ToInt32("700", 8), ModeOf(mem));
        Assert.Equal(Convert.ToInt32("700", 8), ModeOf(Path.Combine(mem, "blocks")));
        Assert.Equal(Convert.ToInt32("700", 8), ModeOf(Path.Combine(mem, "blocks", "ab")));
    }
}
