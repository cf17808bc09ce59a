using System.Runtime.InteropServices;

namespace GrainFs.Fuse;

/// <summary>
/// libfuse 3 (3.14, x86-64) low-level API. Struct layouts are the ones verified on this platform (PLATFORM.md and
/// /usr/include/fuse3): fuse_lowlevel_ops is 44 pointers, struct stat 144 bytes, fuse_entry_param 176,
/// fuse_file_info 40 (flags at 0, bit word at 4, fh at 16), fuse_conn_info with max_write at 8 and max_read at 12,
/// fuse_ctx 16 (uid, gid, pid, umask).
/// </summary>
internal static unsafe partial class Native
{
    private const string Lib = "libfuse3.so.3";

    public const int OpsCount = 44;

    // Indexes into struct fuse_lowlevel_ops.
    public const int OpInit = 0;
    public const int OpDestroy = 1;
    public const int OpLookup = 2;
    public const int OpForget = 3;
    public const int OpGetattr = 4;
    public const int OpSetattr = 5;
    public const int OpMknod = 7;
    public const int OpMkdir = 8;
    public const int OpUnlink = 9;
    public const int OpRmdir = 10;
    public const int OpSymlink = 11;
    public const int OpRename = 12;
    public const int OpLink = 13;
    public const int OpOpen = 14;
    public const int OpRead = 15;
    public const int OpWrite = 16;
    public const int OpFlush = 17;
    public const int OpRelease = 18;
    public const int OpFsync = 19;
    public const int OpOpendir = 20;
    public const int OpReaddir = 21;
    public const int OpReleasedir = 22;
    public const int OpStatfs = 24;
    public const int OpAccess = 29;
    public const int OpCreate = 30;
    public const int OpForgetMulti = 38;
    public const int OpReaddirplus = 41;

    // fuse_conn_info capability bits (fuse_common.h).
    public const uint CapAsyncRead = 1u << 0;
    public const uint CapSpliceWrite = 1u << 7;
    public const uint CapSpliceMove = 1u << 8;
    public const uint CapAtomicOTrunc = 1u << 3;
    public const uint CapAutoInvalData = 1u << 12;
    public const uint CapReaddirplus = 1u << 13;
    public const uint CapReaddirplusAuto = 1u << 14;
    public const uint CapWritebackCache = 1u << 16;
    public const uint CapParallelDirops = 1u << 18;
    public const uint CapNoOpenSupport = 1u << 17;
    public const uint CapNoOpendirSupport = 1u << 24;

    // fuse_conn_info field offsets.
    public const int ConnMaxWrite = 8;
    public const int ConnMaxRead = 12;
    public const int ConnMaxReadahead = 16;
    public const int ConnCapable = 20;
    public const int ConnWant = 24;
    public const int ConnMaxBackground = 28;

    // fuse_file_info bit word: writepage, direct_io, keep_cache, flush, nonseekable, flock_release, cache_readdir, noflush.
    public const uint FileInfoKeepCache = 0x4;
    public const uint FileInfoCacheReaddir = 0x40;
    public const uint FileInfoNoFlush = 0x80;

    public const int StatSize = 144;
    public const int EntryParamSize = 176;
    public const int FileInfoSize = 40;

    // st_mode file types.
    public const uint TypeMask = 0xF000;
    public const uint TypeRegular = 0x8000;

    // open(2) flags.
    public const int OpenAccessMode = 0x3;
    public const int OpenWriteOnly = 0x1;
    public const int OpenCreate = 0x40;
    public const int OpenExclusive = 0x80;
    public const int OpenTruncate = 0x200;

    // errno values: ENOENT from a reply means the kernel dropped the request (interrupted); ENOSYS is not in FsStatus.
    public const int ENOENT = 2;
    public const int ENOSYS = 38;

    [StructLayout(LayoutKind.Sequential)]
    public struct FuseArgs
    {
        public int Argc;
        public byte** Argv;
        public int Allocated;
    }

    [StructLayout(LayoutKind.Explicit, Size = StatSize)]
    public struct Stat
    {
        [FieldOffset(0)] public ulong Dev;
        [FieldOffset(8)] public ulong Ino;
        [FieldOffset(16)] public ulong Nlink;
        [FieldOffset(24)] public uint Mode;
        [FieldOffset(28)] public uint Uid;
        [FieldOffset(32)] public uint Gid;
        [FieldOffset(40)] public ulong Rdev;
        [FieldOffset(48)] public long Size;
        [FieldOffset(56)] public long Blksize;
        [FieldOffset(64)] public long Blocks;
        [FieldOffset(72)] public long AtimeSec;
        [FieldOffset(80)] public long AtimeNsec;
        [FieldOffset(88)] public long MtimeSec;
        [FieldOffset(96)] public long MtimeNsec;
        [FieldOffset(104)] public long CtimeSec;
        [FieldOffset(112)] public long CtimeNsec;
    }

