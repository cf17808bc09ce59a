using System.Collections.Concurrent;
using System.Text;
using GrainFs.Client;
using Microsoft.Extensions.Logging;

namespace GrainFs.Fuse;

/// <summary>How a mount presents GrainFS to the kernel.</summary>
public sealed class FuseOptions
{
    /// <summary>The GrainFS path shown at the mount point.</summary>
    public string Root { get; set; } = FsPath.Root;

    /// <summary>How long the kernel may trust a name → inode answer.</summary>
    public TimeSpan EntryTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long the kernel may trust attributes.</summary>
    public TimeSpan AttrTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long the kernel may remember that a name does not exist.</summary>
    public TimeSpan NegativeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Every operation answers within this time; after it the caller gets EIO.</summary>
    public TimeSpan OperationTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The uid every entry reports (null: the mount's owner option, else the mounting user).</summary>
    public uint? Uid { get; set; }

    /// <summary>The gid every entry reports.</summary>
    public uint? Gid { get; set; }

    /// <summary>Permission bits applied to every entry (directories also get x where r is set), or null.</summary>
    public int? Mode { get; set; }

    /// <summary>Let other users (trainers running as other accounts) use the mount.</summary>
    public bool AllowOther { get; set; }

    /// <summary>Largest read request the kernel sends, and its read-ahead window.</summary>
    public int MaxRead { get; set; } = 1 << 20;

    /// <summary>Let the kernel skip open/release for files and directories when it supports it (fewer round trips per file).</summary>
    public bool NoOpen { get; set; } = true;
}

/// <summary>
/// The FUSE adapter: thin. Each kernel request becomes one SDK call on the thread pool and one reply; file-system
/// outcomes map 1:1 to errno (FsStatus values are errno numbers). Inodes are handed out per path and forgotten
/// when the kernel forgets them. Every request is answered within <see cref="FuseOptions.OperationTimeout"/>.
/// </summary>
internal sealed partial class FuseFileSystem
{
    private const ulong RootIno = 1;
    private readonly GrainFsClient _client;
    private readonly FuseOptions _options;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<ulong, Node> _byIno = new();
    private readonly ConcurrentDictionary<string, Node> _byPath = new(StringComparer.Ordinal);
    private readonly ConcurrentBag<byte[]> _buffers = [];
    private readonly uint _uid;
    private readonly uint _gid;
    private long _nextIno = (long)RootIno + 1;
    private long _statfsTicks;
    private Native.StatVfs _statfs;

    public FuseFileSystem(GrainFsClient client, FuseOptions options, ILogger logger)
    {
        _client = client;
        _options = options;
        _logger = logger;
        _uid = options.Uid ?? Native.GetUid();
        _gid = options.Gid ?? Native.GetGid();
        var root = new Node(RootIno, options.Root) { Lookups = long.MaxValue / 2 };
        _byIno[RootIno] = root;
        _byPath[options.Root] = root;
    }

    /// <summary>Requests in flight, for a clean shutdown.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    private int _inFlight;

    private sealed class Node(ulong ino, string path)
    {
        public ulong Ino { get; } = ino;

        public string Path { get; } = path;

        public long Lookups;

        public FsEntry? Entry;

        public GrainFsFile? File;

        public FsEntry[]? Listing;
    }

    // ------------------------------------------------------------------ helpers

    private Node? NodeOf(ulong ino) => _byIno.TryGetValue(ino, out var node) ? node : null;

    private Node Remember(string path, FsEntry entry)
    {
        var node = _byPath.GetOrAdd(path, p =>
        {
            var created = new Node((ulong)Interlocked.Increment(ref _nextIno), p);
            _byIno[created.Ino] = created;
            return created;
        });
        if (node.Entry is { } old && (old.ETag != entry.ETag || old.Size != entry.Size))
        {
            // A new version of the file: its blocks have new keys, so reads must open the new version.
            node.File = null;
        }

        node.Entry = entry;
        return node;
    }

