using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using GrainFs.Client;
using GrainFs.Vfs;
using Microsoft.Extensions.Logging;

namespace GrainFs.Fuse;

/// <summary>A mount that could not be made; the message says why in one line.</summary>
public sealed class FuseMountException(string message) : Exception(message);

/// <summary>
/// A FUSE mount of GrainFS: checks the mount point, mounts with libfuse's low-level API, serves requests on
/// libfuse's multithreaded loop until unmounted (by <see cref="Unmount"/>, a signal, or fusermount3 -u), and
/// unmounts cleanly. One mount per process: libfuse calls back into static functions. What the VFS learns changed
/// elsewhere goes to the kernel (inval_entry, inval_inode) through an <see cref="InvalidationQueue"/>.
/// </summary>
public sealed unsafe partial class FuseMount : IDisposable
{
    private static FuseFileSystem? s_fs;
    private readonly string _mountPoint;
    private readonly VirtualFileSystem _vfs;
    private readonly ILogger _logger;
    // Unmount runs on the signal thread while Run's loop winds down on another; Dispose must not free the session
    // under a signal thread still inside fuse_session_unmount, and no notification may use it once it is gone, so all
    // three take this lock.
    private readonly Lock _gate = new();
    private InvalidationQueue? _invalidations;
    private FuseConnection? _connection;
    private IntPtr _session;
    private IntPtr _ops;
    private bool _unmounted;

    private FuseMount(string mountPoint, VirtualFileSystem vfs, ILogger logger)
    {
        _mountPoint = mountPoint;
        _vfs = vfs;
        _logger = logger;
    }

    /// <summary>The mount point.</summary>
    public string MountPoint => _mountPoint;

    /// <summary>Checks a mount point; throws <see cref="FuseMountException"/> naming the problem.</summary>
    public static string CheckMountPoint(string mountPoint, bool allowNonEmpty)
    {
        // As the kernel names it (no trailing slash, which shell completion adds): the supervisor's state, the order
        // socket and --upgrade find the mount by this name.
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(mountPoint));
        if (!Directory.Exists(full))
        {
            throw new FuseMountException(File.Exists(full) ? $"mount point {full} is a file, not a directory" : $"mount point {full} does not exist (create it first)");
        }

        try
        {
            if (!allowNonEmpty && Directory.EnumerateFileSystemEntries(full).Any())
            {
                throw new FuseMountException($"mount point {full} is not empty (GrainFS would hide its contents; use an empty directory)");
            }
        }
        catch (IOException e) when (e.Message.Contains("not connected", StringComparison.OrdinalIgnoreCase))
        {
            throw new FuseMountException($"mount point {full} holds a dead FUSE mount: run `grainfs umount {full}` first");
        }

        if (!File.Exists("/dev/fuse"))
        {
            throw new FuseMountException("/dev/fuse is missing: load the fuse kernel module (modprobe fuse), or give the container the device (--device /dev/fuse)");
        }

