using System.Text;

namespace GrainFs.Tests.Cluster;

/// <summary>One namespace operation of a model-based test, on paths relative to the mount ("a/b").</summary>
public abstract record NamespaceOp
{
    /// <summary>create, write all of <paramref name="Data"/> at offset 0, close (open(2) with O_CREAT, and O_EXCL when
    /// <paramref name="Exclusive"/>), with a write type (which the namespace must not show).</summary>
    public sealed record Write(string Path, byte[] Data, bool Exclusive, WriteType Type = WriteType.CacheThrough) : NamespaceOp
    {
        public override string ToString() =>
            $"write {Path} [{Convert.ToHexString(Data)}]{(Exclusive ? " exclusive" : string.Empty)}{(Type == WriteType.CacheThrough ? string.Empty : " " + Type.Name())}";
    }

    /// <summary>mkdir(2).</summary>
    public sealed record MakeDirectory(string Path) : NamespaceOp
    {
        public override string ToString() => $"mkdir {Path}";
    }

    /// <summary>rename(2), or renameat2(2) with RENAME_NOREPLACE.</summary>
    public sealed record Rename(string From, string To, bool NoReplace) : NamespaceOp
    {
        public override string ToString() => $"rename {From} {To}{(NoReplace ? " noreplace" : string.Empty)}";
    }

    /// <summary>unlink(2).</summary>
    public sealed record Unlink(string Path) : NamespaceOp
    {
        public override string ToString() => $"unlink {Path}";
    }

    /// <summary>rmdir(2).</summary>
    public sealed record RemoveDirectory(string Path) : NamespaceOp
    {
        public override string ToString() => $"rmdir {Path}";
    }
}

/// <summary>
/// The namespace of one mount as Linux would keep it: path → file bytes, or null for a directory; the mount root is
/// implicit. Each operation answers the errno rename(2), mkdir(2), unlink(2), rmdir(2) and open(2) give, checking in the
/// order the kernel does (path resolution first, then the names themselves), and changes the tree only when it succeeds.
/// </summary>
public sealed class NamespaceModel(bool directoryRenames)
{
    private readonly SortedDictionary<string, byte[]?> _entries = new(StringComparer.Ordinal);
    private readonly Dictionary<string, WriteType> _types = new(StringComparer.Ordinal);

    /// <summary>Every entry: path → bytes, null for a directory.</summary>
    public IReadOnlyDictionary<string, byte[]?> Entries => _entries;

    /// <summary>How each file was last written (which decides whether it reaches under-storage).</summary>
    public IReadOnlyDictionary<string, WriteType> WriteTypes => _types;

    public FsStatus Apply(NamespaceOp op) => op switch
    {
        NamespaceOp.Write w => Write(w.Path, w.Data, w.Exclusive, w.Type),
        NamespaceOp.MakeDirectory m => MakeDirectory(m.Path),
        NamespaceOp.Rename r => Rename(r.From, r.To, r.NoReplace),
        NamespaceOp.Unlink u => Remove(u.Path, directory: false),
        NamespaceOp.RemoveDirectory d => Remove(d.Path, directory: true),
        _ => throw new ArgumentException($"unknown operation {op}", nameof(op)),
    };

    /// <summary>What stat(2) of <paramref name="path"/> gives: the status and, when it exists, its kind and a file's size.</summary>
    public (FsStatus Status, bool IsDirectory, long Size) Stat(string path)
    {
        var parent = ResolveParent(path);
        if (parent != FsStatus.Ok)
        {
            return (parent, false, 0);
        }

        return _entries.TryGetValue(path, out var data) ? (FsStatus.Ok, data is null, data?.Length ?? 0) : (FsStatus.NotFound, false, 0);
    }

    /// <summary>Walks the directories above <paramref name="path"/>: ENOENT at a missing one, ENOTDIR at a file.</summary>
    private FsStatus ResolveParent(string path)
    {
        for (var slash = path.IndexOf('/', StringComparison.Ordinal); slash >= 0; slash = path.IndexOf('/', slash + 1))
        {
            if (!_entries.TryGetValue(path[..slash], out var data))
            {
                return FsStatus.NotFound;
            }

            if (data is not null)
            {
                return FsStatus.NotADirectory;
            }
        }

        return FsStatus.Ok;
    }