    private unsafe void FillStat(Native.Stat* stat, ulong ino, FsEntry entry)
    {
        *stat = default;
        stat->Ino = ino;
        stat->Uid = _uid;
        stat->Gid = _gid;
        var permissions = _options.Mode ?? ((entry.Mode & 0xFFF) != 0 ? entry.Mode & 0xFFF : entry.IsDirectory ? 0x1ED : 0x1A4);
        if (entry.IsDirectory && _options.Mode is { } forced)
        {
            // r on a directory is useless without x: directories get x wherever r is set.
            permissions = forced | ((forced & 0x124) >> 2);
        }

        stat->Mode = (uint)((entry.IsDirectory ? 0x4000 : 0x8000) | permissions);
        stat->Nlink = entry.IsDirectory ? 2UL : 1UL;
        stat->Size = entry.Size;
        stat->Blksize = 128 * 1024;
        stat->Blocks = (entry.Size + 511) / 512;
        var seconds = new DateTimeOffset(entry.MtimeUtc).ToUnixTimeSeconds();
        var nanos = (entry.MtimeUtc.Ticks % TimeSpan.TicksPerSecond) * 100;
        stat->MtimeSec = stat->AtimeSec = stat->CtimeSec = seconds;
        stat->MtimeNsec = stat->AtimeNsec = stat->CtimeNsec = nanos;
    }

    private unsafe void FillEntry(Native.EntryParam* e, Node node)
    {
        *e = default;
        e->Ino = node.Ino;
        e->AttrTimeout = _options.AttrTimeout.TotalSeconds;
        e->EntryTimeout = _options.EntryTimeout.TotalSeconds;
        FillStat(&e->Attr, node.Ino, node.Entry!);
    }

    private byte[] RentBuffer(int size)
    {
        if (size <= _options.MaxRead && _buffers.TryTake(out var buffer))
        {
            return buffer;
        }

        return GC.AllocateUninitializedArray<byte>(Math.Max(size, _options.MaxRead), pinned: true);
    }

    private void ReturnBuffer(byte[] buffer)
    {
        if (buffer.Length == _options.MaxRead && _buffers.Count < 64)
        {
            _buffers.Add(buffer);
        }
    }

    /// <summary>
    /// Runs a request's work on the thread pool and guarantees exactly one reply: the work's own, or EIO when the
    /// deadline passes first (logged with the path), so no caller is left in uninterruptible sleep.
    /// </summary>
    private void Dispatch(IntPtr req, string what, Func<Request, CancellationToken, ValueTask> work)
    {
        Interlocked.Increment(ref _inFlight);
        var request = new Request(req);
        _ = Task.Run(async () =>
        {
            // One timer: it cancels the work and, should the work not stop, ends the wait for it.
            using var deadline = new CancellationTokenSource(_options.OperationTimeout);
            try
            {
                await work(request, deadline.Token).AsTask().WaitAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested)
            {
                LogDeadline(_logger, what, _options.OperationTimeout.TotalSeconds);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                LogFailed(_logger, what, e.Message);
            }
            finally
            {
                // EIO unless the work has replied.
                request.Error((int)FsStatus.IoError);
                Interlocked.Decrement(ref _inFlight);
            }
        });
    }

    /// <summary>One kernel request: the first reply wins, later ones are dropped.</summary>
    private sealed class Request(IntPtr req)
    {
        private int _replied;

        public IntPtr Handle => req;

        public bool Claim() => Interlocked.Exchange(ref _replied, 1) == 0;

        public void Error(int errno)
        {
            if (Claim())
            {
                Native.ReplyErr(req, errno);
            }
        }
    }

    private void Fail(Request request, FsStatus status, string? message, string path)
    {
        if (status == FsStatus.IoError || status == FsStatus.TimedOut)
        {
            LogIoError(_logger, path, message ?? status.Describe());
        }

        request.Error(status == FsStatus.TimedOut ? (int)FsStatus.IoError : status == FsStatus.Stale ? (int)FsStatus.NotFound : (int)status);
    }

    // ------------------------------------------------------------------ operations

    public unsafe void Init(IntPtr conn)
    {
        var capable = *(uint*)(conn + Native.ConnCapable);
        var want = (uint*)(conn + Native.ConnWant);
        var wanted = Native.CapAsyncRead | Native.CapAutoInvalData | Native.CapReaddirplus | Native.CapReaddirplusAuto | Native.CapParallelDirops;
        *want |= wanted & capable;
        // Must equal the max_read mount option, or libfuse refuses the connection.
        *(uint*)(conn + Native.ConnMaxRead) = (uint)_options.MaxRead;
        *(uint*)(conn + Native.ConnMaxReadahead) = (uint)_options.MaxRead;
        *(uint*)(conn + Native.ConnMaxBackground) = 64;
        LogInit(_logger, capable, *want);
    }

