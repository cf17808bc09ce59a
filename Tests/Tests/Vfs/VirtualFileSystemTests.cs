using GrainFs.Tests.Cluster;
using GrainFs.Tests.Infrastructure;
using GrainFs.Vfs;

namespace GrainFs.Tests.Vfs;

/// <summary>
/// The VFS without a kernel mount: the calls a FUSE adapter makes, against a real cluster (3 TestingHost silos,
/// PostgreSQL metadata) and real folders.
/// </summary>
public sealed class VirtualFileSystemTests(ClusterFixture fixture) : IClassFixture<ClusterFixture>
{
    private const int ReadOnlyFlags = 0;
    private const int WriteOnlyFlags = 1;
    private const int ReadWriteFlags = 2;

    private static string Unique(string name) => $"{name}-{Guid.NewGuid().ToString("N")[..6]}";

    private VirtualFileSystem NewVfs(VfsOptions? options = null) => new(fixture.NewClient(), options ?? new VfsOptions { Uid = 1000, Gid = 1000 });

    private async Task<(string Name, string Folder)> MountAsync(Action<string> fill, Dictionary<string, string>? options = null)
    {
        var folder = TestProcess.NewFolder("vfs");
        fill(folder);
        var name = Unique("vfs");
        var mounted = await fixture.NewClient().MountAsync("/" + name, $"file://{folder}", options);
        Assert.True(mounted.IsOk, mounted.Message);
        return (name, folder);
    }

    private static async Task<Attr> LookupAsync(VirtualFileSystem vfs, ulong parent, string name)
    {
        var found = await vfs.LookupAsync(parent, name, CancellationToken.None);
        Assert.True(found.IsOk, found.Message);
        return found.Value;
    }

    [Fact]
    public async Task Lookups_give_an_inode_its_own_number_counted_until_the_front_end_forgets_it()
    {
        var (m, _) = await MountAsync(f => File.WriteAllText(Path.Combine(f, "a.txt"), "hello"));
        var vfs = NewVfs();
        var mount = await LookupAsync(vfs, InodeTable.RootIno, m);
        Assert.True(mount.IsDirectory);
        Assert.True(mount.Ino > InodeTable.RootIno);
        var file = await LookupAsync(vfs, mount.Ino, "a.txt");
        Assert.Equal(5, file.Size);
        Assert.Equal(file.Ino, (await LookupAsync(vfs, mount.Ino, "a.txt")).Ino);
        Assert.Equal(2, vfs.Inodes.Find(file.Ino)!.Lookups);

        vfs.Forget(file.Ino, 1);
        Assert.NotNull(vfs.Inodes.Find(file.Ino));
        vfs.Forget(file.Ino, 1);
        Assert.Null(vfs.Inodes.Find(file.Ino));
        Assert.Equal(FsStatus.Stale, (await vfs.GetAttrAsync(file.Ino, CancellationToken.None)).Status);

        // The number belongs to the inode, not to the path: a new lookup of the same path is a new inode.
        var again = await LookupAsync(vfs, mount.Ino, "a.txt");
        Assert.NotEqual(file.Ino, again.Ino);
        Assert.Equal(FsStatus.Ok, (await vfs.GetAttrAsync(again.Ino, CancellationToken.None)).Status);
    }

    [Fact]
    public async Task An_inode_keeps_its_number_when_it_moves_and_the_paths_below_it_follow()
    {
        var (m, _) = await MountAsync(f =>
        {
            Directory.CreateDirectory(Path.Combine(f, "dir"));
            File.WriteAllText(Path.Combine(f, "dir", "x"), "x");
        });
        var vfs = NewVfs();
        var mount = await LookupAsync(vfs, InodeTable.RootIno, m);
        var dir = await LookupAsync(vfs, mount.Ino, "dir");
        var x = await LookupAsync(vfs, dir.Ino, "x");
        var inode = vfs.Inodes.Find(dir.Ino)!;
        Assert.Equal($"/{m}/dir/x", vfs.Inodes.PathOf(vfs.Inodes.Find(x.Ino)!));

        vfs.Inodes.Move(inode, vfs.Inodes.Find(mount.Ino)!, "renamed");
        Assert.Same(inode, vfs.Inodes.Find(dir.Ino));
        Assert.Same(inode, vfs.Inodes.Child(vfs.Inodes.Find(mount.Ino)!, "renamed"));
        Assert.Null(vfs.Inodes.Child(vfs.Inodes.Find(mount.Ino)!, "dir"));
        Assert.Equal($"/{m}/renamed/x", vfs.Inodes.PathOf(vfs.Inodes.Find(x.Ino)!));
    }

