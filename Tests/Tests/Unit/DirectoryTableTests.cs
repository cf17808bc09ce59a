using System.Text;
using CsCheck;
using GrainFs.Storage.Metadata;

namespace GrainFs.Tests.Unit;

public class DirectoryTableTests
{
    private static readonly Gen<EntryRecord> Entry =
        Gen.Select(
            Gen.String[Gen.Char["abcxyzé日.-_0123456789"], 1, 24],
            Gen.Bool,
            Gen.Long[0, 1L << 40],
            Gen.Long[0, DateTime.MaxValue.Ticks],
            Gen.OneOf(Gen.Const(string.Empty), Gen.String[Gen.Char["0123456789abcdef"], 32, 32], Gen.String[Gen.Char["0123456789abcdef-\"X"], 1, 40]),
            Gen.Int[0, 0xFFF],
            (name, dir, size, mtime, etag, mode) => new EntryRecord(name, dir ? EntryKind.Directory : EntryKind.File, dir ? 0 : size, mtime, dir ? string.Empty : etag, mode));

    [Fact]
    public void Every_entry_is_found_with_its_fields_and_names_come_in_utf8_order()
    {
        Entry.List[0, 300].Sample(entries =>
        {
            var table = DirectoryTable.Build(entries);
            // The last entry of a name wins unless a directory of that name exists.
            var expected = new Dictionary<string, EntryRecord>(StringComparer.Ordinal);
            foreach (var e in entries)
            {
                if (!expected.TryGetValue(e.Name, out var seen) || (e.Kind == EntryKind.Directory && seen.Kind != EntryKind.Directory))
                {
                    expected[e.Name] = e;
                }
            }

            Assert.Equal(expected.Count, table.Count);
            foreach (var (name, e) in expected)
            {
                var index = table.IndexOf(name);
                Assert.True(index >= 0, name);
                var found = table[index];
                Assert.Equal(e.Kind, found.Kind);
                if (e.Kind == EntryKind.File && expected.Count(x => x.Key == name) == 1 && entries.Count(x => x.Name == name) == 1)
                {
                    Assert.Equal(e, found);
                }
            }

            for (var i = 1; i < table.Count; i++)
            {
                Assert.True(Encoding.UTF8.GetBytes(table.NameAt(i - 1)).AsSpan().SequenceCompareTo(Encoding.UTF8.GetBytes(table.NameAt(i))) < 0);
            }

            Assert.Equal(-1, table.IndexOf("not-there-" + Guid.NewGuid()));
        });
    }

    [Fact]
    public void Paging_by_name_visits_every_entry_once()
    {
        Entry.List[0, 200].Sample(entries =>
        {
            var table = DirectoryTable.Build(entries);
            var seen = new List<string>();
            string? after = null;
            while (true)
            {
                var start = table.IndexAfter(after);
                if (start >= table.Count)
                {
                    break;
                }

                var end = Math.Min(table.Count, start + 7);
                for (var i = start; i < end; i++)
                {
                    seen.Add(table.NameAt(i));
                }

                after = seen[^1];
            }

            Assert.Equal(table.Count, seen.Count);
            Assert.Equal(seen.Count, seen.Distinct(StringComparer.Ordinal).Count());
        });
    }

    [Fact]
    public void Md5_etags_are_stored_in_16_bytes_and_read_back_exactly()
    {
        var etag = "9e107d9d372bb6826bd81d3542a419d6";
        var table = DirectoryTable.Build([new EntryRecord("a.jpg", EntryKind.File, 10, 1, etag, 0x1A4), new EntryRecord("b.jpg", EntryKind.File, 10, 1, "\"Mixed-Case-3\"", 0)]);
        Assert.Equal(etag, table[table.IndexOf("a.jpg")].ETag);
        Assert.Equal("\"Mixed-Case-3\"", table[table.IndexOf("b.jpg")].ETag);
    }

    [Fact]
    public void A_directory_shadows_a_file_of_the_same_name()
    {
        var table = DirectoryTable.Build([new EntryRecord("x", EntryKind.File, 5, 1, "e", 0), new EntryRecord("x", EntryKind.Directory, 0, 1, string.Empty, 0)], out var shadowed);
        Assert.Equal(1, table.Count);
        Assert.Equal(1, shadowed);
        Assert.Equal(EntryKind.Directory, table[0].Kind);
    }

    [Fact]
    public void Typical_dataset_entries_cost_well_under_100_bytes_each()
    {
        var entries = Enumerable.Range(0, 100_000)
            .Select(i => new EntryRecord($"n{i:D8}_{i % 997}.JPEG", EntryKind.File, 110_000 + i, 638_000_000_000_000_000 + i, Convert.ToHexStringLower(BitConverter.GetBytes((long)i * 7919).Concat(BitConverter.GetBytes((long)i)).ToArray()), 0x1A4))
            .ToList();
        var table = DirectoryTable.Build(entries);
        var perEntry = (double)table.HeapBytes / table.Count;
        Assert.InRange(perEntry, 1, 100);
    }

    [Fact]
    public void With_and_without_return_new_tables_and_leave_the_old_one_alone()
    {
        var table = DirectoryTable.Build([new EntryRecord("a", EntryKind.File, 1, 1, "x", 0)]);
        var added = table.With(new EntryRecord("b", EntryKind.File, 2, 2, "y", 0));
        var removed = added.Without("a");
        Assert.Equal(1, table.Count);
        Assert.Equal(2, added.Count);
        Assert.Equal(1, removed.Count);
        Assert.Equal("b", removed.NameAt(0));
    }
}
