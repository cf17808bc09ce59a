using GrainFs.Tests.Infrastructure;
using GrainFs.Vfs;

namespace GrainFs.Tests.Unit;

/// <summary>
/// The inode journal a serving FUSE process keeps so that the next one knows the numbers the kernel holds: a table
/// restored from it has the same inodes at the same places, and numbers and handles go on above the old ones.
/// </summary>
public sealed class InodeJournalTests
{
    private static FsEntry File(string name, long size = 10) => new(name, FsKind.File, size, DateTime.UnixEpoch, "e", 0x1A4);

    private static FsEntry Dir(string name) => new(name, FsKind.Directory, 0, DateTime.UnixEpoch, string.Empty, 0x1ED);

    [Fact]
    public void A_restored_table_has_every_inode_at_its_place_and_numbers_go_on_above_them()
    {
        var journal = Path.Combine(TestProcess.NewFolder("journal"), "inodes");
        var first = new InodeTable("/");
        Assert.Equal(0, first.Restore(journal));
        var a = first.Remember(first.Root, "a", Dir("a"), 1);
        var b = first.Remember(first.Root, "b", Dir("b"), 1);
        var x = first.Remember(a, "x", File("x"), 1);
        var y = first.Remember(a, "y", File("y"), 2);
        var gone = first.Remember(b, "gone", File("gone"), 1);
        var unlinked = first.Remember(b, "unlinked", File("unlinked"), 1);
        first.Move(x, b, "x2");           // a rename into a directory numbered later
        first.Move(b, a, "b-inside-a");   // and the directory itself below another
        first.Forget(gone.Ino, 1);        // forgotten by the kernel
        first.Detach(b, "unlinked");      // unlinked while open: the kernel still holds it

        var second = new InodeTable("/");
        Assert.Equal(5, second.Restore(journal)); // a, b, x, y, unlinked
        Assert.Equal("/a/y", second.PathOf(second.Find(y.Ino)!));
        Assert.Equal("/a/b-inside-a/x2", second.PathOf(second.Find(x.Ino)!));
        Assert.Null(second.Find(gone.Ino));
        Assert.NotNull(second.Find(unlinked.Ino));
        Assert.Null(second.Child(second.Find(b.Ino)!, "unlinked"));
        Assert.Same(second.Find(x.Ino), second.FindPath("/a/b-inside-a/x2").Inode);
        Assert.True(second.Find(a.Ino)!.Entry.IsDirectory);

        // A lookup of a known name keeps its number; a new name gets one above every old number.
        Assert.Equal(y.Ino, second.Remember(second.Find(a.Ino)!, "y", File("y", 99), 1).Ino);
        var fresh = second.Remember(second.Root, "new", File("new"), 1);
        Assert.True(fresh.Ino > unlinked.Ino, $"{fresh.Ino} after {unlinked.Ino}");

        // The kernel's forget of an inode taken over drops it, whatever this process counted.
        second.Forget(y.Ino, 7);
        Assert.Null(second.Find(y.Ino));

        // And the journal carries on: a third process sees the second's changes.
        var third = new InodeTable("/");
        third.Restore(journal);
        Assert.Null(third.Find(y.Ino));
        Assert.Equal("/new", third.PathOf(third.Find(fresh.Ino)!));
    }

    [Fact]
    public void A_record_cut_short_by_a_crash_ends_the_replay_and_loses_nothing_before_it()
    {
        var journal = Path.Combine(TestProcess.NewFolder("journal"), "inodes");
        var table = new InodeTable("/");
        table.Restore(journal);
        var kept = table.Remember(table.Root, "kept", File("kept"), 1);
        table.Remember(table.Root, "torn-" + new string('n', 200), File("torn"), 1);
        table.Journal!.Dispose();
        var bytes = System.IO.File.ReadAllBytes(journal);
        System.IO.File.WriteAllBytes(journal, bytes[..^50]);

        var entries = InodeJournal.Read(journal);
        Assert.Single(entries);
        Assert.Equal("kept", entries[kept.Ino].Name);
    }

    [Fact]
    public void A_journal_is_compacted_to_the_live_inodes_while_it_grows()
    {
        var journal = Path.Combine(TestProcess.NewFolder("journal"), "inodes");
        var table = new InodeTable("/");
        table.Restore(journal);
        var directory = table.Remember(table.Root, "d", Dir("d"), 1);
        var name = new string('x', 200);
        var live = new List<ulong>();
        // Numbered and forgotten, as a walk over a tree far larger than the kernel keeps does.
        for (var i = 0; table.Journal!.Compactions < 2; i++)
        {
            var inode = table.Remember(directory, $"{name}{i}", File("f"), 1);
            if (i % 1000 == 0)
            {
                live.Add(inode.Ino);
            }
            else
            {
                table.Forget(inode.Ino, 1);
            }
        }

        Assert.True(table.Journal.Length < InodeJournal.CompactAfterBytes, $"{table.Journal.Length} bytes after compacting");
        var restored = new InodeTable("/");
        Assert.Equal(live.Count + 1, restored.Restore(journal));
        Assert.All(live, ino => Assert.NotNull(restored.Find(ino)));
    }
}
