using System.Text;
using GrainFs.Storage.Metadata;
using GrainFs.Storage.UnderStorage;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Storage;

/// <summary>
/// A folder mount never reaches outside its root: symbolic links leading out (files, folders, absolute, relative,
/// chains, a link to the parent) are hidden and refused, links inside resolve, loops end, '..' is refused, and a silo
/// with --allow-local-root refuses folders outside those roots. Each case here read or wrote outside the root before.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class LocalConfinementTests
{
    private static readonly TimeSpan Bounded = TimeSpan.FromSeconds(20);

    /// <summary>
    /// top/outside/secret.txt beside the mount root top/set, which holds ok.txt ("inside"), deep/inside-link -> ../ok.txt,
    /// deep/back -> .. (the root itself), alias -> deep, and links that lead out of it, loop or dangle.
    /// </summary>
    private static (string Top, string Root) Layout()
    {
        var top = RealPath.ResolveOrFull(TestProcess.NewFolder("confine"));
        var outside = Directory.CreateDirectory(Path.Combine(top, "outside")).FullName;
        File.WriteAllText(Path.Combine(outside, "secret.txt"), "secret");
        var root = Directory.CreateDirectory(Path.Combine(top, "set")).FullName;
        File.WriteAllText(Path.Combine(root, "ok.txt"), "inside");
        Directory.CreateDirectory(Path.Combine(root, "deep"));
        File.CreateSymbolicLink(Path.Combine(root, "deep", "inside-link"), "../ok.txt");
        Directory.CreateSymbolicLink(Path.Combine(root, "deep", "back"), "..");
        Directory.CreateSymbolicLink(Path.Combine(root, "alias"), "deep");

        File.CreateSymbolicLink(Path.Combine(root, "passwd-link"), "/etc/passwd");
        File.CreateSymbolicLink(Path.Combine(root, "secret-link"), Path.Combine(outside, "secret.txt"));
        File.CreateSymbolicLink(Path.Combine(root, "relative-link"), "../outside/secret.txt");
        File.CreateSymbolicLink(Path.Combine(root, "chain-1"), "chain-2");
        File.CreateSymbolicLink(Path.Combine(root, "chain-2"), "alias/back/up/outside/secret.txt");
        Directory.CreateSymbolicLink(Path.Combine(root, "etc-link"), "/etc");
        Directory.CreateSymbolicLink(Path.Combine(root, "outside-dir"), "../outside");
        Directory.CreateSymbolicLink(Path.Combine(root, "up"), "..");
        File.CreateSymbolicLink(Path.Combine(root, "loop-a"), "loop-b");
        File.CreateSymbolicLink(Path.Combine(root, "loop-b"), "loop-a");
        File.CreateSymbolicLink(Path.Combine(root, "self"), "self");
        File.CreateSymbolicLink(Path.Combine(root, "dangling"), "no-such-target");
        return (top, root);
    }

    private static async Task<List<EntryRecord>> ListAll(IUnderStorage storage, string directory)
    {
        var all = new List<EntryRecord>();
        await foreach (var page in storage.ListAsync(directory))
        {
            all.AddRange(page);
        }

        return all;
    }

    private static async Task<string> ReadText(IUnderStorage storage, string path)
    {
        var buffer = new byte[4096];
        var read = await storage.ReadAsync(path, 0, buffer).AsTask().WaitAsync(Bounded);
        return Encoding.UTF8.GetString(buffer, 0, read);
    }

    [Fact]
    public async Task Links_leading_outside_the_root_looping_or_dangling_are_not_listed_and_links_inside_are()
    {
        var (_, root) = Layout();
        await using var storage = new LocalUnderStorage(root);
        var listed = await ListAll(storage, string.Empty).WaitAsync(Bounded);
        Assert.Equal(["alias:Directory:0", "deep:Directory:0", "ok.txt:File:6"], listed.Select(e => $"{e.Name}:{e.Kind}:{e.Size}").Order(StringComparer.Ordinal));

        // A linked folder inside the root lists its target's contents; a link to the root itself is a folder like any other.
        var alias = await ListAll(storage, "alias").WaitAsync(Bounded);
        Assert.Equal(["back:Directory", "inside-link:File"], alias.Select(e => $"{e.Name}:{e.Kind}").Order(StringComparer.Ordinal));
        Assert.Equal((await ListAll(storage, "deep")).OrderBy(e => e.Name, StringComparer.Ordinal), alias.OrderBy(e => e.Name, StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("passwd-link")]
    [InlineData("secret-link")]
    [InlineData("relative-link")]
    [InlineData("chain-1")]
    [InlineData("etc-link/passwd")]
    [InlineData("outside-dir/secret.txt")]
    [InlineData("up/outside/secret.txt")]
    [InlineData("up/up/etc/passwd")]
    [InlineData("alias/back/up/outside/secret.txt")]
    [InlineData("loop-a")]
    [InlineData("self")]
    [InlineData("loop-a/x")]
    [InlineData("dangling")]
    public async Task A_path_through_a_link_that_leads_outside_or_nowhere_is_not_found_and_its_bytes_are_never_read(string path)
    {
        var (_, root) = Layout();
        await using var storage = new LocalUnderStorage(root);
        Assert.Null(await storage.StatAsync(path).AsTask().WaitAsync(Bounded));
        var read = await Assert.ThrowsAsync<UnderStorageException>(() => ReadText(storage, path));
        Assert.Equal(UnderStorageError.NotFound, read.Error);
        Assert.Contains(path, read.Message, StringComparison.Ordinal);
        var open = await Assert.ThrowsAsync<UnderStorageException>(async () => await storage.OpenReadAsync(path, 0, 4, null).AsTask().WaitAsync(Bounded));
        Assert.Equal(UnderStorageError.NotFound, open.Error);
    }

    [Theory]
    [InlineData("etc-link")]
    [InlineData("outside-dir")]
    [InlineData("up")]
    [InlineData("up/outside")]
    [InlineData("alias/back/up")]
    [InlineData("loop-a")]
    public async Task A_folder_reached_through_a_link_leading_outside_is_not_found_for_listing(string path)
    {
        var (_, root) = Layout();
        await using var storage = new LocalUnderStorage(root);
        var error = await Assert.ThrowsAsync<UnderStorageException>(() => ListAll(storage, path).WaitAsync(Bounded));
        Assert.Equal(UnderStorageError.NotFound, error.Error);
    }

    [Theory]
    [InlineData("deep/inside-link")]
    [InlineData("alias/inside-link")]
    [InlineData("deep/back/ok.txt")]
    [InlineData("up/set/ok.txt")]
    public async Task A_link_whose_target_is_inside_the_root_reads_the_target(string path)
    {
        var (_, root) = Layout();
        await using var storage = new LocalUnderStorage(root);
        Assert.Equal("inside", await ReadText(storage, path));
        var stat = await storage.StatAsync(path);
        Assert.Equal((EntryKind.File, 6L), (stat!.Value.Kind, stat.Value.Size));
        Assert.Equal(path[(path.LastIndexOf('/') + 1)..], stat.Value.Name);
        await using var stream = await storage.OpenReadAsync(path, 2, 4, stat.Value.ETag);
        Assert.Equal("side", await new StreamReader(stream).ReadToEndAsync());
    }

    [Theory]
    [InlineData("up/set/../../../etc/passwd")]
    [InlineData("../outside/secret.txt")]
    [InlineData("deep/../../outside/secret.txt")]
    [InlineData("./ok.txt")]
    [InlineData("deep//inside-link")]
    [InlineData("ok.txt\0/../../outside/secret.txt")]
    public async Task A_path_with_dot_dot_or_nul_is_refused_before_anything_is_looked_at(string path)
    {
        var (_, root) = Layout();
        await using var storage = new LocalUnderStorage(root);
        foreach (var attempt in new Func<Task>[]
        {
            async () => await storage.StatAsync(path),
            async () => await storage.ReadAsync(path, 0, new byte[8]),
            async () => await storage.OpenReadAsync(path, 0, 8, null),
            async () => await ListAll(storage, path),
            async () => await storage.PutAsync(path, new MemoryStream([1]), 1),
            async () => await storage.DeleteAsync(path),
            async () => await storage.MakeDirectoryAsync(path),
            async () => await storage.RenameAsync("ok.txt", path),
            async () => await storage.CopyAsync(path, "copy"),
        })
        {
            var error = await Assert.ThrowsAsync<UnderStorageException>(attempt);
            Assert.Equal(UnderStorageError.InvalidArgument, error.Error);
        }

        Assert.Equal("inside", await File.ReadAllTextAsync(Path.Combine(root, "ok.txt")));
    }

    [Fact]
    public async Task Nothing_is_created_replaced_moved_or_removed_through_a_link_leading_outside()
    {
        var (top, root) = Layout();
        var outside = Path.Combine(top, "outside");
        await using var storage = new LocalUnderStorage(root);

        async Task Refused(UnderStorageError expected, Func<Task> attempt)
        {
            var error = await Assert.ThrowsAsync<UnderStorageException>(() => attempt().WaitAsync(Bounded));
            Assert.Equal(expected, error.Error);
        }

        await Refused(UnderStorageError.NotFound, async () => await storage.PutAsync("up/outside/new.txt", new MemoryStream([1]), 1));
        await Refused(UnderStorageError.NotFound, async () => await storage.PutAsync("outside-dir/new.txt", new MemoryStream([1]), 1));
        await Refused(UnderStorageError.AccessDenied, async () => await storage.PutAsync("secret-link", new MemoryStream([1]), 1));
        await Refused(UnderStorageError.AccessDenied, async () => await storage.PutAsync("loop-a", new MemoryStream([1]), 1));
        await Refused(UnderStorageError.NotFound, async () => await storage.DeleteAsync("up/outside/secret.txt"));
        await Refused(UnderStorageError.AccessDenied, async () => await storage.DeleteAsync("secret-link"));
        await Refused(UnderStorageError.NotFound, async () => await storage.RenameAsync("ok.txt", "up/outside/moved.txt"));
        await Refused(UnderStorageError.NotFound, async () => await storage.RenameAsync("up/outside/secret.txt", "stolen.txt"));
        await Refused(UnderStorageError.AccessDenied, async () => await storage.RenameAsync("secret-link", "stolen.txt"));
        await Refused(UnderStorageError.NotFound, async () => await storage.CopyAsync("secret-link", "copy.txt"));
        await Refused(UnderStorageError.NotFound, async () => await storage.CopyAsync("ok.txt", "outside-dir/copy.txt"));
        await Refused(UnderStorageError.NotFound, async () => await storage.MakeDirectoryAsync("etc-link/new-dir"));
        await Refused(UnderStorageError.NotFound, async () => await storage.MakeDirectoryAsync("up/outside/new-dir"));
        await Refused(UnderStorageError.AccessDenied, async () => await storage.RemoveDirectoryAsync("outside-dir"));

        Assert.Equal(["secret.txt"], Directory.EnumerateFileSystemEntries(outside).Select(Path.GetFileName));
        Assert.Equal("secret", await File.ReadAllTextAsync(Path.Combine(outside, "secret.txt")));
        Assert.Equal("inside", await File.ReadAllTextAsync(Path.Combine(root, "ok.txt")));
        Assert.NotNull(File.ResolveLinkTarget(Path.Combine(root, "secret-link"), returnFinalTarget: false));
        Assert.False(File.Exists(Path.Combine(root, "stolen.txt")) || File.Exists(Path.Combine(root, "copy.txt")));

        // Through a linked folder inside the root, writes land in its target.
        await storage.PutAsync("alias/new.txt", new MemoryStream([7]), 1);
        Assert.Equal([7], await File.ReadAllBytesAsync(Path.Combine(root, "deep", "new.txt")));
    }

    [Fact]
    public async Task Allowed_roots_confine_the_folder_with_its_links_resolved()
    {
        var (top, root) = Layout();
        string[] allowed = [root];
        Directory.CreateSymbolicLink(Path.Combine(top, "set-link"), "set");

        await using (var below = new LocalUnderStorage(Path.Combine(root, "deep"), allowed))
        {
            Assert.Equal(EntryKind.Directory, (await below.StatAsync(string.Empty))!.Value.Kind);
        }

        await using (var linked = new LocalUnderStorage(Path.Combine(top, "set-link"), allowed))
        {
            Assert.Equal("inside", await ReadText(linked, "ok.txt"));
        }

        var outside = Assert.Throws<UnderStorageException>(() => new LocalUnderStorage(Path.Combine(top, "outside"), allowed));
        Assert.Equal(UnderStorageError.AccessDenied, outside.Error);
        Assert.Equal(
            $"file://{top}/outside: the folder {top}/outside is outside the folders this silo allows for local mounts (--allow-local-root {root})",
            outside.Message);

        var throughLink = Assert.Throws<UnderStorageException>(() => new LocalUnderStorage(Path.Combine(root, "outside-dir"), allowed));
        Assert.Contains($"(which resolves to {top}/outside)", throughLink.Message, StringComparison.Ordinal);
        Assert.Contains("--allow-local-root", throughLink.Message, StringComparison.Ordinal);

        var etc = Assert.Throws<UnderStorageException>(() => new UnderStorageFactory(_ => null, UnderStorageFactory.BuiltInConfined(allowed)).Create("file:///etc", new Dictionary<string, string>()));
        Assert.Contains("file:///etc: the folder /etc is outside the folders this silo allows for local mounts (--allow-local-root", etc.Message, StringComparison.Ordinal);

        // A folder missing when the adapter is made is checked when it appears.
        var later = Path.Combine(top, "later");
        await using var late = new LocalUnderStorage(later, allowed);
        Assert.Null(await late.StatAsync(string.Empty));
        Directory.CreateSymbolicLink(later, "outside");
        var appeared = await Assert.ThrowsAsync<UnderStorageException>(() => ListAll(late, string.Empty));
        Assert.Equal(UnderStorageError.AccessDenied, appeared.Error);
        Assert.Contains("--allow-local-root", appeared.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("a/../b")]
    [InlineData("../other-prefix/key")]
    [InlineData("./x")]
    [InlineData("a//b")]
    public async Task An_s3_key_with_dot_dot_is_refused_without_a_request(string path)
    {
        // Port 9 (discard) answers nothing: a request would fail as unreachable, not as an invalid argument.
        var settings = new S3Settings("bucket", "mount", "http://127.0.0.1:9", "us-east-1", true, new Amazon.Runtime.BasicAWSCredentials("k", "s"));
        await using var storage = new S3UnderStorage(settings, new RetryPolicy(1, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(1)));
        foreach (var attempt in new Func<Task>[]
        {
            async () => await storage.StatAsync(path),
            async () => await storage.ReadAsync(path, 0, new byte[8]),
            async () => await storage.OpenReadAsync(path, 0, 8, null),
            async () => await ListAll(storage, path),
            async () => await storage.PutAsync(path, new MemoryStream([1]), 1),
            async () => await storage.DeleteAsync(path),
        })
        {
            var error = await Assert.ThrowsAsync<UnderStorageException>(attempt);
            Assert.Equal(UnderStorageError.InvalidArgument, error.Error);
        }
    }
}
