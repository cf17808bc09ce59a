using System.Buffers;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace GrainFs.Storage.Metadata;

/// <summary>The kind of an entry, with the same values as the grain-facing FsKind.</summary>
public enum EntryKind : byte
{
    /// <summary>A regular file.</summary>
    File = 1,

    /// <summary>A directory or common prefix.</summary>
    Directory = 2,
}

/// <summary>One entry as under-storage and the metadata store see it.</summary>
/// <param name="Name">Name inside the directory.</param>
/// <param name="Kind">File or directory.</param>
/// <param name="Size">Bytes.</param>
/// <param name="MtimeTicks">Modification time, UTC ticks.</param>
/// <param name="ETag">Version tag, "" when none.</param>
/// <param name="Mode">Permission bits, 0 when the source has none.</param>
public readonly record struct EntryRecord(string Name, EntryKind Kind, long Size, long MtimeTicks, string ETag, int Mode);

/// <summary>
/// The children of one directory in compact, immutable form: a sorted array of 28-byte rows and one
/// byte blob holding every name (UTF-8) and ETag (16 raw bytes for an MD5-style hex tag). About 56
/// bytes per entry for typical dataset names, against the 2–4 KB per inode of a JVM master.
/// Lookups binary-search the UTF-8 names without allocating; an update builds a new table.
/// </summary>
public sealed class DirectoryTable
{
    private const byte KindMask = 0x0F;
    private const byte FlagHexETag = 0x10;

    [StructLayout(LayoutKind.Sequential, Pack = 4)]
    private struct Row
    {
        public long Size;
        public long MtimeTicks;
        public int Offset;
        public ushort NameLength;
        public byte ETagLength;
        public byte KindAndFlags;
        public ushort Mode;
    }

    private readonly Row[] _rows;
    private readonly byte[] _blob;

    private DirectoryTable(Row[] rows, byte[] blob)
    {
        _rows = rows;
        _blob = blob;
    }

    /// <summary>A table with no entries.</summary>
    public static DirectoryTable Empty { get; } = new([], []);

    /// <summary>Number of entries.</summary>
    public int Count => _rows.Length;

    /// <summary>Bytes this table holds on the heap (rows, blob and array headers), for memory accounting.</summary>
    public long HeapBytes => ((long)_rows.Length * Marshal.SizeOf<Row>()) + _blob.Length + 64;

    /// <summary>The entry at <paramref name="index"/> (name order).</summary>
    public EntryRecord this[int index]
    {
        get
        {
            ref readonly var row = ref _rows[index];
            var name = Encoding.UTF8.GetString(_blob, row.Offset, row.NameLength);
            var etagBytes = _blob.AsSpan(row.Offset + row.NameLength, row.ETagLength);
            var etag = (row.KindAndFlags & FlagHexETag) != 0
                ? Convert.ToHexStringLower(etagBytes)
                : Encoding.UTF8.GetString(etagBytes);
            return new EntryRecord(name, (EntryKind)(row.KindAndFlags & KindMask), row.Size, row.MtimeTicks, etag, row.Mode);
        }
    }

    /// <summary>The name of the entry at <paramref name="index"/>.</summary>
    public string NameAt(int index) => Encoding.UTF8.GetString(_blob, _rows[index].Offset, _rows[index].NameLength);

    /// <summary>Index of <paramref name="name"/>, or -1.</summary>
    public int IndexOf(string name)
    {
        var index = Search(name, out var found);
        return found ? index : -1;
    }

    /// <summary>Index of the first entry whose name sorts after <paramref name="after"/> (0 for null).</summary>
    public int IndexAfter(string? after)
    {
        if (after is null)
        {
            return 0;
        }

        var index = Search(after, out var found);
        return found ? index + 1 : index;
    }