        return full;
    }

    /// <summary>Mounts <paramref name="client"/>'s namespace at <paramref name="mountPoint"/>; throws <see cref="FuseMountException"/> when it cannot.</summary>
    /// <param name="mountPoint">Where to mount (or, with <paramref name="connection"/>, where the supervisor mounted).</param>
    /// <param name="client">The client whose namespace is served.</param>
    /// <param name="options">The mount's options.</param>
    /// <param name="logger">Where the mount logs.</param>
    /// <param name="allowNonEmpty">Allow mounting over a non-empty folder.</param>
    /// <param name="connection">A kernel connection a supervisor holds (<see cref="FuseSupervisor"/>): served instead of mounting.</param>
    public static FuseMount Mount(string mountPoint, GrainFsClient client, FuseOptions options, ILogger logger, bool allowNonEmpty = false, FuseConnection? connection = null)
    {
        // A connection's mount point is this file system already (stat would wait for this very process): not checked.
        var full = connection is null ? CheckMountPoint(mountPoint, allowNonEmpty) : Path.TrimEndingDirectorySeparator(Path.GetFullPath(mountPoint));
        var vfs = new VirtualFileSystem(client, options.ToVfsOptions(), logger);
        if (connection is not null)
        {
            var restored = vfs.Restore(connection.JournalPath, connection.HandleBase);
            LogRestored(logger, connection.Generation, restored);
        }

        if (Interlocked.CompareExchange(ref s_fs, new FuseFileSystem(vfs, options, logger, TimeProvider.System), null) is not null)
        {
            throw new FuseMountException("this process already serves a mount");
        }

        var mount = new FuseMount(full, vfs, logger) { _connection = connection };
        // Off the request's thread: a write to sysfs, once.
        s_fs!.Connected = () => Task.Run(() => mount.SetKernelReadAhead(options.KernelReadAhead));
        try
        {
            mount.Start(options);
            if (connection is not null)
            {
                mount.TakeOver(connection);
            }
        }
        catch
        {
            mount.Dispose();
            throw;
        }

        return mount;
    }

    /// <summary>The kernel mount options of <paramref name="options"/> (the supervisor mounts with the same ones).</summary>
    internal static List<string> MountOptionsOf(FuseOptions options)
    {
        var mountOptions = new List<string> { "default_permissions", "fsname=grainfs", "subtype=grainfs", $"max_read={options.MaxRead}" };
        if (options.ReadOnly)
        {
            mountOptions.Insert(0, "ro");
        }

        if (options.AllowOther)
        {
            mountOptions.Add("allow_other");
        }

        return mountOptions;
    }

    /// <summary>A libfuse session with <paramref name="mountOptions"/> and the operations at <paramref name="ops"/> (zero: null).</summary>
    internal static IntPtr NewSession(List<string> mountOptions, IntPtr ops)
    {
        string[] argv = ["grainfs", "-o", string.Join(',', mountOptions)];
        // Our copies of the strings: libfuse may replace args.Argv with its own array while parsing, which it frees itself.
        var strings = (byte**)NativeMemory.AllocZeroed((nuint)(argv.Length + 1), (nuint)sizeof(byte*));
        for (var i = 0; i < argv.Length; i++)
        {
            var bytes = Encoding.UTF8.GetBytes(argv[i] + "\0");
            var native = (byte*)NativeMemory.Alloc((nuint)bytes.Length);
            bytes.CopyTo(new Span<byte>(native, bytes.Length));
            strings[i] = native;
        }

        var args = new Native.FuseArgs { Argc = argv.Length, Argv = strings, Allocated = 0 };
        var session = Native.SessionNew(&args, ops, (nuint)(Native.OpsCount * sizeof(IntPtr)), IntPtr.Zero);
        Native.OptFreeArgs(&args);
        for (var i = 0; i < argv.Length; i++)
        {
            NativeMemory.Free(strings[i]);
        }

        NativeMemory.Free(strings);
        return session != IntPtr.Zero ? session : throw new FuseMountException($"libfuse refused the mount options ({string.Join(',', mountOptions)})");
    }

    /// <summary>Destroys a libfuse session and frees its operations table (each once; the fields are cleared).</summary>
    internal static void DestroySession(ref IntPtr session, ref IntPtr ops)
    {
        if (session != IntPtr.Zero)
        {
            Native.SessionDestroy(session);
            session = IntPtr.Zero;
        }

        if (ops != IntPtr.Zero)
        {
            NativeMemory.Free((void*)ops);
            ops = IntPtr.Zero;
        }
    }

    private void Start(FuseOptions options)
    {
        var mountOptions = MountOptionsOf(options);
        _ops = (IntPtr)NativeMemory.AllocZeroed(Native.OpsCount, (nuint)sizeof(IntPtr));
        var ops = (IntPtr*)_ops;
        ops[Native.OpInit] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, IntPtr, void>)&OnInit;
        ops[Native.OpLookup] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, byte*, void>)&OnLookup;
        ops[Native.OpForget] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, ulong, void>)&OnForget;
        ops[Native.OpForgetMulti] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, nuint, Native.ForgetData*, void>)&OnForgetMulti;
        ops[Native.OpGetattr] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, IntPtr, void>)&OnGetattr;
        ops[Native.OpOpen] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, IntPtr, void>)&OnOpen;
        ops[Native.OpRead] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, nuint, long, IntPtr, void>)&OnRead;
        ops[Native.OpRelease] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, IntPtr, void>)&OnRelease;
        if (!options.ReadOnly)
        {
            // A read-only mount has nothing to flush or sync. Without the ops libfuse answers ENOSYS, and the kernel stops
            // sending them for the connection: no round trip per close(2) of a file opened without open (no-open files
            // cannot be given noflush).
            ops[Native.OpFlush] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, IntPtr, void>)&OnFlush;
            ops[Native.OpFsync] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, int, IntPtr, void>)&OnFsync;
        }

        ops[Native.OpOpendir] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, IntPtr, void>)&OnOpendir;
        ops[Native.OpReaddir] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, nuint, long, IntPtr, void>)&OnReaddir;
        ops[Native.OpReaddirplus] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, nuint, long, IntPtr, void>)&OnReaddirplus;
        ops[Native.OpReleasedir] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, IntPtr, void>)&OnReleasedir;
        ops[Native.OpStatfs] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, void>)&OnStatfs;
        ops[Native.OpAccess] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, int, void>)&OnAccess;
        ops[Native.OpSetattr] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, Native.Stat*, int, IntPtr, void>)&OnSetattr;
        ops[Native.OpMknod] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, byte*, uint, ulong, void>)&OnMknod;
        ops[Native.OpMkdir] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, byte*, uint, void>)&OnMkdir;
        ops[Native.OpUnlink] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, byte*, void>)&OnUnlink;
        ops[Native.OpRmdir] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, byte*, void>)&OnRmdir;
        ops[Native.OpSymlink] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, byte*, ulong, byte*, void>)&OnSymlink;
        ops[Native.OpRename] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, byte*, ulong, byte*, uint, void>)&OnRename;
        ops[Native.OpLink] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, ulong, byte*, void>)&OnLink;
        ops[Native.OpCreate] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, byte*, uint, IntPtr, void>)&OnCreate;
        ops[Native.OpWrite] = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, ulong, byte*, nuint, long, IntPtr, void>)&OnWrite;

        _session = NewSession(mountOptions, _ops);
        if (_connection is { } connection)
        {
            // libfuse serves a descriptor given as /dev/fd/N as it is (the supervisor mounted it).
            if (Native.SessionMount(_session, $"/dev/fd/{connection.Fd}") != 0)
            {
                throw new FuseMountException($"cannot serve the supervisor's FUSE connection (descriptor {connection.Fd})");
            }
        }
        else if (Native.SessionMount(_session, _mountPoint) != 0)
        {
            throw new FuseMountException($"cannot mount at {_mountPoint} (see the libfuse message above; as a non-root user fusermount3 must be installed, and allow_other needs user_allow_other in /etc/fuse.conf)");
        }

        LogMounted(_logger, _mountPoint, string.Join(',', mountOptions));
        _invalidations = new InvalidationQueue(Notify, _logger);
        _vfs.EntryInvalidated += _invalidations.Entry;
        _vfs.InodeInvalidated += _invalidations.Inode;
    }

    /// <summary>An INIT request made up from a saved one is answered with this number, which the kernel never gives a request: it refuses the answer (ENOENT), which libfuse ignores.</summary>
    private const ulong ReplayUnique = 0x7FFF_FFFF_FFFF_FFF0;

    private const int NotifyResend = 7;

    /// <summary>
    /// Prepares this session to serve a connection the supervisor holds: libfuse answers nothing but INIT until it has
    /// seen one, so it is given the kernel's INIT (saved by the supervisor) — the real one for the first serving process,
    /// which answers the kernel; for a later one, a copy the kernel refuses to take an answer for, since it negotiated
    /// already. Then the kernel is asked to send again every request it had handed to a process that died
    /// (FUSE_NOTIFY_RESEND, Linux 6.9 and later): their callers see a pause, not an error.
    /// </summary>
    private void TakeOver(FuseConnection connection)
    {
        var init = connection.Init.ToArray();
        if (connection.Generation > 1)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(init.AsSpan(8), ReplayUnique);
        }

        fixed (byte* bytes = init)
        {
            var buffer = new Native.FuseBuf { Size = (nuint)init.Length, Mem = (IntPtr)bytes, Fd = -1 };
            Native.SessionProcessBuf(_session, &buffer);
        }

        if (connection.Generation == 1)
        {
            return;
        }

        // struct fuse_out_header: len, error (the notification's code), unique 0.
        var header = stackalloc byte[16];
        new Span<byte>(header, 16).Clear();
        *(int*)header = 16;
        *(int*)(header + 4) = NotifyResend;
        if (Native.Write(Native.SessionFd(_session), header, 16) != 16)
        {
            LogNoResend(_logger, Marshal.GetLastPInvokeErrorMessage());
        }
        else
        {
            LogResent(_logger);
        }
    }

    /// <summary>
    /// Ends this serving process so that the supervisor starts the next one (an upgrade, or the supervisor stopping):
    /// once no file is open for writing (what a writer had not flushed would go with this process), waiting at most
    /// <paramref name="timeout"/>; requests taken and not answered are sent again to the next process by the kernel.
    /// </summary>
    public void HandOver(TimeSpan timeout)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (_vfs.OpenWrites > 0 && waited.Elapsed < timeout)
        {
            Thread.Sleep(100);
        }

        var writes = _vfs.OpenWrites;
        Console.Error.WriteLine(writes == 0
            ? $"grainfs: serving process {Environment.ProcessId} hands {_mountPoint} over"
            : $"grainfs: serving process {Environment.ProcessId} hands {_mountPoint} over with {writes} file(s) still open for writing after {timeout.TotalSeconds:0} s: their writers get EBADF");
        Console.Error.Flush();
        Native.ExitNow(FuseSupervisor.HandOverExitCode);
    }

    /// <summary>Serves requests until the mount goes away; returns libfuse's exit status.</summary>
    public int Run(int maxThreads = 32)
    {
        var config = Native.LoopConfigCreate();
        try
        {
            Native.LoopConfigSetMaxThreads(config, (uint)maxThreads);
            Native.LoopConfigSetIdleThreads(config, 4);
            return Native.SessionLoopMt(_session, config);
        }
        finally
        {
            Native.LoopConfigDestroy(config);
        }
    }

    /// <summary>Asks the loop to stop and detaches the mount (lazily: open files keep working until closed).</summary>
    public void Unmount()
    {
        lock (_gate)
        {
            if (_unmounted || _session == IntPtr.Zero)
            {
                return;
            }

            _unmounted = true;
            Native.SessionExit(_session);
            if (_connection is null)
            {
                // A supervisor's connection is unmounted by the supervisor.
                Native.SessionUnmount(_session);
            }
        }

        if (s_fs is { } fs)
        {
            var (fromFiles, bytes, throughVfs) = fs.ReadCounts;
            LogReads(_logger, fromFiles, bytes, throughVfs);
        }

        LogUnmounted(_logger, _mountPoint);
    }

    /// <summary>Unmounts (if still mounted) and releases the session; waits for an unmount in progress on another thread.</summary>
    public void Dispose()
    {
        Unmount();
        StopInvalidations();
        lock (_gate)
        {
            DestroySession(ref _session, ref _ops);
        }

        s_fs = null;
    }

    // ------------------------------------------------------------------ kernel cache invalidation

    /// <summary>Tells the kernel to drop a name (<paramref name="name"/> set, <paramref name="ino"/> its parent) or an inode's attributes and data; 0 or -errno; nothing once unmounted.</summary>
    private int Notify(ulong ino, string? name)
    {
        lock (_gate)
        {
            if (_unmounted || _session == IntPtr.Zero)
            {
                return 0;
            }

            return name is null ? Native.NotifyInvalidateInode(_session, ino, 0, 0) : NotifyEntry(ino, name);
        }
    }

    private int NotifyEntry(ulong parent, string name)
    {
        // The kernel checks that the byte after the name is NUL.
        var length = Encoding.UTF8.GetByteCount(name);
        Span<byte> bytes = length < 1024 ? stackalloc byte[length + 1] : new byte[length + 1];
        Encoding.UTF8.GetBytes(name, bytes);
        bytes[length] = 0;
        fixed (byte* text = bytes)
        {
            return Native.NotifyInvalidateEntry(_session, parent, text, (nuint)length);
        }
    }

    /// <summary>Stops passing invalidations on; what is still queued is dropped (the mount is gone).</summary>
    private void StopInvalidations()
    {
        if (_invalidations is { } invalidations)
        {
            _vfs.EntryInvalidated -= invalidations.Entry;
            _vfs.InodeInvalidated -= invalidations.Inode;
            invalidations.Dispose();
            _invalidations = null;
        }
    }

    // ------------------------------------------------------------------ callbacks (libfuse threads)

    private static FuseFileSystem Fs => s_fs!;

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnInit(IntPtr userdata, IntPtr conn) => Fs.Init(conn);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnLookup(IntPtr req, ulong parent, byte* name)
    {
        if (Known(req, name, out var text))
        {
            Fs.Lookup(req, parent, text);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnForget(IntPtr req, ulong ino, ulong nlookup)
    {
        Fs.Forget(ino, nlookup);
        Native.ReplyNone(req);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnForgetMulti(IntPtr req, nuint count, Native.ForgetData* forgets)
    {
        for (nuint i = 0; i < count; i++)
        {
            Fs.Forget(forgets[i].Ino, forgets[i].Nlookup);
        }

        Native.ReplyNone(req);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnGetattr(IntPtr req, ulong ino, IntPtr fileInfo) => Fs.GetAttr(req, ino);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnOpen(IntPtr req, ulong ino, IntPtr fileInfo) => Fs.Open(req, ino, fileInfo);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnOpendir(IntPtr req, ulong ino, IntPtr fileInfo) => Fs.OpenDirectory(req, ino);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnRelease(IntPtr req, ulong ino, IntPtr fileInfo) => Fs.Release(req, fileInfo);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnReleasedir(IntPtr req, ulong ino, IntPtr fileInfo) => Fs.ReleaseDirectory(req, fileInfo);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnRead(IntPtr req, ulong ino, nuint size, long offset, IntPtr fileInfo) => Fs.Read(req, ino, size, offset, fileInfo);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnReaddir(IntPtr req, ulong ino, nuint size, long offset, IntPtr fileInfo) => Fs.ReadDirectory(req, ino, size, offset, fileInfo, plus: false);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnReaddirplus(IntPtr req, ulong ino, nuint size, long offset, IntPtr fileInfo) => Fs.ReadDirectory(req, ino, size, offset, fileInfo, plus: true);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnStatfs(IntPtr req, ulong ino) => Fs.StatFs(req);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnAccess(IntPtr req, ulong ino, int mask) => Fs.Access(req, ino, mask);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnFlush(IntPtr req, ulong ino, IntPtr fileInfo) => Fs.Flush(req, ino, fileInfo);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnFsync(IntPtr req, ulong ino, int dataSync, IntPtr fileInfo) => Fs.Sync(req, ino, fileInfo);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnSetattr(IntPtr req, ulong ino, Native.Stat* attr, int toSet, IntPtr fileInfo) => Fs.SetAttributes(req, ino, in *attr, toSet, fileInfo);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnMknod(IntPtr req, ulong parent, byte* name, uint mode, ulong rdev)
    {
        if (Holdable(req, name, out var text))
        {
            Fs.MakeNode(req, parent, text, mode);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnMkdir(IntPtr req, ulong parent, byte* name, uint mode)
    {
        if (Holdable(req, name, out var text))
        {
            Fs.MakeDirectory(req, parent, text, mode);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnUnlink(IntPtr req, ulong parent, byte* name)
    {
        if (Known(req, name, out var text))
        {
            Fs.Unlink(req, parent, text);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnRmdir(IntPtr req, ulong parent, byte* name)
    {
        if (Known(req, name, out var text))
        {
            Fs.RemoveDirectory(req, parent, text);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnSymlink(IntPtr req, byte* link, ulong parent, byte* name) => FuseFileSystem.Refuse(req);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnRename(IntPtr req, ulong parent, byte* name, ulong newParent, byte* newName, uint flags)
    {
        if (Known(req, name, out var from) && Holdable(req, newName, out var to))
        {
            Fs.Rename(req, parent, from, newParent, to, flags);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnLink(IntPtr req, ulong ino, ulong newParent, byte* newName) => FuseFileSystem.Refuse(req);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnCreate(IntPtr req, ulong parent, byte* name, uint mode, IntPtr fileInfo)
    {
        if (Holdable(req, name, out var text))
        {
            Fs.Create(req, parent, text, mode, fileInfo);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnWrite(IntPtr req, ulong ino, byte* buffer, nuint size, long offset, IntPtr fileInfo) =>
        Fs.Write(req, ino, new ReadOnlySpan<byte>(buffer, (int)size), offset, fileInfo);

    private const int ENOENT = 2;
    private const int EILSEQ = 84;

    /// <summary>
    /// A name the kernel sent, when it is UTF-8, as every GrainFS name is; else null (decoding with replacement
    /// characters would make two different names one).
    /// </summary>
    private static string? Name(byte* name)
    {
        var bytes = MemoryMarshal.CreateReadOnlySpanFromNullTerminated(name);
        return System.Text.Unicode.Utf8.IsValid(bytes) ? Encoding.UTF8.GetString(bytes) : null;
    }

    /// <summary>A name to find: one that is not UTF-8 names nothing GrainFS holds (ENOENT).</summary>
    private static bool Known(IntPtr req, byte* name, out string text) => Decoded(req, name, ENOENT, out text);

    /// <summary>A name to make: one that is not UTF-8 cannot be held (EILSEQ, "invalid or incomplete multibyte character").</summary>
    private static bool Holdable(IntPtr req, byte* name, out string text) => Decoded(req, name, EILSEQ, out text);

    private static bool Decoded(IntPtr req, byte* name, int error, out string text)
    {
        if (Name(name) is { } decoded)
        {
            text = decoded;
            return true;
        }

        text = string.Empty;
        Native.ReplyErr(req, error);
        return false;
    }

    /// <summary>
    /// Sets the read-ahead window of the mount's backing device (read_ahead_kb under /sys/class/bdi, found by the device
    /// number /proc/self/mountinfo gives the mount point). Logged either way; without root the kernel's default stays.
    /// </summary>
    internal void SetKernelReadAhead(int bytes)
    {
        var device = DeviceOf(_mountPoint);
        if (device is null)
        {
            LogReadAheadKept(_logger, _mountPoint, "the mount is not in /proc/self/mountinfo");
            return;
        }

        var file = $"/sys/class/bdi/{device}/read_ahead_kb";
        try
        {
            File.WriteAllText(file, (bytes / 1024).ToString(System.Globalization.CultureInfo.InvariantCulture));
            LogReadAhead(_logger, _mountPoint, File.ReadAllText(file).Trim());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogReadAheadKept(_logger, _mountPoint, $"{file}: {e.Message} (setting it needs root)");
        }
    }

    /// <summary>The "major:minor" of the file system mounted at <paramref name="mountPoint"/>, or null.</summary>
    internal static string? DeviceOf(string mountPoint)
    {
        string? found = null;
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            // ID PARENT MAJOR:MINOR ROOT MOUNTPOINT ...; spaces and such in the mount point are octal escapes. The last
            // match wins: a mount over an older one at the same point hides it.
            var fields = line.Split(' ');
            if (fields.Length > 4 && string.Equals(Unescape(fields[4]), mountPoint, StringComparison.Ordinal))
            {
                found = fields[2];
            }
        }

        return found;
    }

    private static string Unescape(string field)
    {
        if (!field.Contains('\\', StringComparison.Ordinal))
        {
            return field;
        }

        var text = new StringBuilder(field.Length);
        for (var i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && i + 3 < field.Length && field.AsSpan(i + 1, 3).IndexOfAnyExcept("01234567") < 0)
            {
                text.Append((char)Convert.ToInt32(field.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                text.Append(field[i]);
            }
        }

        return text.ToString();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Kernel read-ahead of {MountPoint}: {Kib} KiB")]
    private static partial void LogReadAhead(ILogger logger, string mountPoint, string kib);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Kernel read-ahead of {MountPoint} stays at the kernel's default: {Reason}")]
    private static partial void LogReadAheadKept(ILogger logger, string mountPoint, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Mounted GrainFS at {MountPoint} ({Options})")]
    private static partial void LogMounted(ILogger logger, string mountPoint, string options);

    [LoggerMessage(Level = LogLevel.Information, Message = "Read requests: {FromBlockFiles} answered from block files on this host ({Bytes} bytes, spliced), {ThroughVfs} through the VFS")]
    private static partial void LogReads(ILogger logger, long fromBlockFiles, long bytes, long throughVfs);

    [LoggerMessage(Level = LogLevel.Information, Message = "Serving process generation {Generation}: {Inodes} inode(s) taken over from the journal")]
    private static partial void LogRestored(ILogger logger, int generation, int inodes);

    [LoggerMessage(Level = LogLevel.Information, Message = "Requests the previous serving process had not answered were asked for again (FUSE_NOTIFY_RESEND)")]
    private static partial void LogResent(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The kernel did not take FUSE_NOTIFY_RESEND ({Reason}; Linux 6.9 or later has it): requests the previous serving process had not answered stay unanswered")]
    private static partial void LogNoResend(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Unmounted {MountPoint}")]
    private static partial void LogUnmounted(ILogger logger, string mountPoint);
}
