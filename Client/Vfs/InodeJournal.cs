using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace GrainFs.Vfs;

/// <summary>
/// The inode numbers a front end handed to the kernel, kept in a file so that the next process serving the same
/// kernel connection (after a crash or an upgrade) knows them: the kernel keeps using the numbers it was given and
/// never looks them up again. Each change is one record written with one pwrite (a process killed between two
/// records loses nothing written before): numbered (ino, parent, name, kind), moved (ino, parent, name), detached
/// (the name now means another file or none; the inode lives while the kernel holds it) and dropped (forgotten).
/// Replaying is idempotent, so a compaction (the live inodes written afresh, then renamed over the file) may run
/// while changes come in: a change it missed is in a record after it.
/// </summary>
public sealed class InodeJournal : IDisposable
{
    /// <summary>A journal is compacted when it grows past this many bytes and four times its size after the last compaction.</summary>
    public const long CompactAfterBytes = 16L << 20;

    private const byte OpNumbered = (byte)'N';
    private const byte OpMoved = (byte)'M';
    private const byte OpDetached = (byte)'X';
    private const byte OpDropped = (byte)'D';
    private const int ShortRecord = 4 + 1 + 8;
    private const int LongHeader = ShortRecord + 8 + 1;

    private readonly string _path;
    private readonly Lock _gate = new();
    private readonly Func<IEnumerable<Entry>> _snapshot;
    private SafeFileHandle _file;
    private long _length;
    private long _compactAt;

    private InodeJournal(string path, SafeFileHandle file, long length, Func<IEnumerable<Entry>> snapshot)
    {
        _path = path;
        _snapshot = snapshot;
        _file = file;
        _length = length;
        _compactAt = Math.Max(CompactAfterBytes, 4 * length);
    }

    /// <summary>The journal file.</summary>
    public string Path => _path;

    /// <summary>Its length now.</summary>
    public long Length => Volatile.Read(ref _length);

    /// <summary>Compactions so far.</summary>
    public int Compactions { get; private set; }

    /// <summary>What a journal holds: every inode the kernel may still use, by number.</summary>
    public sealed record Entry(ulong Ino, ulong Parent, string Name, bool Directory, bool Detached);

    /// <summary>Reads the journal at <paramref name="path"/> (none: empty); a torn last record is ignored.</summary>
    public static Dictionary<ulong, Entry> Read(string path)
    {
        var entries = new Dictionary<ulong, Entry>();
        if (!File.Exists(path))
        {
            return entries;
        }

        var bytes = File.ReadAllBytes(path);
        var at = 0;
        while (bytes.Length - at >= ShortRecord)
        {
            var length = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(at));
            if (length < ShortRecord || length > bytes.Length - at)
            {
                break; // a record cut short by a crash: nothing after it was acknowledged to the kernel
            }

            var record = bytes.AsSpan(at, length);
            var op = record[4];
            var ino = BinaryPrimitives.ReadUInt64LittleEndian(record[5..]);
            at += length;
            switch (op)
            {
                case OpNumbered or OpMoved when length >= LongHeader:
                    var parent = BinaryPrimitives.ReadUInt64LittleEndian(record[13..]);
                    var directory = record[21] != 0;
                    var name = Encoding.UTF8.GetString(record[LongHeader..]);
                    if (op == OpNumbered)
                    {
                        entries[ino] = new Entry(ino, parent, name, directory, false);
                    }
                    else if (entries.TryGetValue(ino, out var moved))
                    {
                        entries[ino] = moved with { Parent = parent, Name = name, Detached = false };
                    }

                    break;
                case OpDetached when entries.TryGetValue(ino, out var detached):
                    entries[ino] = detached with { Detached = true };
                    break;
                case OpDropped:
                    entries.Remove(ino);
                    break;
            }
        }

        return entries;
    }

    /// <summary>
    /// Opens the journal at <paramref name="path"/> for appending, after writing the inodes <paramref name="snapshot"/>
    /// gives as its whole content; the same snapshot (read without locks) is written at each compaction.
    /// </summary>
    public static InodeJournal Create(string path, Func<IEnumerable<Entry>> snapshot)
    {
        var length = WriteFresh(path, snapshot());
        return new InodeJournal(path, File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite), length, snapshot);
    }

    /// <summary>An inode was numbered.</summary>
    public void Numbered(ulong ino, ulong parent, string name, bool directory) => Append(OpNumbered, ino, parent, name, directory);

    /// <summary>An inode was moved (renamed).</summary>
    public void Moved(ulong ino, ulong parent, string name, bool directory) => Append(OpMoved, ino, parent, name, directory);

    /// <summary>An inode's name now means another file or none.</summary>
    public void Detached(ulong ino) => Append(OpDetached, ino, 0, null, false);

    /// <summary>An inode was forgotten.</summary>
    public void Dropped(ulong ino) => Append(OpDropped, ino, 0, null, false);

    private void Append(byte op, ulong ino, ulong parent, string? name, bool directory)
    {
        var length = name is null ? ShortRecord : LongHeader + Encoding.UTF8.GetByteCount(name);
        var buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            Encode(buffer.AsSpan(0, length), op, ino, parent, name, directory);
            lock (_gate)
            {
                RandomAccess.Write(_file, buffer.AsSpan(0, length), _length);
                _length += length;
                if (_length > _compactAt)
                {
                    Compact(_snapshot());
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Rewrites the journal as <paramref name="live"/> (read without locks: a change it misses is appended after it, replay is idempotent).</summary>
    private void Compact(IEnumerable<Entry> live)
    {
        var length = WriteFresh(_path, live);
        var file = File.OpenHandle(_path, FileMode.Open, FileAccess.ReadWrite);
        _file.Dispose();
        _file = file;
        _length = length;
        _compactAt = Math.Max(CompactAfterBytes, 4 * length);
        Compactions++;
    }

    /// <summary>Writes <paramref name="live"/> as the whole journal at <paramref name="path"/>: a new file renamed over it, so a crash leaves the old one or the new one.</summary>
    private static long WriteFresh(string path, IEnumerable<Entry> live)
    {
        var length = WriteFile(path + ".new", live);
        File.Move(path + ".new", path, overwrite: true);
        return length;
    }

    private static long WriteFile(string path, IEnumerable<Entry> live)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 1 << 16);
        var buffer = new byte[LongHeader + 1024];
        var detached = new List<ulong>();
        foreach (var entry in live)
        {
            var length = LongHeader + Encoding.UTF8.GetByteCount(entry.Name);
            if (length > buffer.Length)
            {
                buffer = new byte[length];
            }

            Encode(buffer.AsSpan(0, length), OpNumbered, entry.Ino, entry.Parent, entry.Name, entry.Directory);
            stream.Write(buffer, 0, length);
            if (entry.Detached)
            {
                detached.Add(entry.Ino);
            }
        }

        foreach (var ino in detached)
        {
            Encode(buffer.AsSpan(0, ShortRecord), OpDetached, ino, 0, null, false);
            stream.Write(buffer, 0, ShortRecord);
        }

        stream.Flush();
        return stream.Length;
    }

    private static void Encode(Span<byte> record, byte op, ulong ino, ulong parent, string? name, bool directory)
    {
        BinaryPrimitives.WriteInt32LittleEndian(record, record.Length);
        record[4] = op;
        BinaryPrimitives.WriteUInt64LittleEndian(record[5..], ino);
        if (name is not null)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(record[13..], parent);
            record[21] = directory ? (byte)1 : (byte)0;
            Encoding.UTF8.GetBytes(name, record[LongHeader..]);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate)
        {
            _file.Dispose();
        }
    }
}
