using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using GrainFs.Client;
using GrainFs.DataPlane;
using GrainFs.Fuse;
using Microsoft.Extensions.Logging;

namespace GrainFs.Cli;

/// <summary>`grainfs mount` (the FUSE daemon, in the foreground) and `grainfs umount`.</summary>
internal static class MountCommands
{
    public static Command BuildMount()
    {
        var mountPoint = Commands.Positional("mountpoint", "an empty local folder to mount at");
        var root = Commands.Valued("--root", "PATH", "the GrainFS path shown at the mount point (default /)");
        var entryTimeout = Commands.Valued("--entry-timeout", "S", "seconds the kernel trusts names (default 60)");
        var attrTimeout = Commands.Valued("--attr-timeout", "S", "seconds the kernel trusts attributes (default 60)");
        var negativeTimeout = Commands.Valued("--negative-timeout", "S", "seconds the kernel remembers a missing name (default 10)");
        var metadataCache = Commands.Valued("--metadata-cache", "N", "entries in the daemon's metadata cache (default 200000)");
        var readAhead = Commands.Valued("--read-ahead", "BLOCKS", "blocks filled ahead of a sequential reader that meets cold data (default 4)");
        var maxRead = Commands.Valued("--max-read", "SIZE", "largest read request, 4KiB-1MiB (default 1MiB)");
        var kernelReadAhead = Commands.Valued("--kernel-read-ahead", "SIZE", "the kernel's read-ahead window for sequential readers, 128KiB-64MiB (default 4MiB; needs root)");
        var uid = Commands.Valued("--uid", "U", "owner reported for every entry (default: the mounting user)");
        var gid = Commands.Valued("--gid", "G", "group reported for every entry (default: the mounting user's)");
        var mode = Commands.Valued("--mode", "OCTAL", "permission bits reported for every entry (directories get x where r is set)");
        var allowOther = Commands.Switch("--allow-other", "let other users use the mount (non-root needs user_allow_other in /etc/fuse.conf)");
        var readOnly = Commands.Switch("--read-only", "mount read-only: every change is EROFS (and opens skip a round trip per file)");
        var opTimeout = Commands.Valued("--op-timeout", "S", "deadline of every request, EIO after it (default 60)");
        var nonEmpty = Commands.Switch("--nonempty", "allow mounting over a non-empty folder");
        var noSupervisor = Commands.Switch("--no-supervisor", "serve in this process only (by default a supervisor keeps the mount and restarts the serving process when it dies)");
        var upgrade = Commands.Switch("--upgrade", "replace the serving process of the running mount at MOUNTPOINT with one started from the installed binary (readers pause, files stay open)");
        var command = new Command("mount", "serve GrainFS through FUSE at a local folder, read-write unless --read-only, in the foreground (Ctrl-C or SIGTERM unmounts); a supervisor keeps the mount alive across deaths of the serving process")
        {
            mountPoint, root, entryTimeout, attrTimeout, negativeTimeout, metadataCache, readAhead, maxRead, kernelReadAhead, uid, gid, mode, allowOther, readOnly, opTimeout, nonEmpty, noSupervisor, upgrade,
        };
        command.SetAction((parse, _) =>
        {
            if (parse.GetValue(upgrade))
            {
                return UpgradeAsync(parse.GetValue(mountPoint)!);
            }

            var fuse = new FuseOptions
            {
                AllowOther = parse.GetValue(allowOther),
                ReadOnly = parse.GetValue(readOnly),
                EntryTimeout = Seconds(parse.GetValue(entryTimeout), "--entry-timeout", 60),
                AttrTimeout = Seconds(parse.GetValue(attrTimeout), "--attr-timeout", 60),
                NegativeTimeout = Seconds(parse.GetValue(negativeTimeout), "--negative-timeout", 10),
                OperationTimeout = Seconds(parse.GetValue(opTimeout), "--op-timeout", 60),
                Uid = Id(parse.GetValue(uid), "--uid"),
                Gid = Id(parse.GetValue(gid), "--gid"),
            };
            return MountAsync(parse.GetValue(mountPoint)!, fuse, Commands.ClientOptions(parse), parse.GetValue(nonEmpty), parse.GetValue(noSupervisor),
                parse.GetValue(root), parse.GetValue(mode), parse.GetValue(maxRead), parse.GetValue(kernelReadAhead), parse.GetValue(metadataCache), parse.GetValue(readAhead));
        });
        return command;
    }

    public static Command BuildUmount()
    {
        var mountPoint = Commands.Positional("mountpoint", "a GrainFS FUSE mount point");
        var command = new Command("umount", "detach a FUSE mount, also one whose daemon died (lazily: open files keep working until closed)") { mountPoint };
        command.SetAction((parse, _) => UmountAsync(parse.GetValue(mountPoint)!));
        return command;
    }

