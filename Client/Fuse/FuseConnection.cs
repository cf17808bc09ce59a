using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace GrainFs.Fuse;

/// <summary>
/// The files a supervised mount keeps while it lives, in a folder of its own (mode 0700) beside the order socket:
/// /run/grainfs for root, /tmp/grainfs-UID otherwise, named by the mount point's hash. They outlive the serving
/// process, not the supervisor, which removes the folder when it ends.
/// </summary>
public sealed class MountState
{
    private MountState(string folder) => Folder = folder;

    /// <summary>The folder.</summary>
    public string Folder { get; }

    /// <summary>The supervisor's process id.</summary>
    public string SupervisorPidFile => Path.Combine(Folder, "supervisor.pid");

    /// <summary>The kernel's INIT request as the supervisor read it.</summary>
    public string InitFile => Path.Combine(Folder, "init");

    /// <summary>The serving process's id, written once it serves.</summary>
    public string ServingFile => Path.Combine(Folder, "serving");

    /// <summary>The inode journal (<see cref="GrainFs.Vfs.InodeJournal"/>).</summary>
    public string JournalFile => Path.Combine(Folder, "inodes");

    /// <summary>Announced read orders, one file per job, taken up again by the next serving process.</summary>
    public string OrdersFolder => Path.Combine(Folder, "orders");

    /// <summary>The state folder of the mount at <paramref name="mountPoint"/> (a full path) for user <paramref name="uid"/>.</summary>
    public static MountState For(string mountPoint, uint uid) => new(PathOf(mountPoint, uid, ".d"));

    /// <summary>
    /// Where a mount's own files live (<paramref name="suffix"/>: ".d" for the state folder, ".sock" for the order
    /// socket): /run/grainfs for root, /tmp/grainfs-UID otherwise, named by the first 16 hex digits of the SHA-256 of
    /// the mount point.
    /// </summary>
    public static string PathOf(string mountPoint, uint uid, string suffix) =>
        Path.Combine(uid == 0 ? "/run/grainfs" : $"/tmp/grainfs-{uid}", Hex16(mountPoint) + suffix);

    /// <summary>The first 16 hex digits of the SHA-256 of <paramref name="text"/>'s UTF-8: a file name for any text.</summary>
    internal static string Hex16(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16];

    /// <summary>An existing state folder (a serving process is told where it is).</summary>
    public static MountState At(string folder) => new(folder);

