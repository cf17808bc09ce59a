using System.Buffers;
using System.Text;
using GrainFs.Client;
using GrainFs.Vfs;
using Microsoft.Win32.SafeHandles;
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

    /// <summary>The uid every entry reports (null: the mounting user).</summary>
    public uint? Uid { get; set; }

    /// <summary>The gid every entry reports (null: the mounting user's group).</summary>
    public uint? Gid { get; set; }

    /// <summary>Permission bits applied to every entry (directories also get x where r is set), or null.</summary>
    public int? Mode { get; set; }

    /// <summary>Let other users (trainers running as other accounts) use the mount.</summary>
    public bool AllowOther { get; set; }

    /// <summary>Largest read request the kernel sends.</summary>
    public int MaxRead { get; set; } = 1 << 20;

    /// <summary>
    /// The kernel's read-ahead window for a sequential reader of this mount (its backing device's read_ahead_kb), set
    /// once the connection is up: a reader's next requests are already in flight to the daemon while it copies the
    /// last. The kernel starts every FUSE mount at 128 KiB; changing it needs root (other users keep 128 KiB, logged).
    /// </summary>
    public int KernelReadAhead { get; set; } = 4 << 20;

    /// <summary>Mount read-only: the kernel refuses every change (EROFS) before it reaches the daemon, and the VFS refuses any that does.</summary>
    public bool ReadOnly { get; set; }

    /// <summary>
    /// On a read-only mount, let the kernel skip open/release for files when it supports it (one round trip less per
    /// file). Not on a read-write mount: once the kernel skips open it skips it for every file, so a file opened for
    /// writing would get no handle and no release.
    /// </summary>
    public bool NoOpen { get; set; } = true;

    /// <summary>Whether opens are answered ENOSYS (<see cref="NoOpen"/> on a read-only mount).</summary>
    internal bool SkipsOpen => NoOpen && ReadOnly;

    /// <summary>The VFS options these FUSE options imply.</summary>
    public VfsOptions ToVfsOptions() => new()
    {
        Root = Root,
        Uid = Uid ?? Native.GetUid(),
        Gid = Gid ?? Native.GetGid(),
        Mode = Mode,
        ReadOnly = ReadOnly,
    };
}

/// <summary>
/// The FUSE adapter, thin: each kernel request decodes its arguments, makes one <see cref="VirtualFileSystem"/> call on
/// the thread pool and replies; the VFS owns inodes, handles, listings and policy (read-only included), and its
/// statuses are the errno values replied. Every request is answered within <see cref="FuseOptions.OperationTimeout"/>.
/// Whatever libfuse passes by pointer (names, the written bytes, struct stat, fuse_file_info) lives only for the
/// callback, so it is decoded or copied before the work is dispatched.
/// </summary>
internal sealed partial class FuseFileSystem(VirtualFileSystem vfs, FuseOptions options, ILogger logger, TimeProvider time)
{
    /// <summary>Largest write request: 1 MiB, libfuse's request buffer (the kernel's max_pages follows from it).</summary>
    private const uint MaxWrite = 1 << 20;

    private int _inFlight;
    private int _connectedRan;

    /// <summary>Requests in flight, for a clean shutdown.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    // ------------------------------------------------------------------ dispatch

    /// <summary>
    /// Runs a request's work on the thread pool and guarantees exactly one reply: the work's own, or EIO when the
    /// deadline passes first (logged with what was asked), so no caller is left in uninterruptible sleep.
    /// </summary>
    /// <summary>Runs once, on the first request after the connection's INIT (whose reply the kernel has then applied).</summary>
    internal Action? Connected { get; set; }

    private void Dispatch<TState>(IntPtr req, TState state, Func<Request, TState, CancellationToken, ValueTask> work)
    {
        if (Connected is not null && Interlocked.Exchange(ref _connectedRan, 1) == 0)
        {
            Connected();
        }

        Interlocked.Increment(ref _inFlight);
        var request = new Request(req);
        _ = Task.Run(async () =>
        {
            // One timer: it cancels the work and, should the work not stop, ends the wait for it.
            using var deadline = new CancellationTokenSource(options.OperationTimeout);
            try
            {
                await work(request, state, deadline.Token).AsTask().WaitAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested)
            {
                LogDeadline(logger, Describe(state), options.OperationTimeout.TotalSeconds);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                LogFailed(logger, Describe(state), e.Message);
            }
            finally
            {
                // EIO unless the work has replied.
                request.Error((int)FsStatus.IoError);
                Interlocked.Decrement(ref _inFlight);
            }
        });
    }