    private bool HasChildren(string directory) => _entries.Keys.Any(k => k.StartsWith(directory + "/", StringComparison.Ordinal));

    private static bool IsBelow(string path, string ancestor) => path.StartsWith(ancestor + "/", StringComparison.Ordinal);

    private FsStatus Write(string path, byte[] data, bool exclusive, WriteType type)
    {
        var parent = ResolveParent(path);
        if (parent != FsStatus.Ok)
        {
            return parent;
        }

        if (_entries.TryGetValue(path, out var existing))
        {
            if (exclusive)
            {
                return FsStatus.Exists;
            }

            if (existing is null)
            {
                return FsStatus.IsADirectory;
            }
        }

        _entries[path] = data;
        _types[path] = type;
        return FsStatus.Ok;
    }

    private FsStatus MakeDirectory(string path)
    {
        var parent = ResolveParent(path);
        if (parent != FsStatus.Ok)
        {
            return parent;
        }

        if (_entries.ContainsKey(path))
        {
            return FsStatus.Exists;
        }

        _entries[path] = null;
        return FsStatus.Ok;
    }

    private FsStatus Remove(string path, bool directory)
    {
        var parent = ResolveParent(path);
        if (parent != FsStatus.Ok)
        {
            return parent;
        }

        if (!_entries.TryGetValue(path, out var existing))
        {
            return FsStatus.NotFound;
        }

        if (directory != (existing is null))
        {
            return directory ? FsStatus.NotADirectory : FsStatus.IsADirectory;
        }

        if (directory && HasChildren(path))
        {
            return FsStatus.NotEmpty;
        }

        _entries.Remove(path);
        _types.Remove(path);
        return FsStatus.Ok;
    }

    // The order of fs/namei.c do_renameat2 and vfs_rename: both parents, the source, RENAME_NOREPLACE, the source as an
    // ancestor of the target (EINVAL), the target as an ancestor of the source (ENOTEMPTY), the same name (nothing to do),
    // then the kinds and the emptiness of a replaced directory.
    private FsStatus Rename(string from, string to, bool noReplace)
    {
        var fromParent = ResolveParent(from);
        if (fromParent != FsStatus.Ok)
        {
            return fromParent;
        }

        var toParent = ResolveParent(to);
        if (toParent != FsStatus.Ok)
        {
            return toParent;
        }

        if (!_entries.TryGetValue(from, out var source))
        {
            return FsStatus.NotFound;
        }

        var targetExists = _entries.TryGetValue(to, out var target);
        if (noReplace && targetExists)
        {
            return FsStatus.Exists;
        }

        if (IsBelow(to, from))
        {
            return FsStatus.InvalidArgument;
        }

        if (IsBelow(from, to))
        {
            return FsStatus.NotEmpty;
        }

        if (from == to)
        {
            return FsStatus.Ok;
        }

        var sourceIsDirectory = source is null;
        if (targetExists)
        {
            if (sourceIsDirectory && target is not null)
            {
                return FsStatus.NotADirectory;
            }

            if (!sourceIsDirectory && target is null)
            {
                return FsStatus.IsADirectory;
            }

            if (target is null && HasChildren(to))
            {
                return FsStatus.NotEmpty;
            }
        }

        if (sourceIsDirectory && !directoryRenames)
        {
            return FsStatus.NotSupported;
        }

        _entries.Remove(to);
        _types.Remove(to);
        foreach (var path in _entries.Keys.Where(k => k == from || IsBelow(k, from)).ToList())
        {
            var moved = to + path[from.Length..];
            _entries[moved] = _entries[path];
            _entries.Remove(path);
            if (_types.Remove(path, out var type))
            {
                _types[moved] = type;
            }
        }

        return FsStatus.Ok;
    }

    public override string ToString()
    {
        var text = new StringBuilder();
        foreach (var (path, data) in _entries)
        {
            text.Append(path).Append(data is null ? "/" : $" [{Convert.ToHexString(data)}]").Append('\n');
        }

        return text.Length == 0 ? "(empty)" : text.ToString();
    }
}