    public void Lookup(IntPtr req, ulong parent, string name)
    {
        var parentNode = NodeOf(parent);
        if (parentNode is null)
        {
            Native.ReplyErr(req, (int)FsStatus.Stale);
            return;
        }

        var path = FsPath.Combine(parentNode.Path, name);
        Dispatch(req, path, async (request, ct) =>
        {
            var stat = await _client.StatAsync(path, ct).ConfigureAwait(false);
            if (stat.Status is FsStatus.NotFound)
            {
                // A negative entry: the kernel remembers the miss for the negative timeout.
                ReplyNegative(request);
                return;
            }

            if (!stat.IsOk)
            {
                Fail(request, stat.Status, stat.Message, path);
                return;
            }

            var node = Remember(path, stat.Value!);
            Interlocked.Increment(ref node.Lookups);
            if (!ReplyEntry(request, node))
            {
                // The deadline answered first: the kernel never learnt of this lookup.
                Forget(node.Ino, 1);
            }
        });
    }

    public void Forget(ulong ino, ulong nlookup)
    {
        if (ino == RootIno || !_byIno.TryGetValue(ino, out var node))
        {
            return;
        }

        if (Interlocked.Add(ref node.Lookups, -(long)nlookup) <= 0)
        {
            _byIno.TryRemove(ino, out _);
            _byPath.TryRemove(new KeyValuePair<string, Node>(node.Path, node));
        }
    }

    public void GetAttr(IntPtr req, ulong ino)
    {
        var node = NodeOf(ino);
        if (node is null)
        {
            Native.ReplyErr(req, (int)FsStatus.Stale);
            return;
        }

        Dispatch(req, node.Path, async (request, ct) =>
        {
            var stat = await _client.StatAsync(node.Path, ct).ConfigureAwait(false);
            if (!stat.IsOk)
            {
                Fail(request, stat.Status, stat.Message, node.Path);
                return;
            }

            Remember(node.Path, stat.Value!);
            ReplyAttr(request, node.Ino, stat.Value!);
        });
    }

    public unsafe void Open(IntPtr req, ulong ino, IntPtr fileInfo, bool directory)
    {
        var flags = *(int*)(fileInfo + Native.FileInfoFlags);
        if ((flags & 3) != 0)
        {
            // O_WRONLY or O_RDWR: writes come with the write issue.
            Native.ReplyErr(req, (int)FsStatus.ReadOnly);
            return;
        }

        if (_options.NoOpen)
        {
            // Tells a kernel that supports it to stop sending open/release (and opendir/releasedir): one round trip
            // less per file, and the page cache is kept. Reads do not need a handle.
            Native.ReplyErr(req, Native.ENOSYS);
            return;
        }

        *(uint*)(fileInfo + Native.FileInfoBits) |= directory ? Native.FileInfoCacheReaddir : Native.FileInfoKeepCache;
        Native.ReplyOpen(req, fileInfo);
    }

    public void Release(IntPtr req) => Native.ReplyErr(req, 0);

    public void Read(IntPtr req, ulong ino, nuint size, long offset)
    {
        var node = NodeOf(ino);
        if (node is null)
        {
            Native.ReplyErr(req, (int)FsStatus.Stale);
            return;
        }

        Dispatch(req, node.Path, async (request, ct) =>
        {
            var file = node.File;
            if (file is null)
            {
                var opened = await _client.OpenAsync(node.Path, ct).ConfigureAwait(false);
                if (!opened.IsOk)
                {
                    Fail(request, opened.Status, opened.Message, node.Path);
                    return;
                }

                node.File = file = opened.Value!;
            }

            var length = (int)Math.Min((long)size, Math.Max(0, file.Length - offset));
            var buffer = RentBuffer(length);
            try
            {
                var read = length == 0 ? FsResult<int>.Ok(0) : await file.ReadAsync(offset, buffer.AsMemory(0, length), ct).ConfigureAwait(false);
                if (!read.IsOk)
                {
                    Fail(request, read.Status, read.Message, node.Path);
                    return;
                }

                ReplyBuffer(request, buffer, read.Value);
            }
            finally
            {
                ReturnBuffer(buffer);
            }
        });
    }

