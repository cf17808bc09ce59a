using System.ComponentModel;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace GrainFs.Tests.Infrastructure;

/// <summary>
/// The kernel's mount table of this process (/proc/self/mountinfo), and a wait for a mount that is woken by the
/// kernel when the table changes (mountinfo is pollable: POLLPRI after any mount or unmount), so nothing re-reads
/// it on a timer.
/// </summary>
public static class MountTable
{
    private const short POLLIN = 0x1;
    private const short POLLPRI = 0x2;
    private const int EINTR = 4;
    private const int EFD_CLOEXEC = 0x80000;

    /// <summary>True when the kernel lists <paramref name="path"/> as a mount point.</summary>
    public static bool IsMounted(string path) => MountPoints().Contains(path);

    /// <summary>The mount points at or below <paramref name="folder"/>, for removing a folder without descending into a mount.</summary>
    public static IEnumerable<string> MountsUnder(string folder)
    {
        var prefix = folder.TrimEnd('/') + "/";
        return MountPoints().Where(m => m == folder || m.StartsWith(prefix, StringComparison.Ordinal)).ToList();
    }

    private static HashSet<string> MountPoints()
    {
        var points = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            if (line.Split(' ') is { Length: > 4 } fields)
            {
                points.Add(Unescape(fields[4]));
            }
        }

        return points;
    }

    // mountinfo writes space, tab, newline and backslash in paths as \040, \011, \012 and \134.
    private static string Unescape(string field)
    {
        if (!field.Contains('\\', StringComparison.Ordinal))
        {
            return field;
        }

        var text = new StringBuilder(field.Length);
        for (var i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && i + 3 < field.Length && IsOctal(field[i + 1]) && IsOctal(field[i + 2]) && IsOctal(field[i + 3]))
            {
                text.Append((char)(((field[i + 1] - '0') * 64) + ((field[i + 2] - '0') * 8) + (field[i + 3] - '0')));
                i += 3;
            }
            else
            {
                text.Append(field[i]);
            }
        }

        return text.ToString();

        static bool IsOctal(char c) => c is >= '0' and <= '7';
    }

    /// <summary>
    /// Waits until <paramref name="mountPoint"/> is mounted, waking on each change of the mount table. Returns true
    /// once it is mounted, false if <paramref name="giveUp"/> (the daemon's exit, typically) completes first; throws
    /// <see cref="TimeoutException"/> after <paramref name="timeout"/>.
    /// </summary>
    public static async Task<bool> WaitForMountAsync(string mountPoint, Task giveUp, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var changes = new Changes();
        var watching = Task.Factory.StartNew(() => changes.WaitUntil(() => IsMounted(mountPoint)), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            await Task.WhenAny(watching, giveUp).WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            changes.Wake();
            await ((Task)watching).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        return await watching.ConfigureAwait(false);
    }

    /// <summary>
    /// A mountinfo descriptor opened before the first look at the table (so a mount made in between still wakes the
    /// wait) and an eventfd that wakes the blocked poll when the wait is abandoned.
    /// </summary>
    private sealed class Changes : IDisposable
    {
        private readonly SafeFileHandle _mountInfo = File.OpenHandle("/proc/self/mountinfo");
        private readonly int _wake;

        public Changes()
        {
            _wake = EventFd(0, EFD_CLOEXEC);
            if (_wake < 0)
            {
                var error = Marshal.GetLastPInvokeError();
                _mountInfo.Dispose();
                throw new Win32Exception(error, "eventfd");
            }
        }

        /// <summary>Blocks until <paramref name="condition"/> holds (true) or <see cref="Wake"/> is called (false).</summary>
        public bool WaitUntil(Func<bool> condition)
        {
            var fds = new PollFd[]
            {
                new() { Fd = (int)_mountInfo.DangerousGetHandle(), Events = POLLPRI },
                new() { Fd = _wake, Events = POLLIN },
            };
            while (!condition())
            {
                fds[0].Revents = 0;
                fds[1].Revents = 0;
                if (Poll(fds, (nuint)fds.Length, -1) < 0)
                {
                    var error = Marshal.GetLastPInvokeError();
                    if (error == EINTR)
                    {
                        continue;
                    }

                    throw new Win32Exception(error, "poll /proc/self/mountinfo");
                }

                if ((fds[1].Revents & POLLIN) != 0)
                {
                    return condition();
                }
            }

            return true;
        }

        public void Wake()
        {
            ulong one = 1;
            _ = Write(_wake, ref one, sizeof(ulong));
        }

        public void Dispose()
        {
            _ = Close(_wake);
            _mountInfo.Dispose();
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [DllImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static extern int Poll([In, Out] PollFd[] fds, nuint count, int timeoutMs);

    [DllImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    private static extern int EventFd(uint initial, int flags);

    [DllImport("libc", EntryPoint = "write", SetLastError = true)]
    private static extern nint Write(int fd, ref ulong value, nuint count);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int Close(int fd);
}