    [Fact]
    public async Task A_large_directory_is_listed_through_its_handle_one_page_at_a_time()
    {
        const int count = 2_500;
        var (m, _) = await MountAsync(f =>
        {
            for (var i = 0; i < count; i++)
            {
                File.WriteAllText(Path.Combine(f, $"f{i:D5}"), "x");
            }
        });
        var vfs = NewVfs();
        var mount = await LookupAsync(vfs, InodeTable.RootIno, m);
        var first = (await vfs.OpenDirectoryAsync(mount.Ino, CancellationToken.None)).GetValueOrThrow();
        var second = (await vfs.OpenDirectoryAsync(mount.Ino, CancellationToken.None)).GetValueOrThrow();
        Assert.Equal(2, vfs.OpenDirectories);

        // Two listings of one directory, interleaved call by call, each 70 entries at a time as a small kernel buffer takes them.
        var listings = new[] { new List<string>(), new List<string>() };
        var offsets = new long[2];
        var done = new bool[2];
        while (!done[0] || !done[1])
        {
            for (var h = 0; h < 2; h++)
            {
                if (done[h])
                {
                    continue;
                }

                var sink = new Sink(70);
                var listed = await vfs.ReadDirectoryAsync(mount.Ino, h == 0 ? first : second, offsets[h], plus: false, sink, CancellationToken.None);
                Assert.True(listed.IsOk, listed.Message);
                Assert.True(vfs.FindDirectory(h == 0 ? first : second)!.Buffered <= fixture.NewClient().Options.ListPageSize);
                listings[h].AddRange(sink.Entries.Select(e => e.Name));
                done[h] = sink.Entries.Count == 0;
                offsets[h] = sink.Entries.Count > 0 ? sink.Entries[^1].NextOffset : offsets[h];
            }
        }

        foreach (var names in listings)
        {
            Assert.Equal([".", ".."], names.Take(2));
            Assert.Equal(count, names.Skip(2).Distinct(StringComparer.Ordinal).Count());
            Assert.Equal(count + 2, names.Count);
        }

        // A rewind lists from the start again.
        var rewound = new Sink(10);
        Assert.True((await vfs.ReadDirectoryAsync(mount.Ino, first, 0, plus: false, rewound, CancellationToken.None)).IsOk);
        Assert.Equal(listings[0].Take(10), rewound.Entries.Select(e => e.Name));

        vfs.ReleaseDirectory(first);
        vfs.ReleaseDirectory(second);
        Assert.Equal(0, vfs.OpenDirectories);
    }

    [Fact]
    public async Task Readdirplus_counts_a_lookup_for_every_entry_taken_and_none_for_the_rest()
    {
        var (m, _) = await MountAsync(f =>
        {
            for (var i = 0; i < 10; i++)
            {
                File.WriteAllText(Path.Combine(f, $"e{i}"), new string('y', i));
            }
        });
        var vfs = NewVfs();
        var mount = await LookupAsync(vfs, InodeTable.RootIno, m);
        var fh = (await vfs.OpenDirectoryAsync(mount.Ino, CancellationToken.None)).GetValueOrThrow();
        var sink = new Sink(5);
        Assert.True((await vfs.ReadDirectoryAsync(mount.Ino, fh, 0, plus: true, sink, CancellationToken.None)).IsOk);
        Assert.Equal(5, sink.Entries.Count);
        Assert.Equal(mount.Ino, sink.Entries[0].Attr.Ino);
        Assert.Equal(InodeTable.RootIno, sink.Entries[1].Attr.Ino);
        var directory = vfs.Inodes.Find(mount.Ino)!;
        foreach (var entry in sink.Entries.Skip(2))
        {
            var child = vfs.Inodes.Find(entry.Attr.Ino)!;
            Assert.Equal(1, child.Lookups);
            Assert.Equal(entry.Name[1] - '0', entry.Attr.Size);
        }

        // The entry that did not fit was not taken: the kernel never heard of it, so no inode is held for it.
        var taken = sink.Entries.Skip(2).Select(e => e.Name).ToHashSet();
        var left = Enumerable.Range(0, 10).Select(i => $"e{i}").First(n => !taken.Contains(n));
        Assert.Null(vfs.Inodes.Child(directory, left));
    }