    public void ReadDir(IntPtr req, ulong ino, nuint size, long offset, bool plus)
    {
        var node = NodeOf(ino);
        if (node is null)
        {
            Native.ReplyErr(req, (int)FsStatus.Stale);
            return;
        }

        Dispatch(req, node.Path, async (request, ct) =>
        {
            var listing = node.Listing;
            if (offset == 0 || listing is null)
            {
                var entries = new List<FsEntry>();
                string? cursor = null;
                do
                {
                    var page = await _client.ListPageAsync(node.Path, cursor, 0, ct).ConfigureAwait(false);
                    if (!page.IsOk)
                    {
                        Fail(request, page.Status, page.Message, node.Path);
                        return;
                    }

                    entries.AddRange(page.Value!.Entries);
                    cursor = page.Value.NextCursor;
                }
                while (cursor is not null);

                node.Listing = listing = [.. entries];
            }

            var buffer = RentBuffer((int)size);
            try
            {
                var used = FillDirectory(request, node, listing, buffer, (int)size, offset, plus);
                ReplyBuffer(request, buffer, used);
            }
            finally
            {
                ReturnBuffer(buffer);
            }
        });
    }

    /// <summary>
    /// Packs directory entries from <paramref name="offset"/> into the reply buffer; returns the bytes used. Position 0
    /// is ".", 1 is "..", and 2 onwards the listing; each entry carries the position after it as its offset.
    /// </summary>
    private unsafe int FillDirectory(Request request, Node node, FsEntry[] listing, byte[] buffer, int size, long offset, bool plus)
    {
        const int Dots = 2;
        nuint used = 0;
        var space = (nuint)size;
        Span<byte> name = stackalloc byte[1024];
        fixed (byte* data = buffer)
        fixed (byte* namePtr = name)
        {
            for (var position = (int)offset; position < listing.Length + Dots; position++)
            {
                nuint added;
                if (position < Dots)
                {
                    name[0] = (byte)'.';
                    name[1] = position == 0 ? (byte)0 : (byte)'.';
                    name[2] = 0;
                    added = AddDot(request, data + used, space - used, namePtr, position == 0 ? node.Ino : ParentIno(node), position + 1, plus);
                }
                else
                {
                    var entry = listing[position - Dots];
                    var count = Encoding.UTF8.GetBytes(entry.Name, name);
                    name[count] = 0;
                    if (plus)
                    {
                        var child = Remember(FsPath.Combine(node.Path, entry.Name), entry);
                        Native.EntryParam e;
                        FillEntry(&e, child);
                        added = Native.AddDirentryPlus(request.Handle, data + used, space - used, namePtr, &e, position + 1);
                        if (added <= space - used)
                        {
                            // Every entry returned by readdirplus counts as a lookup (but "." and "..").
                            Interlocked.Increment(ref child.Lookups);
                        }
                    }
                    else
                    {
                        Native.Stat stat;
                        var known = _byPath.TryGetValue(FsPath.Combine(node.Path, entry.Name), out var existing) ? existing.Ino : ulong.MaxValue;
                        FillStat(&stat, known, entry);
                        added = Native.AddDirentry(request.Handle, data + used, space - used, namePtr, &stat, position + 1);
                    }
                }

                if (added > space - used)
                {
                    break;
                }

                used += added;
            }
        }

        return (int)used;
    }

    /// <summary>
    /// Adds "." or "..": only the inode number and the directory type matter. In readdirplus the kernel links neither
    /// (node id 0, and it skips the two names), so they add no lookup.
    /// </summary>
    private static unsafe nuint AddDot(Request request, byte* buffer, nuint space, byte* name, ulong ino, long nextOffset, bool plus)
    {
        if (plus)
        {
            Native.EntryParam e = default;
            e.Attr.Ino = ino;
            e.Attr.Mode = 0x4000 | 0x1ED;
            return Native.AddDirentryPlus(request.Handle, buffer, space, name, &e, nextOffset);
        }

        Native.Stat stat = default;
        stat.Ino = ino;
        stat.Mode = 0x4000 | 0x1ED;
        return Native.AddDirentry(request.Handle, buffer, space, name, &stat, nextOffset);
    }

