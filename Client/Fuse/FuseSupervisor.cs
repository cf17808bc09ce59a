using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace GrainFs.Fuse;

/// <summary>
/// What `grainfs mount` runs: a small process that mounts, holds the kernel's FUSE connection (/dev/fuse) and keeps it
/// served by a child process it starts, and starts again when the child dies (a crash, OOM, SIGKILL) or is to be
/// replaced (<see cref="HandOverSignal"/>, `grainfs mount --upgrade`). The kernel keeps the mount while any process
/// holds the connection, so readers see a pause, not "Transport endpoint is not connected": the kernel's INIT, which
/// only the first server sees, is saved for the next ones (<see cref="FuseConnection"/>); the inode numbers the kernel
/// was given are kept in a journal; the requests a dead child had taken are sent again (FUSE_NOTIFY_RESEND).
/// SIGTERM or SIGINT unmounts and stops the child; a supervisor killed outright takes its child with it.
/// </summary>
public sealed partial class FuseSupervisor
{
    /// <summary>A serving process that hands over (on SIGTERM from its supervisor) exits with this.</summary>
    public const int HandOverExitCode = 75;

    /// <summary>The signal that makes a supervisor replace its serving process.</summary>
    public const PosixSignal HandOverSignal = PosixSignal.SIGHUP;

    private const int FuseInit = 26;
    private static readonly TimeSpan LongestBackoff = TimeSpan.FromSeconds(10);

    private readonly string _mountPoint;
    private readonly MountState _state;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private IntPtr _session;
    private IntPtr _ops;
    private int _fd = -1;
    private Process? _child;
    private volatile bool _stopping;
    private volatile bool _handingOver;

    private FuseSupervisor(string mountPoint, MountState state, ILogger logger)
    {
        _mountPoint = mountPoint;
        _state = state;
        _logger = logger;
    }