    [StructLayout(LayoutKind.Explicit, Size = EntryParamSize)]
    public struct EntryParam
    {
        [FieldOffset(0)] public ulong Ino;
        [FieldOffset(8)] public ulong Generation;
        [FieldOffset(16)] public Stat Attr;
        [FieldOffset(160)] public double AttrTimeout;
        [FieldOffset(168)] public double EntryTimeout;
    }

    /// <summary>
    /// struct fuse_file_info. libfuse passes one that lives on its worker's stack for the length of the callback only:
    /// read what is needed in the callback, and reply from a copy of our own.
    /// </summary>
    [StructLayout(LayoutKind.Explicit, Size = FileInfoSize)]
    public struct FileInfo
    {
        [FieldOffset(0)] public int Flags;
        [FieldOffset(4)] public uint Bits;
        [FieldOffset(16)] public ulong Fh;
        [FieldOffset(24)] public ulong LockOwner;
        [FieldOffset(32)] public uint PollEvents;
    }

    /// <summary>struct fuse_ctx: who made a request (valid until the request is answered).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Context
    {
        public uint Uid;
        public uint Gid;
        public int Pid;
        public uint Umask;
    }

    [StructLayout(LayoutKind.Explicit, Size = 112)]
    public struct StatVfs
    {
        [FieldOffset(0)] public ulong Bsize;
        [FieldOffset(8)] public ulong Frsize;
        [FieldOffset(16)] public ulong Blocks;
        [FieldOffset(24)] public ulong Bfree;
        [FieldOffset(32)] public ulong Bavail;
        [FieldOffset(40)] public ulong Files;
        [FieldOffset(48)] public ulong Ffree;
        [FieldOffset(56)] public ulong Favail;
        [FieldOffset(64)] public ulong Fsid;
        [FieldOffset(72)] public ulong Flag;
        [FieldOffset(80)] public ulong Namemax;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct ForgetData
    {
        public ulong Ino;
        public ulong Nlookup;
    }

    [LibraryImport(Lib, EntryPoint = "fuse_session_new")]
    public static partial IntPtr SessionNew(FuseArgs* args, IntPtr ops, nuint opSize, IntPtr userdata);

    [LibraryImport(Lib, EntryPoint = "fuse_opt_free_args")]
    public static partial void OptFreeArgs(FuseArgs* args);