    [Fact]
    public async Task A_file_opened_with_a_handle_keeps_reading_its_version_and_the_next_open_sees_the_new_one()
    {
        var (m, folder) = await MountAsync(f => File.WriteAllText(Path.Combine(f, "v"), "version-one"), new Dictionary<string, string> { ["sync-interval"] = "0" });
        var vfs = NewVfs();
        var mount = await LookupAsync(vfs, InodeTable.RootIno, m);
        var file = await LookupAsync(vfs, mount.Ino, "v");
        var old = (await vfs.OpenAsync(file.Ino, ReadOnlyFlags, handle: true, CancellationToken.None)).GetValueOrThrow();
        var buffer = new byte[64];
        Assert.Equal("version-one", System.Text.Encoding.UTF8.GetString(buffer, 0, (await vfs.ReadAsync(file.Ino, old, 0, buffer, CancellationToken.None)).GetValueOrThrow()));

        await File.WriteAllTextAsync(Path.Combine(folder, "v"), "version-two, longer");
        var fresh = (await vfs.OpenAsync(file.Ino, ReadOnlyFlags, handle: true, CancellationToken.None)).GetValueOrThrow();
        Assert.Equal("version-two, longer", System.Text.Encoding.UTF8.GetString(buffer, 0, (await vfs.ReadAsync(file.Ino, fresh, 0, buffer, CancellationToken.None)).GetValueOrThrow()));
        Assert.Equal("version-one", System.Text.Encoding.UTF8.GetString(buffer, 0, (await vfs.ReadAsync(file.Ino, old, 0, buffer, CancellationToken.None)).GetValueOrThrow()));
        Assert.Equal(0, (await vfs.ReadAsync(file.Ino, fresh, 1000, buffer, CancellationToken.None)).GetValueOrThrow());
        Assert.Equal(2, vfs.OpenFiles);

        var readOnly = NewVfs(new VfsOptions { Uid = 1000, Gid = 1000, ReadOnly = true });
        var roFile = await LookupAsync(readOnly, (await LookupAsync(readOnly, InodeTable.RootIno, m)).Ino, "v");
        Assert.Equal(FsStatus.ReadOnly, (await readOnly.OpenAsync(roFile.Ino, WriteOnlyFlags, handle: true, CancellationToken.None)).Status);
        Assert.Equal(FsStatus.ReadOnly, (await readOnly.OpenAsync(roFile.Ino, ReadWriteFlags, handle: false, CancellationToken.None)).Status);
        Assert.Equal(FsStatus.Ok, (await vfs.OpenAsync(file.Ino, ReadOnlyFlags, handle: false, CancellationToken.None)).Status);
        Assert.Equal(FsStatus.IsADirectory, (await vfs.ReadAsync(mount.Ino, 0, 0, buffer, CancellationToken.None)).Status);
        vfs.Release(old);
        vfs.Release(fresh);
        Assert.Equal(0, vfs.OpenFiles);
    }