    /// <summary>The inode of a node's parent directory, or the root's when the parent is not known (or is above the mount).</summary>
    private ulong ParentIno(Node node)
    {
        var slash = node.Path.LastIndexOf('/');
        var parent = slash <= 0 ? FsPath.Root : node.Path[..slash];
        return node.Ino != RootIno && _byPath.TryGetValue(parent, out var known) ? known.Ino : RootIno;
    }

    public void StatFs(IntPtr req)
    {
        if (Environment.TickCount64 - Interlocked.Read(ref _statfsTicks) < 5000)
        {
            ReplyStatfs(new Request(req), _statfs);
            return;
        }

        Dispatch(req, "statfs", async (request, ct) =>
        {
            var report = await _client.GetReportAsync(ct).ConfigureAwait(false);
            Native.StatVfs stat = default;
            stat.Bsize = stat.Frsize = 4096;
            stat.Namemax = FsPath.MaxNameBytes;
            stat.Flag = 1; // ST_RDONLY
            if (report.IsOk && report.Value is { } workers)
            {
                var capacity = workers.Sum(w => w.Tiers.Sum(t => t.Capacity));
                var used = workers.Sum(w => w.Tiers.Sum(t => t.Used));
                stat.Blocks = (ulong)(capacity / 4096);
                stat.Bfree = stat.Bavail = (ulong)Math.Max(0, (capacity - used) / 4096);
                stat.Files = stat.Ffree = stat.Favail = 1UL << 40;
            }

            _statfs = stat;
            Interlocked.Exchange(ref _statfsTicks, Environment.TickCount64);
            ReplyStatfs(request, stat);
        });
    }

    // ------------------------------------------------------------------ replies (synchronous, so pointers stay on the stack)

    private unsafe void ReplyNegative(Request request)
    {
        if (request.Claim())
        {
            Native.EntryParam negative = default;
            negative.EntryTimeout = _options.NegativeTimeout.TotalSeconds;
            Native.ReplyEntry(request.Handle, &negative);
        }
    }

    private unsafe bool ReplyEntry(Request request, Node node)
    {
        if (!request.Claim())
        {
            return false;
        }

        Native.EntryParam entry;
        FillEntry(&entry, node);
        Native.ReplyEntry(request.Handle, &entry);
        return true;
    }

    private unsafe void ReplyAttr(Request request, ulong ino, FsEntry entry)
    {
        if (request.Claim())
        {
            Native.Stat attr;
            FillStat(&attr, ino, entry);
            Native.ReplyAttr(request.Handle, &attr, _options.AttrTimeout.TotalSeconds);
        }
    }

    private static unsafe void ReplyBuffer(Request request, byte[] buffer, int length)
    {
        if (request.Claim())
        {
            fixed (byte* data = buffer)
            {
                Native.ReplyBuf(request.Handle, data, (nuint)length);
            }
        }
    }

    private static unsafe void ReplyStatfs(Request request, Native.StatVfs stat)
    {
        if (request.Claim())
        {
            Native.ReplyStatfs(request.Handle, &stat);
        }
    }

    public void Access(IntPtr req, int mask)
    {
        // default_permissions makes the kernel check modes; only writes are ours to refuse.
        Native.ReplyErr(req, (mask & 2) != 0 ? (int)FsStatus.ReadOnly : 0);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "FUSE connection: kernel capabilities 0x{Capable:x}, wanted 0x{Want:x}")]
    private static partial void LogInit(ILogger logger, uint capable, uint want);

    [LoggerMessage(Level = LogLevel.Warning, Message = "EIO for {Path}: {Reason}")]
    private static partial void LogIoError(ILogger logger, string path, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "EIO for {Path}: no answer within {Seconds} s")]
    private static partial void LogDeadline(ILogger logger, string path, double seconds);

    [LoggerMessage(Level = LogLevel.Error, Message = "EIO for {Path}: {Reason}")]
    private static partial void LogFailed(ILogger logger, string path, string reason);
}