    private static string Describe<TState>(TState state) => state?.ToString() ?? string.Empty;

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

    private static void Reply(Request request, FsStatus status) => request.Error((int)status);

    // ------------------------------------------------------------------ operations

    public unsafe void Init(IntPtr conn)
    {
        var capable = *(uint*)(conn + Native.ConnCapable);
        var want = (uint*)(conn + Native.ConnWant);
        // O_TRUNC arrives with the open (one request, not open + setattr).
        // Splice: a read whose bytes are in a checked block file on this host is answered from the file by the kernel
        // (tier page cache → pipe → FUSE), never copied through this process.
        var wanted = Native.CapAsyncRead | Native.CapAutoInvalData | Native.CapReaddirplus | Native.CapReaddirplusAuto | Native.CapParallelDirops | Native.CapAtomicOTrunc
            | Native.CapSpliceWrite | Native.CapSpliceMove;
        *want |= wanted & capable;
        // No writeback cache: close-to-open needs every byte written to reach the daemon before close(2)'s flush, not
        // when the kernel gets round to its dirty pages.
        *want &= ~Native.CapWritebackCache;
        // Must equal the max_read mount option, or libfuse refuses the connection.
        *(uint*)(conn + Native.ConnMaxRead) = (uint)options.MaxRead;
        // The kernel keeps the smaller of this and its device's window (raised once the connection is up: see KernelReadAhead).
        *(uint*)(conn + Native.ConnMaxReadahead) = (uint)Math.Max(options.MaxRead, options.KernelReadAhead);
        // libfuse 3.14 reads requests into a buffer of FUSE_MAX_MAX_PAGES (256 pages, 1 MiB + header) and already starts
        // max_write there; said explicitly because more is not clamped after this callback: tried with 2 MiB, the
        // kernel refused libfuse's reads (EINVAL) and the session ended.
        *(uint*)(conn + Native.ConnMaxWrite) = MaxWrite;
        *(uint*)(conn + Native.ConnMaxBackground) = 64;
        LogInit(logger, capable, *want, MaxWrite);
    }

    public void Lookup(IntPtr req, ulong parent, string name) =>
        Dispatch(req, (Parent: parent, Name: name), async (request, op, ct) =>
        {
            var found = await vfs.LookupAsync(op.Parent, op.Name, ct).ConfigureAwait(false);
            if (found.Status == FsStatus.NotFound)
            {
                // A negative entry: the kernel remembers the miss for the negative timeout.
                ReplyNegative(request);
            }
            else if (!found.IsOk)
            {
                Reply(request, found.Status);
            }
            else if (!ReplyEntry(request, found.Value))
            {
                // The deadline answered first: the kernel never learnt of this lookup.
                vfs.Forget(found.Value.Ino, 1);
            }
        });

    public void Forget(ulong ino, ulong nlookup) => vfs.Forget(ino, nlookup);

    public void GetAttr(IntPtr req, ulong ino) =>
        Dispatch(req, ino, async (request, node, ct) =>
        {
            var attr = await vfs.GetAttrAsync(node, ct).ConfigureAwait(false);
            if (attr.IsOk)
            {
                ReplyAttr(request, attr.Value);
            }
            else
            {
                Reply(request, attr.Status);
            }
        });

    public void Open(IntPtr req, ulong ino, IntPtr fileInfo)
    {
        var flags = FlagsOf(fileInfo);
        if (options.SkipsOpen)
        {
            // The read-only no-open path: the VFS checks the access mode, then ENOSYS tells a kernel that supports it
            // to stop sending open/release (one round trip less per file, and the page cache is kept).
            var checkedOpen = vfs.OpenAsync(ino, flags, handle: false, CancellationToken.None);
            var status = checkedOpen.IsCompletedSuccessfully ? checkedOpen.Result.Status : FsStatus.IoError;
            Native.ReplyErr(req, status == FsStatus.Ok ? Native.ENOSYS : (int)status);
            return;
        }

        Dispatch(req, (Ino: ino, Flags: flags), async (request, op, ct) =>
        {
            var opened = await vfs.OpenAsync(op.Ino, op.Flags, handle: true, ct).ConfigureAwait(false);
            if (!opened.IsOk)
            {
                Reply(request, opened.Status);
                return;
            }

            if (!ReplyOpen(request, opened.Value, OpenBits(op.Flags)))
            {
                await vfs.ReleaseAsync(opened.Value).ConfigureAwait(false);
            }
        });
    }

