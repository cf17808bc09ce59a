using System.Collections.Concurrent;
using GrainFs.Client;

namespace GrainFs.Vfs;

/// <summary>
/// An inode the front end knows: a number of its own (not derived from the path, so a rename keeps it), its place
/// (parent and name), the kernel's lookup count, and the last attributes seen. A file inode also keeps the reader of
/// its current version for reads that come without a handle.
/// </summary>
public sealed class Inode
{
    internal Inode(ulong ino, Inode? parent, string name, FsEntry entry, string path, long pathGeneration)
    {
        Ino = ino;
        Parent = parent;
        Name = name;
        Entry = entry;
        CachedPath = path;
        PathGeneration = pathGeneration;
    }

    /// <summary>The inode number.</summary>
    public ulong Ino { get; }

    /// <summary>The directory holding it (null for the root).</summary>
    public Inode? Parent { get; internal set; }

    /// <summary>Its name in <see cref="Parent"/>.</summary>
    public string Name { get; internal set; }

    /// <summary>The last attributes seen.</summary>
    public FsEntry Entry { get; internal set; }

    /// <summary>Lookups the front end holds (the kernel forgets them in batches).</summary>
    public long Lookups => Interlocked.Read(ref LookupCount);

    internal long LookupCount;

    internal string CachedPath;

    internal long PathGeneration;

    /// <summary>The reader of the current version, for reads without a handle; dropped when the version changes.</summary>
    internal GrainFsFile? Reader;

    /// <summary>Children the front end knows, by name, made with the first one (most inodes are files); guarded by locking this inode.</summary>
    internal Dictionary<string, Inode>? Children;

    /// <summary>Its name now means another file or none (unlinked, renamed over); it lives while the kernel holds it.</summary>
    internal bool Detached;

    /// <summary>
    /// Taken over from the journal of an earlier serving process, whose lookup counts are not known: the kernel's next
    /// forget (sent when it evicts the inode, with every lookup it counted) drops it.
    /// </summary>
    internal bool Restored;
}

/// <summary>
/// The inodes a front end holds: numbered on first lookup, counted by lookups and dropped when the count returns to 0
/// (FUSE forget), so memory follows what the kernel keeps, not what was ever listed. The root is inode 1 and is never
/// dropped. A child is found by (parent, name) under the parent's lock, so a lookup and a forget of the same name never
/// race into a lost or doubled inode.
/// </summary>
public sealed class InodeTable
{
    /// <summary>The root's inode number.</summary>
    public const ulong RootIno = 1;

    private readonly ConcurrentDictionary<ulong, Inode> _byIno = new();
    private long _next = (long)RootIno;
    private long _pathGeneration;

    /// <summary>Creates the table with its root at <paramref name="rootPath"/>.</summary>
    public InodeTable(string rootPath)
    {
        Root = new Inode(RootIno, null, string.Empty, new FsEntry("/", FsKind.Directory, 0, DateTime.UnixEpoch, string.Empty, 0x1ED), rootPath, 0)
        {
            LookupCount = long.MaxValue / 2,
        };
        _byIno[RootIno] = Root;
    }

    /// <summary>The root.</summary>
    public Inode Root { get; }

    /// <summary>The journal the numbering is kept in (<see cref="Restore"/>), or null.</summary>
    public InodeJournal? Journal { get; private set; }

    /// <summary>
    /// Takes over the inodes in the journal at <paramref name="journalPath"/> (left by an earlier process serving the
    /// same kernel connection: the kernel still uses those numbers), then keeps the numbering in it from now on. An
    /// inode whose parent is not in the journal cannot be placed and is left out (the kernel gets ESTALE for it).
    /// Returns the inodes taken over.
    /// </summary>
    public int Restore(string journalPath)
    {
        if (Journal is not null)
        {
            throw new InvalidOperationException("the inode table already keeps a journal");
        }

        var entries = InodeJournal.Read(journalPath);
        var byParent = entries.Values.ToLookup(e => e.Parent);
        var pending = new Queue<Inode>([Root]);
        var restored = 0;
        var highest = (long)RootIno;
        while (pending.TryDequeue(out var parent))
        {
            foreach (var entry in byParent[parent.Ino])
            {
                if (entry.Ino == RootIno || _byIno.ContainsKey(entry.Ino))
                {
                    continue;
                }

                var kind = entry.Directory ? FsKind.Directory : FsKind.File;
                var inode = new Inode(entry.Ino, parent, entry.Name, new FsEntry(entry.Name, kind, 0, DateTime.UnixEpoch, string.Empty, 0), string.Empty, -1)
                {
                    Restored = true,
                    Detached = entry.Detached,
                };
                if (!entry.Detached)
                {
                    (parent.Children ??= new Dictionary<string, Inode>(StringComparer.Ordinal))[entry.Name] = inode;
                }

                _byIno[entry.Ino] = inode;
                highest = Math.Max(highest, (long)entry.Ino);
                restored++;
                pending.Enqueue(inode);
            }
        }

        Interlocked.Exchange(ref _next, Math.Max(Interlocked.Read(ref _next), highest));
        Journal = InodeJournal.Create(journalPath, Snapshot);
        return restored;
    }

    /// <summary>The inodes held (the root left out), read without locks for the journal.</summary>
    private IEnumerable<InodeJournal.Entry> Snapshot()
    {
        foreach (var inode in _byIno.Values)
        {
            if (inode.Parent is { } parent)
            {
                yield return new InodeJournal.Entry(inode.Ino, parent.Ino, inode.Name, inode.Entry.IsDirectory, inode.Detached);
            }
        }
    }