    private static async Task<int> MountAsync(string mountPoint, FuseOptions fuse, GrainFsClientOptions clientOptions, bool allowNonEmpty, bool noSupervisor, string? root, string? mode, string? maxRead, string? kernelReadAhead, string? entries, string? readAhead)
    {
        if (root is not null)
        {
            if (FsPath.TryNormalize(root, out var normalized, out var error) != FsStatus.Ok)
            {
                throw new UsageException($"--root: {error}");
            }

            fuse.Root = normalized;
        }

        if (mode is not null)
        {
            try
            {
                fuse.Mode = Convert.ToInt32(mode, 8) is var bits and >= 0 and <= 0xFFF ? bits : throw new FormatException();
            }
            catch (Exception e) when (e is FormatException or ArgumentException or OverflowException)
            {
                throw new UsageException($"--mode '{mode}': an octal permission mode such as 0755");
            }
        }

        if (maxRead is not null)
        {
            if (!ByteSize.TryParse(maxRead, out var bytes, out var error) || bytes < 4096 || bytes > (1 << 20))
            {
                throw new UsageException($"--max-read '{maxRead}': {error ?? "between 4KiB and 1MiB"}");
            }

            fuse.MaxRead = (int)bytes;
        }

        if (kernelReadAhead is not null)
        {
            if (!ByteSize.TryParse(kernelReadAhead, out var bytes, out var error) || bytes < (128 << 10) || bytes > (64 << 20))
            {
                throw new UsageException($"--kernel-read-ahead '{kernelReadAhead}': {error ?? "between 128KiB and 64MiB"}");
            }

            fuse.KernelReadAhead = (int)bytes;
        }

        if (entries is not null)
        {
            clientOptions.MetadataCacheEntries = int.TryParse(entries, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : throw new UsageException($"--metadata-cache '{entries}': a number of entries");
        }

        if (readAhead is not null)
        {
            clientOptions.ReadAheadBlocks = int.TryParse(readAhead, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : throw new UsageException($"--read-ahead '{readAhead}': a number of blocks");
        }

        clientOptions.MetadataTtl = fuse.AttrTimeout > clientOptions.MetadataTtl ? fuse.AttrTimeout : clientOptions.MetadataTtl;

        // Other clients' closes reach this kernel at once (inode and entry invalidations), whatever its timeouts.
        clientOptions.WatchChanges = true;
        FuseConnection? connection;
        try
        {
            // A serving process started by a supervisor gets the supervisor's connection; its mount point is mounted.
            connection = FuseConnection.FromEnvironment();
            if (connection is null)
            {
                // Fail fast on the mount point before connecting anywhere.
                mountPoint = FuseMount.CheckMountPoint(mountPoint, allowNonEmpty);
            }
        }
        catch (FuseMountException e)
        {
            return Program.Fail(FsStatus.InvalidArgument, e.Message);
        }

        using var loggers = LoggerFactory.Create(b => b.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        }).SetMinimumLevel(LogLevel.Information).AddFilter("Orleans", LogLevel.Warning).AddFilter("Microsoft", LogLevel.Warning));
        var logger = loggers.CreateLogger("GrainFs.Fuse");
        var shown = Path.TrimEndingDirectorySeparator(Path.GetFullPath(mountPoint));
        var ready = $"grainfs: {fuse.Root} mounted at {shown}; Ctrl-C or `grainfs umount {shown}` unmounts";
        if (connection is null && !noSupervisor && !OperatingSystem.IsWindows())
        {
            try
            {
                return FuseSupervisor.Run(mountPoint, fuse, ServingProcess(), () => Console.Error.WriteLine(ready), loggers.CreateLogger("GrainFs.Fuse.Supervisor"));
            }
            catch (Exception e) when (e is FuseMountException or DllNotFoundException)
            {
                return Program.Fail(FsStatus.IoError, e is DllNotFoundException ? "libfuse3 is not installed (apt-get install fuse3)" : e.Message);
            }
        }

        await using var client = await GrainFsClient.ConnectAsync(clientOptions, loggers);
        var rootStat = await client.StatAsync(fuse.Root);
        if (!rootStat.IsOk || !rootStat.Value!.IsDirectory)
        {
            return Program.Fail(rootStat.IsOk ? FsStatus.NotADirectory : rootStat.Status, $"--root {fuse.Root}: {rootStat.Message ?? "not a directory"}");
        }

        FuseMount mount;
        try
        {
            // The first serving process: the supervisor mounts now that the cluster answers and the root is there.
            connection = connection?.Receive();
            mount = FuseMount.Mount(mountPoint, client, fuse, logger, allowNonEmpty, connection);
        }
        catch (Exception e) when (e is FuseMountException or DllNotFoundException)
        {
            var message = e is DllNotFoundException ? "libfuse3 is not installed (apt-get install fuse3)" : e.Message;
            return Program.Fail(FsStatus.IoError, message);
        }

        using (mount)
        {
            // Announced read orders (the Python package's sampler, grainfs.prefetch) reach this daemon's client here.
            await using var orders = OrderSocket.TryListen(mount.MountPoint, fuse.Root, fuse.AllowOther, client, logger, connection?.State.OrdersFolder);
            orders?.RestoreKept();
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, connection is null ? Stop : Ignore);
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, connection is null ? Stop : HandOver);
            if (connection is null)
            {
                Console.Error.WriteLine(ready);
            }
            else
            {
                // The supervisor waits for this before it tells the user the mount serves.
                MountState.WriteAtomically(connection.State.ServingFile, System.Text.Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(CultureInfo.InvariantCulture)));
            }

            var status = await Task.Factory.StartNew(() => mount.Run(), TaskCreationOptions.LongRunning);
            return status == 0 ? 0 : Program.Fail(FsStatus.IoError, $"the FUSE session ended with status {status}");

            void Stop(PosixSignalContext context)
            {
                context.Cancel = true;
                mount.Unmount();
            }

            // Ctrl-C reaches the whole process group: the supervisor decides.
            static void Ignore(PosixSignalContext context) => context.Cancel = true;

            void HandOver(PosixSignalContext context)
            {
                context.Cancel = true;
                _ = Task.Run(() => mount.HandOver(TimeSpan.FromSeconds(30)));
            }
        }
    }

    /// <summary>How the supervisor starts a serving process: this program again, with the same arguments.</summary>
    private static ProcessStartInfo ServingProcess()
    {
        var host = Environment.ProcessPath ?? throw new FuseMountException("cannot tell which program this is, to start the serving process");
        var args = Environment.GetCommandLineArgs();
        var start = new ProcessStartInfo(host) { UseShellExecute = false };
        if (string.Equals(Path.GetFileNameWithoutExtension(host), "dotnet", StringComparison.Ordinal))
        {
            start.ArgumentList.Add(args[0]); // dotnet grainfs.dll …
        }

        foreach (var arg in args.Skip(1))
        {
            start.ArgumentList.Add(arg);
        }

        return start;
    }

    private static async Task<int> UpgradeAsync(string mountPoint)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(mountPoint));
        try
        {
            var (old, now) = await FuseSupervisor.UpgradeAsync(full, TimeSpan.FromSeconds(120));
            Console.WriteLine($"{full}: serving process {old} replaced by {now}");
            return 0;
        }
        catch (FuseMountException e)
        {
            return Program.Fail(FsStatus.InvalidArgument, e.Message);
        }
    }

    private static TimeSpan Seconds(string? text, string name, double fallback)
    {
        if (text is null)
        {
            return TimeSpan.FromSeconds(fallback);
        }

        // A request's deadline becomes a timer, which takes at most int.MaxValue milliseconds (24.8 days).
        const double Max = int.MaxValue / 1000;
        return double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var seconds) && seconds >= 0 && seconds <= Max
            ? TimeSpan.FromSeconds(seconds)
            : throw new UsageException($"{name} '{text}': a number of seconds from 0 to {Max:0}");
    }

    private static uint? Id(string? text, string name) =>
        text is not null
            ? uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : throw new UsageException($"{name} '{text}': a numeric id")
            : null;

    /// <summary>Detaches a mount, also one whose daemon died (lazily: open files keep working until closed).</summary>
    private static async Task<int> UmountAsync(string path)
    {
        var mountPoint = Path.GetFullPath(path);
        if (!IsMounted(mountPoint))
        {
            return Program.Fail(FsStatus.InvalidArgument, $"{mountPoint} is not a mount point");
        }

        foreach (var (tool, toolArgs) in new[] { ("fusermount3", new[] { "-u", "-z", mountPoint }), ("umount", new[] { "-l", mountPoint }) })
        {
            try
            {
                using var process = Process.Start(new ProcessStartInfo(tool, toolArgs) { RedirectStandardError = true, RedirectStandardOutput = true })!;
                var error = await process.StandardError.ReadToEndAsync();
                await process.WaitForExitAsync();
                if (process.ExitCode == 0 && !IsMounted(mountPoint))
                {
                    Console.WriteLine($"Unmounted {mountPoint}");
                    return 0;
                }

                Console.Error.WriteLine($"grainfs: {tool}: {error.Trim()}");
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // Not installed: try the next tool.
            }
        }

        return Program.Fail(FsStatus.Busy, $"could not unmount {mountPoint} (as a non-root user, fusermount3 from the fuse3 package is needed)");
    }

    /// <summary>True when /proc/self/mountinfo lists <paramref name="mountPoint"/>.</summary>
    public static bool IsMounted(string mountPoint)
    {
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            var fields = line.Split(' ');
            if (fields.Length > 4 && Unescape(fields[4]) == mountPoint)
            {
                return true;
            }
        }

        return false;
    }

    private static string Unescape(string field) =>
        field.Replace("\\040", " ", StringComparison.Ordinal).Replace("\\011", "\t", StringComparison.Ordinal).Replace("\\012", "\n", StringComparison.Ordinal).Replace("\\134", "\\", StringComparison.Ordinal);
}