    /// <summary>
    /// A handle that cannot write keeps the kernel's page cache (its version is pinned) and is closed without a flush
    /// (one round trip less per close(2)); a handle that writes starts from a fresh page cache, and its close(2) is the
    /// flush that commits the file.
    /// </summary>
    private static uint OpenBits(int flags) =>
        (flags & Native.OpenAccessMode) == 0 && (flags & Native.OpenTruncate) == 0 ? Native.FileInfoKeepCache | Native.FileInfoNoFlush : 0;

    public void Create(IntPtr req, ulong parent, string name, uint mode, IntPtr fileInfo)
    {
        var (uid, gid) = Caller(req);
        Dispatch(req, (Parent: parent, Name: name, Flags: FlagsOf(fileInfo), Mode: (int)(mode & 0xFFF), Uid: uid, Gid: gid), async (request, op, ct) =>
        {
            var created = await vfs.CreateAsync(op.Parent, op.Name, op.Flags, op.Mode, op.Uid, op.Gid, ct).ConfigureAwait(false);
            if (!created.IsOk)
            {
                Reply(request, created.Status);
                return;
            }

            // A new file is always flushed on close(2): that is where it is committed.
            var (attr, fh) = created.Value;
            if (!ReplyCreate(request, attr, fh, bits: 0))
            {
                // The kernel holds neither the handle nor the lookup.
                await vfs.ReleaseAsync(fh).ConfigureAwait(false);
                vfs.Forget(attr.Ino, 1);
            }
        });
    }

    /// <summary>
    /// mknod(2): a regular file is created empty and closed (the kernel sends mknod for it when it does not go through
    /// create, as mknod(2) itself does); other node types are refused.
    /// </summary>
    public void MakeNode(IntPtr req, ulong parent, string name, uint mode)
    {
        if ((mode & Native.TypeMask) != Native.TypeRegular)
        {
            Refuse(req);
            return;
        }

        var (uid, gid) = Caller(req);
        Dispatch(req, (Parent: parent, Name: name, Mode: (int)(mode & 0xFFF), Uid: uid, Gid: gid), async (request, op, ct) =>
        {
            var created = await vfs.CreateAsync(op.Parent, op.Name, Native.OpenWriteOnly | Native.OpenCreate | Native.OpenExclusive, op.Mode, op.Uid, op.Gid, ct).ConfigureAwait(false);
            if (!created.IsOk)
            {
                Reply(request, created.Status);
                return;
            }

            await vfs.ReleaseAsync(created.Value.Fh).ConfigureAwait(false);
            if (!ReplyEntry(request, created.Value.Attr))
            {
                vfs.Forget(created.Value.Attr.Ino, 1);
            }
        });
    }

    /// <summary>
    /// What GrainFS has no object for (symbolic and hard links, device, FIFO and socket nodes): EPERM, the errno of a file
    /// system that cannot make that kind of object. Refusals of a read-only mount are the kernel's and the VFS's (EROFS).
    /// </summary>
    public static void Refuse(IntPtr req) => Native.ReplyErr(req, (int)FsStatus.NotPermitted);