    /// <summary>Inodes held (the root included).</summary>
    public int Count => _byIno.Count;

    /// <summary>The inode of a number, or null when the front end forgot it (ESTALE).</summary>
    public Inode? Find(ulong ino) => _byIno.TryGetValue(ino, out var inode) ? inode : null;

    /// <summary>The GrainFS path of an inode (recomputed from its parents after a rename anywhere above it).</summary>
    public string PathOf(Inode inode)
    {
        var generation = Interlocked.Read(ref _pathGeneration);
        if (inode.PathGeneration == generation || inode.Parent is null)
        {
            return inode.CachedPath;
        }

        var path = FsPath.Combine(PathOf(inode.Parent), inode.Name);
        inode.CachedPath = path;
        inode.PathGeneration = generation;
        return path;
    }

    /// <summary>The known inode of a full GrainFS path and its parent (null where the kernel holds none), without counting lookups.</summary>
    public (Inode? Parent, Inode? Inode, string Name) FindPath(string path)
    {
        var rootPath = PathOf(Root);
        if (!FsPath.IsSameOrBelow(path, rootPath) || path == rootPath)
        {
            return (null, null, string.Empty);
        }

        var relative = rootPath == FsPath.Root ? path[1..] : path[(rootPath.Length + 1)..];
        Inode? parent = null;
        var current = Root;
        var names = relative.Split('/');
        for (var i = 0; i < names.Length; i++)
        {
            parent = current;
            var child = Child(current, names[i]);
            if (child is null)
            {
                return (i == names.Length - 1 ? parent : null, null, names[^1]);
            }

            current = child;
        }

        return (parent, current, names[^1]);
    }

    /// <summary>The known child of a directory, without counting a lookup.</summary>
    public Inode? Child(Inode parent, string name)
    {
        lock (parent)
        {
            return parent.Children?.GetValueOrDefault(name);
        }
    }

    /// <summary>
    /// The child <paramref name="name"/> of <paramref name="parent"/> with attributes <paramref name="entry"/>, numbered when
    /// new, its lookup count raised by <paramref name="lookups"/>. A new version of a file (ETag or size changed) drops
    /// the reader of the old one.
    /// </summary>
    public Inode Remember(Inode parent, string name, FsEntry entry, long lookups)
    {
        lock (parent)
        {
            parent.Children ??= new Dictionary<string, Inode>(StringComparer.Ordinal);
            if (!parent.Children.TryGetValue(name, out var inode))
            {
                var ino = (ulong)Interlocked.Increment(ref _next);
                inode = new Inode(ino, parent, name, entry, FsPath.Combine(PathOf(parent), name), Interlocked.Read(ref _pathGeneration));
                parent.Children[name] = inode;
                _byIno[ino] = inode;
                Journal?.Numbered(ino, parent.Ino, name, entry.IsDirectory);
            }
            else
            {
                Refresh(inode, entry);
            }

            inode.LookupCount += lookups;
            return inode;
        }
    }

    /// <summary>Records new attributes of an inode.</summary>
    public static void Refresh(Inode inode, FsEntry entry)
    {
        var old = inode.Entry;
        if (old.ETag != entry.ETag || old.Size != entry.Size || old.Kind != entry.Kind)
        {
            // A new version of the file: its blocks have new keys, so reads must open the new version.
            inode.Reader = null;
        }

        inode.Entry = entry;
    }

    /// <summary>Drops <paramref name="count"/> lookups; the inode goes when none is left (the root never does).</summary>
    public void Forget(ulong ino, ulong count)
    {
        if (ino == RootIno || Find(ino) is not { Parent: { } parent } inode)
        {
            return;
        }

        lock (parent)
        {
            inode.LookupCount -= (long)count;
            if (inode.LookupCount > 0 && !inode.Restored)
            {
                return;
            }

            if (parent.Children is { } children && children.TryGetValue(inode.Name, out var current) && ReferenceEquals(current, inode))
            {
                children.Remove(inode.Name);
            }

            if (_byIno.TryRemove(new KeyValuePair<ulong, Inode>(ino, inode)))
            {
                Journal?.Dropped(ino);
            }
        }
    }

    /// <summary>The name <paramref name="name"/> of <paramref name="parent"/> is gone (unlink, rmdir, a rename over it): a later lookup makes a new inode;
    /// the old one lives until the kernel forgets it.</summary>
    public void Detach(Inode parent, string name)
    {
        lock (parent)
        {
            if (parent.Children is { } children && children.Remove(name, out var inode))
            {
                inode.Detached = true;
                Journal?.Detached(inode.Ino);
            }
        }
    }

    /// <summary>Moves an inode to a new parent and name (a rename): its number stays, and every path below it follows.</summary>
    public void Move(Inode inode, Inode newParent, string newName)
    {
        var oldParent = inode.Parent ?? throw new InvalidOperationException("the root cannot move");
        var first = oldParent.Ino <= newParent.Ino ? oldParent : newParent;
        var second = ReferenceEquals(first, oldParent) ? newParent : oldParent;
        lock (first)
        {
            lock (second)
            {
                if (oldParent.Children is { } children && children.TryGetValue(inode.Name, out var current) && ReferenceEquals(current, inode))
                {
                    children.Remove(inode.Name);
                }

                inode.Parent = newParent;
                inode.Name = newName;
                inode.Detached = false;
                (newParent.Children ??= new Dictionary<string, Inode>(StringComparer.Ordinal))[newName] = inode;
                Interlocked.Increment(ref _pathGeneration);
                Journal?.Moved(inode.Ino, newParent.Ino, newName, inode.Entry.IsDirectory);
            }
        }
    }
}