    [Fact]
    public async Task Errors_are_the_posix_ones_and_writes_meet_the_read_only_policy()
    {
        var (m, _) = await MountAsync(f => File.WriteAllText(Path.Combine(f, "file"), "1"));
        var vfs = NewVfs();
        var mount = await LookupAsync(vfs, InodeTable.RootIno, m);
        var file = await LookupAsync(vfs, mount.Ino, "file");
        Assert.Equal(FsStatus.NotFound, (await vfs.LookupAsync(mount.Ino, "missing", CancellationToken.None)).Status);
        Assert.Equal(FsStatus.NotADirectory, (await vfs.LookupAsync(file.Ino, "child", CancellationToken.None)).Status);
        Assert.Equal(FsStatus.NameTooLong, (await vfs.LookupAsync(mount.Ino, new string('n', 256), CancellationToken.None)).Status);
        Assert.Equal(FsStatus.Stale, (await vfs.LookupAsync(987_654, "x", CancellationToken.None)).Status);
        Assert.Equal(FsStatus.NotADirectory, (await vfs.OpenDirectoryAsync(file.Ino, CancellationToken.None)).Status);

        // What GrainFS does not keep (symlinks, links, device nodes) is EPERM; on a read-only VFS every change is EROFS.
        Assert.Equal(FsStatus.NotPermitted, vfs.Modify(mount.Ino, "new-link"));
        Assert.Equal(FsStatus.NameTooLong, vfs.Modify(mount.Ino, new string('n', 256)));
        Assert.Equal(FsStatus.Stale, vfs.Modify(987_654, "x"));
        Assert.Equal(FsStatus.Ok, vfs.Access(file.Ino, 2));
        Assert.Equal(FsStatus.Ok, vfs.Access(file.Ino, 4));
        var readOnly = NewVfs(new VfsOptions { Uid = 1000, Gid = 1000, ReadOnly = true });
        var roMount = await LookupAsync(readOnly, InodeTable.RootIno, m);
        var roFile = await LookupAsync(readOnly, roMount.Ino, "file");
        Assert.Equal(FsStatus.ReadOnly, readOnly.Modify(roMount.Ino, "new-file"));
        Assert.Equal(FsStatus.ReadOnly, readOnly.Access(roFile.Ino, 2));
        Assert.Equal(FsStatus.ReadOnly, (await readOnly.MakeDirectoryAsync(roMount.Ino, "d", 0x1ED, 0, 0, CancellationToken.None)).Status);
        Assert.Equal(FsStatus.ReadOnly, (await readOnly.CreateAsync(roMount.Ino, "n", 0x41, 0x1A4, 0, 0, CancellationToken.None)).Status);
    }

    [Fact]
    public async Task Attributes_follow_the_owner_and_mode_policy_and_statfs_reports_the_tiers()
    {
        var (m, _) = await MountAsync(f =>
        {
            File.WriteAllText(Path.Combine(f, "file"), "1");
            Directory.CreateDirectory(Path.Combine(f, "dir"));
        });
        var vfs = NewVfs(new VfsOptions { Uid = 1234, Gid = 99, Mode = Convert.ToInt32("640", 8) });
        var mount = await LookupAsync(vfs, InodeTable.RootIno, m);
        var file = await LookupAsync(vfs, mount.Ino, "file");
        var dir = await LookupAsync(vfs, mount.Ino, "dir");
        Assert.Equal((1234u, 99u), (file.Uid, file.Gid));
        Assert.Equal(Attr.TypeFile | Convert.ToUInt32("640", 8), file.Mode);
        Assert.Equal(Attr.TypeDirectory | Convert.ToUInt32("750", 8), dir.Mode);
        Assert.Equal(2UL, dir.Nlink);

        var stat = (await vfs.StatFsAsync(CancellationToken.None)).GetValueOrThrow();
        var report = (await fixture.NewClient().GetReportAsync()).GetValueOrThrow();
        // A writer's space: the write tier of each write worker.
        Assert.All(report, w => Assert.NotNull(w.WriteTier));
        Assert.Equal((ulong)(report.Sum(w => w.Tiers.Where(t => t.Tier == w.WriteTier).Sum(t => t.Capacity)) / 4096), stat.Blocks);
        Assert.True(stat.Blocks < (ulong)(report.Sum(w => w.Tiers.Sum(t => t.Capacity)) / 4096));
        Assert.True(stat.FreeBlocks <= stat.Blocks);
        Assert.False(stat.ReadOnly);
        Assert.True((await NewVfs(new VfsOptions { ReadOnly = true }).StatFsAsync(CancellationToken.None)).GetValueOrThrow().ReadOnly);
        Assert.Equal(255UL, stat.NameMax);
    }

    /// <summary>A reply buffer that takes a given number of entries.</summary>
    private sealed class Sink(int room) : IDirectorySink
    {
        public List<DirEntry> Entries { get; } = [];

        public bool TryAdd(in DirEntry entry)
        {
            if (Entries.Count >= room)
            {
                return false;
            }

            Entries.Add(entry);
            return true;
        }
    }
}