    /// <summary>
    /// Mounts at <paramref name="mountPoint"/> (checked already), serves it through child processes started as
    /// <paramref name="child"/> until unmounted or stopped, and returns the exit status: 0 after an unmount or a stop,
    /// the first child's status when it could not start serving (a cluster not reached, a bad root). <paramref name="ready"/>
    /// runs once, when the first child serves.
    /// </summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public static int Run(string mountPoint, FuseOptions options, ProcessStartInfo child, Action ready, ILogger logger)
    {
        var state = MountState.For(mountPoint, Native.GetUid());
        state.Create();
        MountState.WriteAtomically(state.SupervisorPidFile, System.Text.Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(CultureInfo.InvariantCulture)));
        var supervisor = new FuseSupervisor(mountPoint, state, logger);
        try
        {
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, supervisor.OnStop);
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, supervisor.OnStop);
            using var sighup = PosixSignalRegistration.Create(HandOverSignal, supervisor.OnHandOver);
            var status = 0;
            // One thread starts every child and lives as long as the supervisor: a child asks to be killed when the
            // thread that started it ends (PR_SET_PDEATHSIG), not the process.
            Exception? failure = null;
            var loop = new Thread(() =>
            {
                try
                {
                    status = supervisor.Supervise(child, options, ready);
                }
                catch (Exception e)
                {
                    failure = e;
                }
            })
            { Name = "grainfs-supervisor", IsBackground = false };
            loop.Start();
            loop.Join();
            if (failure is not null)
            {
                throw failure is FuseMountException ? new FuseMountException(failure.Message) : new InvalidOperationException(failure.Message, failure);
            }

            return status;
        }
        finally
        {
            supervisor.Unmount();
            supervisor.Close();
            state.Delete();
        }
    }

    /// <summary>Asks the supervisor of the mount at <paramref name="mountPoint"/> to replace its serving process; returns the old and new process ids.</summary>
    public static async Task<(int Old, int New)> UpgradeAsync(string mountPoint, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var state = MountState.For(mountPoint, Native.GetUid());
        var supervisor = MountState.ReadPid(state.SupervisorPidFile);
        if (supervisor == 0 || Native.Kill(supervisor, 0) != 0)
        {
            throw new FuseMountException($"no supervised GrainFS mount at {mountPoint} (no supervisor in {state.Folder}; a mount made with --no-supervisor cannot be upgraded)");
        }

        var old = MountState.ReadPid(state.ServingFile);
        if (Native.Kill(supervisor, Native.SIGHUP) != 0)
        {
            throw new FuseMountException($"cannot signal the supervisor of {mountPoint} (process {supervisor}): {Marshal.GetLastPInvokeErrorMessage()}");
        }

        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            var serving = MountState.ReadPid(state.ServingFile);
            if (serving != 0 && serving != old)
            {
                return (old, serving);
            }

            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }

        throw new FuseMountException($"the serving process of {mountPoint} was not replaced within {timeout.TotalSeconds:0} s (it waits for files open for writing to be closed; see the mount's log)");
    }

    private unsafe void Mount(FuseOptions options)
    {
        _ops = (IntPtr)NativeMemory.AllocZeroed(Native.OpsCount, (nuint)sizeof(IntPtr));
        _session = FuseMount.NewSession(FuseMount.MountOptionsOf(options), _ops);
        if (Native.SessionMount(_session, _mountPoint) != 0)
        {
            throw new FuseMountException($"cannot mount at {_mountPoint} (see the libfuse message above; as a non-root user fusermount3 must be installed, and allow_other needs user_allow_other in /etc/fuse.conf)");
        }

        _fd = Native.SessionFd(_session);
        // The kernel sends INIT as soon as it mounts, and nothing else before it is answered. A read of /dev/fuse takes a
        // buffer as large as the biggest request the connection could negotiate.
        const int BufferSize = (1 << 20) + (64 << 10);
        var buffer = (byte*)NativeMemory.Alloc(BufferSize);
        try
        {
            nint read;
            while ((read = Native.Read(_fd, buffer, BufferSize)) < 0 && Marshal.GetLastPInvokeError() == Native.EINTR)
            {
            }

            if (read < 40 || *(int*)(buffer + 4) != FuseInit)
            {
                throw new FuseMountException($"the kernel's first FUSE request at {_mountPoint} was not INIT ({(read < 0 ? Marshal.GetLastPInvokeErrorMessage() : $"{read} bytes, opcode {*(int*)(buffer + 4)}")})");
            }

            MountState.WriteAtomically(_state.InitFile, new ReadOnlySpan<byte>(buffer, (int)read));
        }
        finally
        {
            NativeMemory.Free(buffer);
        }

        // The serving processes inherit the connection.
        if (Native.Fcntl(_fd, Native.FSetFd, 0) != 0)
        {
            throw new FuseMountException($"cannot hand the FUSE connection of {_mountPoint} on: {Marshal.GetLastPInvokeErrorMessage()}");
        }

        LogMounted(_logger, _mountPoint, _state.Folder);
    }

    /// <summary>
    /// Starts the first serving process and mounts once it says it can serve (connected, its root checked): the
    /// connection and the kernel's INIT reach it over a socket pair (SCM_RIGHTS). Returns the process, or its exit
    /// code when it ended first (nothing was mounted).
    /// </summary>
    private unsafe (Process? Child, int Code) StartFirst(ProcessStartInfo start, FuseOptions options)
    {
        var pair = stackalloc int[2];
        if (Native.SocketPair(Native.AfUnix, Native.SockStream | Native.SockCloexec, 0, pair) != 0)
        {
            throw new FuseMountException($"cannot make a socket pair for the serving process: {Marshal.GetLastPInvokeErrorMessage()}");
        }

        try
        {
            _ = Native.Fcntl(pair[1], Native.FSetFd, 0);
            start.Environment[FuseConnection.HandoffVariable] = pair[1].ToString(CultureInfo.InvariantCulture);
            var child = Spawn(start);
            _ = Native.Close(pair[1]);
            pair[1] = -1;
            if (child is null)
            {
                return (null, 0);
            }

            byte ready = 0;
            var poll = new Native.PollFd { Fd = pair[0], Events = PollIn };
            while (true)
            {
                if (Native.Poll(&poll, 1, 100) > 0 && Native.Read(pair[0], &ready, 1) == 1)
                {
                    break;
                }

                if (child.HasExited || _stopping || (poll.Revents & (Native.PollHup | Native.PollErr)) != 0)
                {
                    child.WaitForExit();
                    var code = child.ExitCode;
                    child.Dispose();
                    ForgetChild();
                    return (null, _stopping ? 0 : code);
                }
            }

            try
            {
                Mount(options);
            }
            catch
            {
                // The child reads the end of the socket and ends.
                child.WaitForExit(10_000);
                child.Dispose();
                ForgetChild();
                throw;
            }

            var init = File.ReadAllBytes(_state.InitFile);
            var control = new Native.FdMessage { Length = 20, Level = Native.SolSocket, Type = Native.ScmRights, Fd = _fd };
            fixed (byte* bytes = init)
            {
                var vector = new Native.IoVec { Base = bytes, Length = (nuint)init.Length };
                var message = new Native.MsgHdr { Iov = &vector, IovLength = 1, Control = &control, ControlLength = (nuint)sizeof(Native.FdMessage) };
                if (Native.SendMsg(pair[0], &message, 0) != init.Length)
                {
                    LogHandoffFailed(_logger, Marshal.GetLastPInvokeErrorMessage());
                }
            }

            return (child, 0);
        }
        finally
        {
            _ = Native.Close(pair[0]);
            if (pair[1] >= 0)
            {
                _ = Native.Close(pair[1]);
            }

            start.Environment.Remove(FuseConnection.HandoffVariable);
        }
    }

    private Process? Spawn(ProcessStartInfo start)
    {
        lock (_gate)
        {
            if (_stopping)
            {
                return null;
            }

            _child = Process.Start(start) ?? throw new InvalidOperationException("the serving process did not start");
            return _child;
        }
    }

    private void ForgetChild()
    {
        lock (_gate)
        {
            _child = null;
        }
    }

    private const short PollIn = 0x001;

    private int Supervise(ProcessStartInfo start, FuseOptions options, Action ready)
    {
        var generation = 1;
        var served = false;
        // Children in a row that ended before they served (a cluster down, a broken install): restarts back off.
        var failedStarts = 0;
        start.Environment[FuseConnection.StateVariable] = _state.Folder;
        start.Environment[FuseConnection.GenerationVariable] = "1";
        start.Environment[FuseConnection.ParentVariable] = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        var (first, code) = StartFirst(start, options);
        if (first is null)
        {
            return code;
        }

        Process? child = first;
        while (!_stopping)
        {
            if (child is null)
            {
                generation++;
                start.Environment[FuseConnection.FdVariable] = _fd.ToString(CultureInfo.InvariantCulture);
                start.Environment[FuseConnection.GenerationVariable] = generation.ToString(CultureInfo.InvariantCulture);
                child = Spawn(start);
                if (child is null)
                {
                    break;
                }
            }

            var current = child;
            using (current)
            {
                var serving = WaitUntilServing(child);
                if (serving && !served)
                {
                    served = true;
                    ready();
                }

                child.WaitForExit();
                ForgetChild();
                code = child.ExitCode;
                if (_stopping)
                {
                    break;
                }

                if (!ConnectionAlive())
                {
                    // Unmounted from outside (`grainfs umount`, fusermount3 -u): the child's loop ended with the connection.
                    LogEnded(_logger, _mountPoint, child.Id, Describe(code));
                    return code == HandOverExitCode ? 0 : code;
                }

                if (!served && code is > 0 and < 128 && code != HandOverExitCode)
                {
                    // The first serving process could not start (it said why): nothing to keep mounted.
                    return code;
                }

                var handedOver = _handingOver && code == HandOverExitCode;
                _handingOver = false;
                if (handedOver)
                {
                    LogHandedOver(_logger, child.Id, generation + 1);
                    failedStarts = 0;
                    child = null;
                    continue;
                }

                // A child that served is replaced at once (readers wait meanwhile); one that could not serve, after a while.
                failedStarts = serving ? 0 : failedStarts + 1;
                var backoff = failedStarts <= 2 ? TimeSpan.Zero : TimeSpan.FromMilliseconds(Math.Min(LongestBackoff.TotalMilliseconds, 250 << Math.Min(10, failedStarts - 3)));
                LogRestarting(_logger, child.Id, Describe(code), _mountPoint, backoff.TotalSeconds);
                if (backoff > TimeSpan.Zero)
                {
                    Thread.Sleep(backoff);
                }
            }

            child = null;
        }

        return 0;
    }

    /// <summary>Waits until the child says it serves (true) or ends (false).</summary>
    private bool WaitUntilServing(Process child)
    {
        while (!child.WaitForExit(50))
        {
            if (MountState.ReadPid(_state.ServingFile) == child.Id)
            {
                return true;
            }
        }

        return MountState.ReadPid(_state.ServingFile) == child.Id;
    }

    private static string Describe(int code) => code > 128 ? $"signal {code - 128}" : $"exit code {code}";

    /// <summary>False once the kernel ended the connection (an unmount, an abort).</summary>
    private unsafe bool ConnectionAlive()
    {
        lock (_gate)
        {
            if (_fd < 0)
            {
                return false;
            }

            var poll = new Native.PollFd { Fd = _fd, Events = 0 };
            return Native.Poll(&poll, 1, 0) >= 0 && (poll.Revents & (Native.PollErr | Native.PollNval)) == 0;
        }
    }

    private void OnStop(PosixSignalContext context)
    {
        context.Cancel = true;
        LogStopping(_logger, context.Signal.ToString(), _mountPoint);
        _stopping = true;
        Unmount();
        SignalChild(Native.SIGTERM);
    }

    private void OnHandOver(PosixSignalContext context)
    {
        context.Cancel = true;
        if (_stopping)
        {
            return;
        }

        _handingOver = true;
        LogHandingOver(_logger, _mountPoint);
        SignalChild(Native.SIGTERM);
    }

    private void SignalChild(int signal)
    {
        lock (_gate)
        {
            if (_child is { } child)
            {
                _ = Native.Kill(child.Id, signal);
            }
        }
    }

    /// <summary>Detaches the mount (lazily: open files keep being served until closed) and lets go of the connection.</summary>
    private void Unmount()
    {
        lock (_gate)
        {
            if (_session == IntPtr.Zero || _fd < 0)
            {
                return;
            }

            // libfuse closes the descriptor; the serving process's copy keeps the connection until it is done.
            Native.SessionUnmount(_session);
            _fd = -1;
        }
    }

    private void Close()
    {
        lock (_gate)
        {
            FuseMount.DestroySession(ref _session, ref _ops);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Supervisor mounted {MountPoint} (state in {Folder})")]
    private static partial void LogMounted(ILogger logger, string mountPoint, string folder);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Serving process {Pid} ended ({How}); another serves {MountPoint} (after {Backoff} s); readers wait meanwhile")]
    private static partial void LogRestarting(ILogger logger, int pid, string how, string mountPoint, double backoff);

    [LoggerMessage(Level = LogLevel.Information, Message = "Serving process {Pid} handed over; starting serving process {Generation}")]
    private static partial void LogHandedOver(ILogger logger, int pid, int generation);

    [LoggerMessage(Level = LogLevel.Information, Message = "Replacing the serving process of {MountPoint} (upgrade)")]
    private static partial void LogHandingOver(ILogger logger, string mountPoint);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Signal}: unmounting {MountPoint}")]
    private static partial void LogStopping(ILogger logger, string signal, string mountPoint);

    [LoggerMessage(Level = LogLevel.Error, Message = "Could not hand the FUSE connection to the first serving process: {Reason}")]
    private static partial void LogHandoffFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "{MountPoint} was unmounted; serving process {Pid} ended ({How})")]
    private static partial void LogEnded(ILogger logger, string mountPoint, int pid, string how);
}