    /// <summary>Makes the folder afresh (what a supervisor killed outright left there is removed).</summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void Create()
    {
        if (Directory.Exists(Folder))
        {
            Directory.Delete(Folder, recursive: true);
        }

        Directory.CreateDirectory(Folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.SetUnixFileMode(Folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Directory.CreateDirectory(OrdersFolder);
    }

    /// <summary>Removes the folder.</summary>
    public void Delete()
    {
        try
        {
            Directory.Delete(Folder, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Gone already, or busy: a later mount at the same point makes it afresh.
        }
    }

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="file"/> whole or not at all (a new file renamed over it).</summary>
    public static void WriteAtomically(string file, ReadOnlySpan<byte> bytes)
    {
        var temporary = file + ".tmp";
        using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write))
        {
            stream.Write(bytes);
        }

        File.Move(temporary, file, overwrite: true);
    }

    /// <summary>A process id read from <paramref name="file"/>, or 0.</summary>
    public static int ReadPid(string file)
    {
        try
        {
            return int.TryParse(File.ReadAllText(file).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
    }
}

/// <summary>
/// A kernel FUSE connection held by a <see cref="FuseSupervisor"/> and served by this process: the descriptor it
/// inherited, the kernel's INIT request, which serving process this is (1 for the first), and the state folder.
/// Read from the environment the supervisor starts its serving process with.
/// </summary>
public sealed record FuseConnection(int Fd, byte[] Init, int Generation, MountState State)
{
    internal const string FdVariable = "GRAINFS_FUSE_FD";
    internal const string HandoffVariable = "GRAINFS_FUSE_HANDOFF";
    internal const string StateVariable = "GRAINFS_FUSE_STATE";
    internal const string GenerationVariable = "GRAINFS_FUSE_GENERATION";
    internal const string ParentVariable = "GRAINFS_FUSE_SUPERVISOR";

    /// <summary>The socket the connection arrives on (the first serving process), else -1.</summary>
    internal int Handoff { get; init; } = -1;

    /// <summary>
    /// True for the first serving process until <see cref="Receive"/>: the supervisor mounts only once it serves, so
    /// that a mount that appears is one that answers (a cluster that cannot be reached leaves nothing mounted).
    /// </summary>
    public bool IsPending => Fd < 0;

    /// <summary>The inode journal.</summary>
    public string JournalPath => State.JournalFile;

    /// <summary>Handle numbers of this process start above this (each serving process has its own range).</summary>
    public ulong HandleBase => (ulong)Generation << 40;

    /// <summary>
    /// The connection this process was started to serve, or null when it was not started by a supervisor. Ties this
    /// process's life to the supervisor's (killed when it dies), so a supervisor killed outright takes the mount with it.
    /// </summary>
    public static FuseConnection? FromEnvironment()
    {
        var fdText = Environment.GetEnvironmentVariable(FdVariable);
        var handoffText = Environment.GetEnvironmentVariable(HandoffVariable);
        if (fdText is null && handoffText is null)
        {
            return null;
        }

        var state = MountState.At(Environment.GetEnvironmentVariable(StateVariable) ?? throw new InvalidOperationException($"{StateVariable} is not set"));
        var generation = int.Parse(Environment.GetEnvironmentVariable(GenerationVariable) ?? "1", CultureInfo.InvariantCulture);
        var supervisor = int.Parse(Environment.GetEnvironmentVariable(ParentVariable) ?? "0", CultureInfo.InvariantCulture);
        _ = Native.Prctl(Native.PrSetPdeathsig, Native.SIGKILL, 0, 0, 0);
        if (Native.GetParentPid() != supervisor)
        {
            throw new InvalidOperationException($"the supervisor (process {supervisor}) is gone");
        }

        if (fdText is null)
        {
            var handoff = int.Parse(handoffText!, CultureInfo.InvariantCulture);
            _ = Native.Fcntl(handoff, Native.FSetFd, Native.FdCloexec);
            return new FuseConnection(-1, [], generation, state) { Handoff = handoff };
        }

        // Not handed on to anything this process starts.
        var fd = int.Parse(fdText, CultureInfo.InvariantCulture);
        _ = Native.Fcntl(fd, Native.FSetFd, Native.FdCloexec);
        return new FuseConnection(fd, File.ReadAllBytes(state.InitFile), generation, state);
    }

    /// <summary>Tells the supervisor this process can serve, and receives the connection and the kernel's INIT once it has mounted.</summary>
    public unsafe FuseConnection Receive()
    {
        if (!IsPending)
        {
            return this;
        }

        try
        {
            var ready = (byte)'R';
            if (Native.Write(Handoff, &ready, 1) != 1)
            {
                throw new FuseMountException($"the supervisor is gone ({Marshal.GetLastPInvokeErrorMessage()})");
            }

            var init = new byte[64 << 10];
            var control = default(Native.FdMessage);
            nint received;
            fixed (byte* bytes = init)
            {
                var vector = new Native.IoVec { Base = bytes, Length = (nuint)init.Length };
                var message = new Native.MsgHdr { Iov = &vector, IovLength = 1, Control = &control, ControlLength = (nuint)sizeof(Native.FdMessage) };
                while ((received = Native.RecvMsg(Handoff, &message, 0)) < 0 && Marshal.GetLastPInvokeError() == Native.EINTR)
                {
                }
            }

            if (received <= 0 || control.Level != Native.SolSocket || control.Type != Native.ScmRights)
            {
                throw new FuseMountException("the supervisor did not mount (its message says why)");
            }

            _ = Native.Fcntl(control.Fd, Native.FSetFd, Native.FdCloexec);
            return this with { Fd = control.Fd, Init = init[..(int)received], Handoff = -1 };
        }
        finally
        {
            _ = Native.Close(Handoff);
        }
    }
}
