using Microsoft.Extensions.DependencyInjection;
using GrainFs.Grains.Blocks;
using GrainFs.Storage.UnderStorage;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Cluster;

/// <summary>
/// Paths that reach grains straight from a caller (a directory grain's key, a rename's target key, a block source, a
/// write worker's path) are checked on the silo: one that could leave its mount by a '..' component is refused before
/// the metadata store or under-storage is touched. Each call here listed, read or moved files beside the mount before.
/// </summary>
public sealed class PathConfinementClusterTests(ClusterFixture fixture) : IClassFixture<ClusterFixture>
{
    /// <summary>A mounted folder top/set holding ok.txt, beside top/outside/secret.txt; the mount.</summary>
    private async Task<(string Top, string Root, MountInfo Mount)> MountAsync()
    {
        var top = RealPath.ResolveOrFull(TestProcess.NewFolder("grain-confine"));
        Directory.CreateDirectory(Path.Combine(top, "outside"));
        await File.WriteAllTextAsync(Path.Combine(top, "outside", "secret.txt"), "secret");
        var root = Directory.CreateDirectory(Path.Combine(top, "set")).FullName;
        await File.WriteAllTextAsync(Path.Combine(root, "ok.txt"), "inside");
        var mounted = await fixture.NewClient().MountAsync($"/confine-{Guid.NewGuid().ToString("N")[..6]}", $"file://{root}");
        Assert.True(mounted.IsOk, mounted.Message);
        return (top, root, mounted.Value!);
    }

    [Theory]
    [InlineData("../outside")]
    [InlineData("..")]
    [InlineData("set/../../outside")]
    [InlineData("./x")]
    public async Task A_directory_grain_whose_key_leaves_the_mount_refuses_every_call_naming_the_key(string path)
    {
        var (_, _, mount) = await MountAsync();
        var key = $"{mount.Id}:0:{path}";
        var grain = fixture.Cluster.Client.GetGrain<IDirectoryGrain>(key);
        var list = await Assert.ThrowsAsync<ArgumentException>(async () => await grain.ListAsync(null, 100));
        Assert.Contains($"directory key '{key}'", list.Message, StringComparison.Ordinal);
        var lookup = await Assert.ThrowsAsync<ArgumentException>(async () => await grain.LookupAsync("secret.txt"));
        Assert.Contains($"directory key '{key}'", lookup.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<ArgumentException>(async () => await grain.MakeDirectoryAsync("made", 0x1ED, 0, 0));
    }

    [Fact]
    public async Task A_rename_whose_target_key_leaves_the_mount_is_refused_and_nothing_moves()
    {
        var (top, root, mount) = await MountAsync();
        var directory = fixture.Cluster.Client.GetGrain<IDirectoryGrain>(new DirectoryKey(mount.Id, 0, string.Empty).ToString());
        Assert.Equal(FsStatus.Ok, (await directory.LookupAsync("ok.txt")).Status);

        var renamed = await directory.RenameAsync("ok.txt", $"{mount.Id}:0:../outside", "stolen.txt", noReplace: false);
        Assert.Equal(FsStatus.InvalidArgument, renamed.Status);
        Assert.Contains("'..'", renamed.Message, StringComparison.Ordinal);
        var badName = await directory.RenameAsync("ok.txt", $"{mount.Id}:0:", "..", noReplace: false);
        Assert.Equal(FsStatus.InvalidArgument, badName.Status);

        Assert.True(File.Exists(Path.Combine(root, "ok.txt")));
        Assert.False(File.Exists(Path.Combine(top, "outside", "stolen.txt")));
        Assert.False(File.Exists(Path.Combine(top, "stolen.txt")));
    }

    [Theory]
    [InlineData("../outside/secret.txt")]
    [InlineData("ok.txt/../../outside/secret.txt")]
    [InlineData("")]
    public async Task A_block_source_whose_path_leaves_the_mount_is_refused_by_the_block_grain_and_the_worker(string path)
    {
        var (top, _, mount) = await MountAsync();
        var secret = new FileInfo(Path.Combine(top, "outside", "secret.txt"));
        var etag = LocalUnderStorage.LocalETag(secret.LastWriteTimeUtc.Ticks, secret.Length);
        var source = new BlockSource(mount.Id, path, etag, secret.Length, mount.Options.BlockSize, 0);
        var key = BlockFiller.KeyOf(mount, source);

        var filled = await fixture.Cluster.Client.GetGrain<IBlockGrain>(key.ToString()).FillAsync(source);
        Assert.Equal(FsStatus.InvalidArgument, filled.Status);
        Assert.Contains(path.Length == 0 ? "empty" : "'..'", filled.Message, StringComparison.Ordinal);
        var state = await fixture.Cluster.Client.GetGrain<IBlockGrain>(key.ToString()).GetStateAsync();
        Assert.Null(state.Tier);

        var worker = fixture.Cluster.Client.GetGrain<IWorkerGrain>(state.Home);
        var load = await worker.StartLoadAsync([source], pin: null, ttl: null);
        var status = await worker.WaitLoadAsync(load, 10_000);
        Assert.True(status.Done);
        Assert.Equal((1, 0, 0L), (status.Failures, status.Blocks, status.Bytes));
        Assert.Contains(path.Length == 0 ? "empty" : "'..'", status.FirstError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_write_worker_refuses_to_persist_to_a_path_that_leaves_the_mount()
    {
        var (_, _, mount) = await MountAsync();
        var worker = fixture.Cluster.Client.GetGrain<IWorkerGrain>("Primary");
        var seal = await worker.SealAsync(new WriteSeal("w-confine", mount.Id, "../outside/written.txt", 1, mount.Options.BlockSize, WriteType.CacheThrough));
        Assert.Equal(FsStatus.InvalidArgument, seal.Status);
        Assert.Contains("'..'", seal.Message, StringComparison.Ordinal);
        // Retargeting is for silos only (a client is refused before the path is looked at): call it as a silo does.
        var asSilo = fixture.SiloServices["Secondary_1"].GetRequiredService<IGrainFactory>().GetGrain<IWorkerGrain>("Primary");
        var retarget = await asSilo.RetargetAsync("w-confine", "../outside/written.txt");
        Assert.Equal(FsStatus.InvalidArgument, retarget.Status);
        Assert.Equal(FsStatus.InvalidArgument, (await asSilo.RetargetAsync("w-confine", string.Empty)).Status);
        await Assert.ThrowsAsync<GrainFsAccessDeniedException>(async () => await worker.RetargetAsync("w-confine", "../outside/written.txt"));
    }
}
