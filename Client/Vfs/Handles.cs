using System.Collections.Concurrent;
using GrainFs.Client;

namespace GrainFs.Vfs;

/// <summary>An open file: the version it was opened at (close-to-open: a later version is seen by the next open).</summary>
public sealed class FileHandle
{
    internal FileHandle(ulong id, Inode inode, GrainFsFile file)
    {
        Id = id;
        Inode = inode;
        File = file;
    }

    /// <summary>The handle number (FUSE fh).</summary>
    public ulong Id { get; }

    /// <summary>The file's inode.</summary>
    public Inode Inode { get; }

    /// <summary>The reader of the version opened.</summary>
    public GrainFsFile File { get; }
}

/// <summary>
/// An open directory and where its listing stands: one page of entries at a time (the page holding the next offset
/// to read), not a snapshot of the whole directory. Positions 0 and 1 are "." and ".."; entry i is at 2 + i.
/// </summary>
public sealed class DirectoryHandle
{
    internal DirectoryHandle(ulong id, Inode inode)
    {
        Id = id;
        Inode = inode;
    }

    /// <summary>The handle number (FUSE fh).</summary>
    public ulong Id { get; }

    /// <summary>The directory's inode.</summary>
    public Inode Inode { get; }

    /// <summary>Entries held now: at most one page of the listing.</summary>
    public int Buffered => Window.Count;

    /// <summary>Requests of one handle take turns (the kernel serializes them anyway).</summary>
    internal SemaphoreSlim Gate { get; } = new(1, 1);

    internal IReadOnlyList<FsEntry> Window { get; set; } = [];

    internal long WindowStart { get; set; } = DotEntries;

    internal string? NextCursor { get; set; }

    internal bool Started { get; set; }

    internal bool Done { get; set; }

    /// <summary>"." and "..".</summary>
    internal const int DotEntries = 2;
}

/// <summary>Open handles by number; 0 is never handed out (it means "no handle").</summary>
internal sealed class HandleTable<T>
    where T : class
{
    private readonly ConcurrentDictionary<ulong, T> _open = new();
    private long _next;

    public int Count => _open.Count;

    /// <summary>Numbers from now on start above <paramref name="last"/> (handles an earlier serving process gave the kernel are never reused).</summary>
    public void StartAfter(ulong last)
    {
        long current;
        while ((current = Interlocked.Read(ref _next)) < (long)last && Interlocked.CompareExchange(ref _next, (long)last, current) != current)
        {
        }
    }

    public T Add(Func<ulong, T> create)
    {
        var id = (ulong)Interlocked.Increment(ref _next);
        var handle = create(id);
        _open[id] = handle;
        return handle;
    }

    public T? Find(ulong id) => id != 0 && _open.TryGetValue(id, out var handle) ? handle : null;

    public T? Remove(ulong id) => _open.TryRemove(id, out var handle) ? handle : null;
}