    /// <summary>A write of <paramref name="data"/>, which is in libfuse's request buffer: the next request reuses it, so the bytes are copied before the callback returns.</summary>
    public void Write(IntPtr req, ulong ino, ReadOnlySpan<byte> data, long offset, IntPtr fileInfo)
    {
        var count = data.Length;
        var buffer = ArrayPool<byte>.Shared.Rent(count);
        data.CopyTo(buffer);
        Dispatch(req, (Ino: ino, Fh: Handle(fileInfo), Offset: offset, Count: count, Buffer: buffer), async (request, op, ct) =>
        {
            try
            {
                var written = await vfs.WriteAsync(op.Ino, op.Fh, op.Offset, op.Buffer.AsMemory(0, op.Count), ct).ConfigureAwait(false);
                if (written.IsOk)
                {
                    ReplyWrite(request, written.Value);
                }
                else
                {
                    Reply(request, written.Status);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(op.Buffer);
            }
        });
    }

    public void Flush(IntPtr req, ulong ino, IntPtr fileInfo) =>
        Dispatch(req, (Ino: ino, Fh: Handle(fileInfo)), async (request, op, ct) =>
            Reply(request, await vfs.FlushAsync(op.Ino, op.Fh, ct).ConfigureAwait(false)));

    public void Sync(IntPtr req, ulong ino, IntPtr fileInfo) =>
        Dispatch(req, (Ino: ino, Fh: Handle(fileInfo)), async (request, op, ct) =>
            Reply(request, await vfs.FsyncAsync(op.Ino, op.Fh, ct).ConfigureAwait(false)));

    public void OpenDirectory(IntPtr req, ulong ino)
    {
        // A directory the VFS knows opens without any I/O: answered here, on libfuse's thread, as cheaply as a no-op.
        var opening = vfs.OpenDirectoryAsync(ino, CancellationToken.None);
        if (opening.IsCompletedSuccessfully)
        {
            ReplyOpenDirectory(new Request(req), opening.Result);
            return;
        }

        Dispatch(req, ino, async (request, node, ct) =>
            ReplyOpenDirectory(request, await vfs.OpenDirectoryAsync(node, ct).ConfigureAwait(false)));
    }

    private void ReplyOpenDirectory(Request request, FsResult<ulong> opened)
    {
        if (!opened.IsOk)
        {
            Reply(request, opened.Status);
            return;
        }

        // The kernel keeps the listing in its page cache across opens (cache_readdir + keep_cache), as it does for a
        // daemon without opendir; new attributes of the directory invalidate it.
        if (!ReplyOpen(request, opened.Value, Native.FileInfoCacheReaddir | Native.FileInfoKeepCache))
        {
            vfs.ReleaseDirectory(opened.Value);
        }
    }

    /// <summary>The last close of a handle: a write handle still uncommitted is committed, which takes time, so it is dispatched.</summary>
    public void Release(IntPtr req, IntPtr fileInfo) =>
        Dispatch(req, Handle(fileInfo), async (request, fh, _) =>
        {
            await vfs.ReleaseAsync(fh).ConfigureAwait(false);
            Reply(request, FsStatus.Ok);
        });

    public void ReleaseDirectory(IntPtr req, IntPtr fileInfo)
    {
        vfs.ReleaseDirectory(Handle(fileInfo));
        Native.ReplyErr(req, 0);
    }

    private long _fileReads;
    private long _fileReadBytes;
    private long _vfsReads;

    /// <summary>Read requests answered straight from block files on this host, their bytes, and reads that went through the VFS.</summary>
    public (long FromBlockFiles, long Bytes, long ThroughVfs) ReadCounts => (Interlocked.Read(ref _fileReads), Interlocked.Read(ref _fileReadBytes), Interlocked.Read(ref _vfsReads));

    public void Read(IntPtr req, ulong ino, nuint size, long offset, IntPtr fileInfo)
    {
        // A warm read of a block on this host is answered here, on libfuse's thread, from the block file itself.
        if (vfs.TryLocalSpan(ino, Handle(fileInfo), offset, (int)size, out var span) && TryReplySpan(req, span))
        {
            Interlocked.Increment(ref _fileReads);
            Interlocked.Add(ref _fileReadBytes, span.Length);
            return;
        }

        Interlocked.Increment(ref _vfsReads);
        ReadThroughVfs(req, ino, size, offset, fileInfo);
    }

    // Replies with the span's bytes straight from its file (spliced by libfuse when the kernel allows, else copied in
    // libfuse); false, with nothing replied, when the file is gone (evicted since: the VFS reads the block again).
    private static unsafe bool TryReplySpan(IntPtr req, LocalSpan span)
    {
        SafeFileHandle file;
        try
        {
            file = File.OpenHandle(span.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            return false;
        }

        using (file)
        {
            if (RandomAccess.GetLength(file) < span.Offset + span.Length)
            {
                return false; // truncated behind the worker's back: the VFS reads (and checks) the block again
            }

            // One byte read first (from the page cache when warm: one pread): a disk that fails reads is found here,
            // where the read can still go through the VFS (which drops the block and has it refilled elsewhere), and
            // not in libfuse's splice, which answers the caller EIO itself and tells this process nothing.
            Span<byte> probe = stackalloc byte[1];
            try
            {
                RandomAccess.Read(file, probe, span.Offset);
            }
            catch (IOException)
            {
                return false;
            }

            var added = false;
            file.DangerousAddRef(ref added);
            try
            {
                var data = new Native.FuseBufvec
                {
                    Count = 1,
                    Buf = new Native.FuseBuf { Size = (nuint)span.Length, Flags = Native.BufIsFd | Native.BufFdSeek, Fd = (int)file.DangerousGetHandle(), Pos = span.Offset },
                };
                Native.ReplyData(req, &data, Native.BufSpliceMove);
            }
            finally
            {
                if (added)
                {
                    file.DangerousRelease();
                }
            }
        }

        return true;
    }

    private void ReadThroughVfs(IntPtr req, ulong ino, nuint size, long offset, IntPtr fileInfo) =>
        Dispatch(req, (Ino: ino, Fh: Handle(fileInfo), Size: (int)size, Offset: offset), async (request, op, ct) =>
        {
            var buffer = ArrayPool<byte>.Shared.Rent(op.Size);
            try
            {
                var read = await vfs.ReadAsync(op.Ino, op.Fh, op.Offset, buffer.AsMemory(0, op.Size), ct).ConfigureAwait(false);
                if (read.IsOk)
                {
                    ReplyBuffer(request, buffer, read.Value);
                }
                else
                {
                    Reply(request, read.Status);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        });

    public void ReadDirectory(IntPtr req, ulong ino, nuint size, long offset, IntPtr fileInfo, bool plus) =>
        Dispatch(req, (Ino: ino, Fh: Handle(fileInfo), Size: (int)size, Offset: offset, Plus: plus), async (request, op, ct) =>
        {
            var buffer = ArrayPool<byte>.Shared.Rent(op.Size);
            try
            {
                var sink = new PackingSink(request.Handle, buffer, op.Size, op.Plus, options);
                var listed = await vfs.ReadDirectoryAsync(op.Ino, op.Fh, op.Offset, op.Plus, sink, ct).ConfigureAwait(false);
                if (listed.IsOk)
                {
                    ReplyBuffer(request, buffer, sink.Used);
                }
                else
                {
                    Reply(request, listed.Status);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        });

    public void StatFs(IntPtr req) =>
        Dispatch(req, "statfs", async (request, _, ct) =>
        {
            var stat = await vfs.StatFsAsync(ct).ConfigureAwait(false);
            if (!stat.IsOk)
            {
                Reply(request, stat.Status);
                return;
            }

            ReplyStatFs(request, stat.Value);
        });

    public void Access(IntPtr req, ulong ino, int mask) => Native.ReplyErr(req, (int)vfs.Access(ino, mask));

    public void MakeDirectory(IntPtr req, ulong parent, string name, uint mode)
    {
        var (uid, gid) = Caller(req);
        Dispatch(req, (Parent: parent, Name: name, Mode: (int)(mode & 0xFFF), Uid: uid, Gid: gid), async (request, op, ct) =>
        {
            var made = await vfs.MakeDirectoryAsync(op.Parent, op.Name, op.Mode, op.Uid, op.Gid, ct).ConfigureAwait(false);
            if (!made.IsOk)
            {
                Reply(request, made.Status);
            }
            else if (!ReplyEntry(request, made.Value))
            {
                vfs.Forget(made.Value.Ino, 1);
            }
        });
    }

    public void Unlink(IntPtr req, ulong parent, string name) =>
        Dispatch(req, (Parent: parent, Name: name), async (request, op, ct) =>
            Reply(request, await vfs.UnlinkAsync(op.Parent, op.Name, ct).ConfigureAwait(false)));

    public void RemoveDirectory(IntPtr req, ulong parent, string name) =>
        Dispatch(req, (Parent: parent, Name: name), async (request, op, ct) =>
            Reply(request, await vfs.RemoveDirectoryAsync(op.Parent, op.Name, ct).ConfigureAwait(false)));

    public void Rename(IntPtr req, ulong parent, string name, ulong newParent, string newName, uint flags) =>
        Dispatch(req, (Parent: parent, Name: name, NewParent: newParent, NewName: newName, Flags: flags), async (request, op, ct) =>
            Reply(request, await vfs.RenameAsync(op.Parent, op.Name, op.NewParent, op.NewName, op.Flags, ct).ConfigureAwait(false)));

    /// <summary>setattr (chmod, chown, truncate, utimes): <paramref name="toSet"/> says which fields of <paramref name="attr"/> to apply.</summary>
    public void SetAttributes(IntPtr req, ulong ino, in Native.Stat attr, int toSet, IntPtr fileInfo)
    {
        var decoded = SetAttr.Decode(toSet, attr, time.GetUtcNow().UtcDateTime, out var change);
        if (decoded != FsStatus.Ok)
        {
            Native.ReplyErr(req, (int)decoded);
            return;
        }

        // fileInfo is null unless the change comes through an open file (ftruncate, fchmod …).
        Dispatch(req, (Ino: ino, Fh: Handle(fileInfo), Change: change), async (request, op, ct) =>
        {
            var set = await vfs.SetAttrAsync(op.Ino, op.Fh, op.Change, ct).ConfigureAwait(false);
            if (set.IsOk)
            {
                ReplyAttr(request, set.Value);
            }
            else
            {
                Reply(request, set.Status);
            }
        });
    }

    // The fuse_file_info libfuse passes lives on its worker's stack: read in the callback, never after it.
    private static unsafe ulong Handle(IntPtr fileInfo) => fileInfo == IntPtr.Zero ? 0 : ((Native.FileInfo*)fileInfo)->Fh;

    private static unsafe int FlagsOf(IntPtr fileInfo) => ((Native.FileInfo*)fileInfo)->Flags;

    /// <summary>The uid and gid of the process that made the request, owner of what it creates.</summary>
    private static unsafe (uint Uid, uint Gid) Caller(IntPtr req)
    {
        var context = Native.RequestContext(req);
        return (context->Uid, context->Gid);
    }

    // ------------------------------------------------------------------ replies (synchronous, so pointers stay on the stack)

    private unsafe void ReplyNegative(Request request)
    {
        if (request.Claim())
        {
            Native.EntryParam negative = default;
            negative.EntryTimeout = options.NegativeTimeout.TotalSeconds;
            Native.ReplyEntry(request.Handle, &negative);
        }
    }

    /// <summary>Replies an entry; false when the kernel never got it (the deadline answered first, or the request was interrupted): the caller forgets the lookup.</summary>
    private unsafe bool ReplyEntry(Request request, in Attr attr)
    {
        if (!request.Claim())
        {
            return false;
        }

        Native.EntryParam entry;
        FillEntry(&entry, attr, options);
        return Native.ReplyEntry(request.Handle, &entry) != -Native.ENOENT;
    }

    /// <summary>Replies a create with the new entry and its handle; false when the kernel never got them (see <see cref="ReplyOpen"/>).</summary>
    private unsafe bool ReplyCreate(Request request, in Attr attr, ulong fh, uint bits)
    {
        if (!request.Claim())
        {
            return false;
        }

        Native.EntryParam entry;
        FillEntry(&entry, attr, options);
        Native.FileInfo info = default;
        info.Fh = fh;
        info.Bits = bits;
        return Native.ReplyCreate(request.Handle, &entry, &info) != -Native.ENOENT;
    }

    private static void ReplyWrite(Request request, int count)
    {
        if (request.Claim())
        {
            Native.ReplyWrite(request.Handle, (nuint)count);
        }
    }

    private unsafe void ReplyAttr(Request request, in Attr attr)
    {
        if (request.Claim())
        {
            Native.Stat stat;
            FillStat(&stat, attr);
            Native.ReplyAttr(request.Handle, &stat, options.AttrTimeout.TotalSeconds);
        }
    }

    /// <summary>
    /// Replies an open with its handle, from a fuse_file_info of our own (libfuse's is gone once the callback returned).
    /// False when the kernel never got the handle (the deadline answered first, or the open was interrupted): the caller
    /// closes it again.
    /// </summary>
    private static unsafe bool ReplyOpen(Request request, ulong fh, uint bits)
    {
        if (!request.Claim())
        {
            return false;
        }

        Native.FileInfo info = default;
        info.Fh = fh;
        info.Bits = bits;
        return Native.ReplyOpen(request.Handle, &info) != -Native.ENOENT;
    }

    private static unsafe void ReplyStatFs(Request request, in StatFs s)
    {
        Native.StatVfs native = default;
        native.Bsize = native.Frsize = s.BlockSize;
        native.Blocks = s.Blocks;
        native.Bfree = native.Bavail = s.FreeBlocks;
        native.Files = native.Ffree = native.Favail = s.Files;
        native.Namemax = s.NameMax;
        native.Flag = s.ReadOnly ? 1UL : 0UL; // ST_RDONLY
        if (request.Claim())
        {
            Native.ReplyStatfs(request.Handle, &native);
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

    private static unsafe void FillStat(Native.Stat* stat, in Attr attr)
    {
        *stat = default;
        stat->Ino = attr.Ino;
        stat->Uid = attr.Uid;
        stat->Gid = attr.Gid;
        stat->Mode = attr.Mode;
        stat->Nlink = attr.Nlink;
        stat->Size = attr.Size;
        stat->Blksize = 128 * 1024;
        stat->Blocks = (attr.Size + 511) / 512;
        var seconds = new DateTimeOffset(attr.MtimeUtc).ToUnixTimeSeconds();
        var nanos = (attr.MtimeUtc.Ticks % TimeSpan.TicksPerSecond) * 100;
        stat->MtimeSec = stat->AtimeSec = stat->CtimeSec = seconds;
        stat->MtimeNsec = stat->AtimeNsec = stat->CtimeNsec = nanos;
    }

    private static unsafe void FillEntry(Native.EntryParam* e, in Attr attr, FuseOptions options)
    {
        *e = default;
        e->Ino = attr.Ino;
        e->AttrTimeout = options.AttrTimeout.TotalSeconds;
        e->EntryTimeout = options.EntryTimeout.TotalSeconds;
        FillStat(&e->Attr, attr);
    }

    /// <summary>Packs directory entries into a reply buffer with libfuse's helpers; full when the next entry does not fit.</summary>
    private sealed unsafe class PackingSink(IntPtr req, byte[] buffer, int size, bool plus, FuseOptions options) : IDirectorySink
    {
        public int Used { get; private set; }

        public bool TryAdd(in DirEntry entry)
        {
            Span<byte> name = stackalloc byte[FsPath.MaxNameBytes * 4 + 1];
            var count = Encoding.UTF8.GetBytes(entry.Name, name);
            name[count] = 0;
            var space = (nuint)(size - Used);
            nuint added;
            fixed (byte* data = buffer)
            fixed (byte* namePtr = name)
            {
                var at = data + Used;
                if (plus)
                {
                    Native.EntryParam e;
                    if (entry.IsDot)
                    {
                        // In readdirplus the kernel links neither "." nor ".." (node id 0): only the number and type matter.
                        e = default;
                        e.Attr.Ino = entry.Attr.Ino;
                        e.Attr.Mode = entry.Attr.Mode;
                    }
                    else
                    {
                        FillEntry(&e, entry.Attr, options);
                    }

                    added = Native.AddDirentryPlus(req, at, space, namePtr, &e, entry.NextOffset);
                }
                else
                {
                    Native.Stat stat;
                    FillStat(&stat, entry.Attr);
                    added = Native.AddDirentry(req, at, space, namePtr, &stat, entry.NextOffset);
                }
            }

            if (added > space)
            {
                return false;
            }

            Used += (int)added;
            return true;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "FUSE connection: kernel capabilities 0x{Capable:x}, wanted 0x{Want:x}, max_write {MaxWrite}")]
    private static partial void LogInit(ILogger logger, uint capable, uint want, uint maxWrite);

    [LoggerMessage(Level = LogLevel.Warning, Message = "EIO for {What}: no answer within {Seconds} s")]
    private static partial void LogDeadline(ILogger logger, string what, double seconds);

    [LoggerMessage(Level = LogLevel.Error, Message = "EIO for {What}: {Reason}")]
    private static partial void LogFailed(ILogger logger, string what, string reason);
}