    private int Search(string name, out bool found)
    {
        var max = Encoding.UTF8.GetMaxByteCount(name.Length);
        byte[]? rented = null;
        Span<byte> key = max <= 1024 ? stackalloc byte[max] : (rented = ArrayPool<byte>.Shared.Rent(max));
        try
        {
            key = key[..Encoding.UTF8.GetBytes(name, key)];
            int lo = 0, hi = _rows.Length - 1;
            while (lo <= hi)
            {
                var mid = lo + ((hi - lo) >> 1);
                var cmp = NameSpan(mid).SequenceCompareTo(key);
                if (cmp == 0)
                {
                    found = true;
                    return mid;
                }

                if (cmp < 0)
                {
                    lo = mid + 1;
                }
                else
                {
                    hi = mid - 1;
                }
            }

            found = false;
            return lo;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private ReadOnlySpan<byte> NameSpan(int index) => _blob.AsSpan(_rows[index].Offset, _rows[index].NameLength);

    /// <summary>
    /// Builds a table from entries in any order. When a name appears twice (an object store can hold both
    /// the key "a" and keys under "a/"), the directory wins, as it would in the object store's own console.
    /// </summary>
    /// <param name="entries">The entries.</param>
    /// <param name="shadowed">How many duplicates were dropped.</param>
    public static DirectoryTable Build(IReadOnlyList<EntryRecord> entries, out int shadowed)
    {
        shadowed = 0;
        if (entries.Count == 0)
        {
            return Empty;
        }

        var rows = new Row[entries.Count];
        var blob = new ArrayBufferWriter<byte>(entries.Count * 32);
        Span<byte> etagScratch = stackalloc byte[32];
        for (var i = 0; i < entries.Count; i++)
        {
            var e = entries[i];
            var offset = blob.WrittenCount;
            var nameLength = Encoding.UTF8.GetBytes(e.Name, blob.GetSpan(Encoding.UTF8.GetMaxByteCount(e.Name.Length)));
            if (nameLength > ushort.MaxValue)
            {
                throw new ArgumentException($"entry name is {nameLength} bytes, more than a table can hold", nameof(entries));
            }

            blob.Advance(nameLength);
            var flags = (byte)e.Kind;
            int etagLength;
            if (TryHexETag(e.ETag, etagScratch[..16]))
            {
                etagScratch[..16].CopyTo(blob.GetSpan(16));
                etagLength = 16;
                flags |= FlagHexETag;
            }
            else
            {
                var bytes = Encoding.UTF8.GetBytes(e.ETag);
                if (bytes.Length > byte.MaxValue)
                {
                    // An unusually long version tag: keep a digest of it, which still changes whenever the tag does.
                    bytes = SHA256.HashData(bytes)[..16];
                    flags |= FlagHexETag;
                }

                bytes.CopyTo(blob.GetSpan(bytes.Length));
                etagLength = bytes.Length;
            }

            blob.Advance(etagLength);
            rows[i] = new Row
            {
                Size = e.Size,
                MtimeTicks = e.MtimeTicks,
                Offset = offset,
                NameLength = (ushort)nameLength,
                ETagLength = (byte)etagLength,
                KindAndFlags = flags,
                Mode = (ushort)(e.Mode & 0xFFFF),
            };
        }

        var data = blob.WrittenSpan.ToArray();
        Array.Sort(rows, (a, b) =>
        {
            var cmp = data.AsSpan(a.Offset, a.NameLength).SequenceCompareTo(data.AsSpan(b.Offset, b.NameLength));
            // Directories first among equal names, so the de-duplication below keeps them.
            return cmp != 0 ? cmp : (b.KindAndFlags & KindMask).CompareTo(a.KindAndFlags & KindMask);
        });

        var kept = 0;
        for (var i = 0; i < rows.Length; i++)
        {
            if (kept > 0 && data.AsSpan(rows[i].Offset, rows[i].NameLength).SequenceEqual(data.AsSpan(rows[kept - 1].Offset, rows[kept - 1].NameLength)))
            {
                shadowed++;
                continue;
            }

            rows[kept++] = rows[i];
        }

        if (kept != rows.Length)
        {
            Array.Resize(ref rows, kept);
        }

        return new DirectoryTable(rows, data);
    }

    /// <summary>Builds a table; duplicates are dropped as in <see cref="Build(IReadOnlyList{EntryRecord}, out int)"/>.</summary>
    public static DirectoryTable Build(IReadOnlyList<EntryRecord> entries) => Build(entries, out _);

    /// <summary>The table with one entry added or replaced.</summary>
    public DirectoryTable With(EntryRecord entry)
    {
        var list = new List<EntryRecord>(Count + 1);
        for (var i = 0; i < Count; i++)
        {
            var existing = this[i];
            if (!string.Equals(existing.Name, entry.Name, StringComparison.Ordinal))
            {
                list.Add(existing);
            }
        }

        list.Add(entry);
        return Build(list);
    }

    /// <summary>The table with the entry <paramref name="name"/> removed.</summary>
    public DirectoryTable Without(string name)
    {
        var index = IndexOf(name);
        if (index < 0)
        {
            return this;
        }

        var list = new List<EntryRecord>(Count - 1);
        for (var i = 0; i < Count; i++)
        {
            if (i != index)
            {
                list.Add(this[i]);
            }
        }

        return Build(list);
    }

    private static bool TryHexETag(string etag, Span<byte> destination)
    {
        // Unquoted only: a quoted ETag stored as 16 bytes would come back without its quotes (adapters hand ETags over
        // unquoted; one that is not is kept as text, exactly).
        var span = etag.AsSpan();
        if (span.Length != 32)
        {
            return false;
        }

        foreach (var c in span)
        {
            // Only lower-case hex round-trips exactly; anything else is stored as text.
            if (!char.IsAsciiDigit(c) && c is not (>= 'a' and <= 'f'))
            {
                return false;
            }
        }

        return Convert.FromHexString(span, destination, out _, out var written) == System.Buffers.OperationStatus.Done && written == 16;
    }
}