    [LibraryImport(Lib, EntryPoint = "fuse_session_mount", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SessionMount(IntPtr session, string mountpoint);

    [LibraryImport(Lib, EntryPoint = "fuse_session_unmount")]
    public static partial void SessionUnmount(IntPtr session);

    [LibraryImport(Lib, EntryPoint = "fuse_session_exit")]
    public static partial void SessionExit(IntPtr session);

    [LibraryImport(Lib, EntryPoint = "fuse_session_destroy")]
    public static partial void SessionDestroy(IntPtr session);

    [LibraryImport(Lib, EntryPoint = "fuse_session_loop_mt_312")]
    public static partial int SessionLoopMt(IntPtr session, IntPtr config);

    [LibraryImport(Lib, EntryPoint = "fuse_loop_cfg_create")]
    public static partial IntPtr LoopConfigCreate();

    [LibraryImport(Lib, EntryPoint = "fuse_loop_cfg_destroy")]
    public static partial void LoopConfigDestroy(IntPtr config);

    [LibraryImport(Lib, EntryPoint = "fuse_loop_cfg_set_max_threads")]
    public static partial void LoopConfigSetMaxThreads(IntPtr config, uint value);

    [LibraryImport(Lib, EntryPoint = "fuse_loop_cfg_set_idle_threads")]
    public static partial void LoopConfigSetIdleThreads(IntPtr config, uint value);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_err")]
    public static partial int ReplyErr(IntPtr req, int err);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_none")]
    public static partial void ReplyNone(IntPtr req);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_entry")]
    public static partial int ReplyEntry(IntPtr req, EntryParam* entry);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_attr")]
    public static partial int ReplyAttr(IntPtr req, Stat* attr, double timeout);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_open")]
    public static partial int ReplyOpen(IntPtr req, FileInfo* fileInfo);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_create")]
    public static partial int ReplyCreate(IntPtr req, EntryParam* entry, FileInfo* fileInfo);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_write")]
    public static partial int ReplyWrite(IntPtr req, nuint count);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_buf")]
    public static partial int ReplyBuf(IntPtr req, byte* buffer, nuint size);

    // fuse_buf flags and fuse_buf_copy_flags (fuse_common.h).
    public const int BufIsFd = 1 << 1;
    public const int BufFdSeek = 1 << 2;
    public const int BufSpliceMove = 1 << 3;

    /// <summary>struct fuse_buf: size_t size; enum fuse_buf_flags flags; void *mem; int fd; off_t pos (40 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct FuseBuf
    {
        public nuint Size;
        public int Flags;
        public IntPtr Mem;
        public int Fd;
        public long Pos;
    }

    /// <summary>struct fuse_bufvec with one buffer: size_t count, idx, off; struct fuse_buf buf[1] (64 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct FuseBufvec
    {
        public nuint Count;
        public nuint Idx;
        public nuint Off;
        public FuseBuf Buf;
    }

    /// <summary>Replies to a read with the bytes of a buffer vector; an fd buffer is spliced when the connection allows (0 or -errno; the request is answered either way).</summary>
    [LibraryImport(Lib, EntryPoint = "fuse_reply_data")]
    public static partial int ReplyData(IntPtr req, FuseBufvec* bufv, int flags);

    [LibraryImport(Lib, EntryPoint = "fuse_reply_statfs")]
    public static partial int ReplyStatfs(IntPtr req, StatVfs* stat);

    [LibraryImport(Lib, EntryPoint = "fuse_add_direntry")]
    public static partial nuint AddDirentry(IntPtr req, byte* buffer, nuint size, byte* name, Stat* stat, long nextOffset);

    [LibraryImport(Lib, EntryPoint = "fuse_add_direntry_plus")]
    public static partial nuint AddDirentryPlus(IntPtr req, byte* buffer, nuint size, byte* name, EntryParam* entry, long nextOffset);

    [LibraryImport(Lib, EntryPoint = "fuse_req_ctx")]
    public static partial Context* RequestContext(IntPtr req);

    /// <summary>Drops the kernel's dentry of <paramref name="name"/> (NUL-terminated UTF-8: the kernel checks the byte after it) and the parent's attributes.</summary>
    [LibraryImport(Lib, EntryPoint = "fuse_lowlevel_notify_inval_entry")]
    public static partial int NotifyInvalidateEntry(IntPtr session, ulong parent, byte* name, nuint nameLength);

    /// <summary>Drops the kernel's attributes of an inode and its cached data from <paramref name="offset"/> (length 0: to the end).</summary>
    [LibraryImport(Lib, EntryPoint = "fuse_lowlevel_notify_inval_inode")]
    public static partial int NotifyInvalidateInode(IntPtr session, ulong ino, long offset, long length);

    [LibraryImport(Lib, EntryPoint = "fuse_session_fd")]
    public static partial int SessionFd(IntPtr session);

    /// <summary>Processes one request read elsewhere (a supervisor's saved INIT, to prime a session that serves an initialised connection).</summary>
    [LibraryImport(Lib, EntryPoint = "fuse_session_process_buf")]
    public static partial void SessionProcessBuf(IntPtr session, FuseBuf* buffer);

    // libc: the supervisor's and the serving process's plumbing around the /dev/fuse descriptor.
    public const int FGetFd = 1;
    public const int FSetFd = 2;
    public const int FdCloexec = 1;
    public const short PollErr = 0x008;
    public const short PollHup = 0x010;
    public const short PollNval = 0x020;
    public const int PrSetPdeathsig = 1;
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;
    public const int SIGHUP = 1;
    public const int EINTR = 4;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    public const int AfUnix = 1;
    public const int SockStream = 1;
    public const int SockCloexec = 0x80000;
    public const int SolSocket = 1;
    public const int ScmRights = 1;

    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    /// <summary>struct msghdr (x86-64 and arm64: 56 bytes).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 56)]
    public struct MsgHdr
    {
        [FieldOffset(0)] public void* Name;
        [FieldOffset(8)] public uint NameLength;
        [FieldOffset(16)] public IoVec* Iov;
        [FieldOffset(24)] public nuint IovLength;
        [FieldOffset(32)] public void* Control;
        [FieldOffset(40)] public nuint ControlLength;
        [FieldOffset(48)] public int Flags;
    }

    /// <summary>A control message carrying one descriptor: struct cmsghdr (len, level, type) and the int (CMSG_SPACE(4) = 24 bytes).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 24)]
    public struct FdMessage
    {
        [FieldOffset(0)] public nuint Length;
        [FieldOffset(8)] public int Level;
        [FieldOffset(12)] public int Type;
        [FieldOffset(16)] public int Fd;
    }

    [LibraryImport("libc", EntryPoint = "socketpair", SetLastError = true)]
    public static partial int SocketPair(int domain, int type, int protocol, int* pair);

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    public static partial nint SendMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    public static partial nint RecvMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    public static partial int Fcntl(int fd, int command, int argument);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint count, int timeout);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    public static partial int Prctl(int option, nuint argument2, nuint argument3, nuint argument4, nuint argument5);

    /// <summary>Ends the process at once (no finalizers, no shutdown of the runtime or the cluster client).</summary>
    [LibraryImport("libc", EntryPoint = "_exit")]
    public static partial void ExitNow(int status);

    [LibraryImport("libc", EntryPoint = "getppid")]
    public static partial int GetParentPid();

    [LibraryImport("libc", EntryPoint = "getuid")]
    public static partial uint GetUid();

    [LibraryImport("libc", EntryPoint = "getgid")]
    public static partial uint GetGid();
}
