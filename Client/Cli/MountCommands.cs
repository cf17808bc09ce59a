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
    public const string MountUsage = "grainfs mount <mountpoint> [--root PATH] [--entry-timeout S] [--attr-timeout S] [--negative-timeout S] " +
        "[--metadata-cache N] [--read-ahead BLOCKS] [--max-read SIZE] [--uid U] [--gid G] [--mode OCTAL] [--allow-other] [--read-only] [--op-timeout S] [--nonempty]";

    public const string UmountUsage = "grainfs umount <mountpoint>";

    public static readonly string[] Switches = ["--allow-other", "--read-only", "--nonempty"];

    public static readonly string[] Options = ["--root", "--entry-timeout", "--attr-timeout", "--negative-timeout", "--metadata-cache", "--read-ahead", "--max-read", "--uid", "--gid", "--mode", "--op-timeout"];

    public static async Task<int> MountAsync(CliArgs args, GrainFsClientOptions clientOptions)
    {
        args.ExpectPositionals(1, MountUsage);
        var fuse = new FuseOptions
        {
            AllowOther = args.Has("--allow-other"),
            EntryTimeout = Seconds(args, "--entry-timeout", 60),
            AttrTimeout = Seconds(args, "--attr-timeout", 60),
            NegativeTimeout = Seconds(args, "--negative-timeout", 10),
            OperationTimeout = Seconds(args, "--op-timeout", 60),
            Uid = Id(args, "--uid"),
            Gid = Id(args, "--gid"),
        };
        if (args.Value("--root") is { } root)
        {
            if (FsPath.TryNormalize(root, out var normalized, out var error) != FsStatus.Ok)
            {
                throw new UsageException($"--root: {error}");
            }

            fuse.Root = normalized;
        }

        if (args.Value("--mode") is { } mode)
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

        if (args.Value("--max-read") is { } maxRead)
        {
            if (!ByteSize.TryParse(maxRead, out var bytes, out var error) || bytes < 4096 || bytes > (1 << 20))
            {
                throw new UsageException($"--max-read '{maxRead}': {error ?? "between 4KiB and 1MiB"}");
            }

            fuse.MaxRead = (int)bytes;
        }

        if (args.Value("--metadata-cache") is { } entries)
        {
            clientOptions.MetadataCacheEntries = int.TryParse(entries, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : throw new UsageException($"--metadata-cache '{entries}': a number of entries");
        }

        if (args.Value("--read-ahead") is { } readAhead)
        {
            clientOptions.ReadAheadBlocks = int.TryParse(readAhead, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : throw new UsageException($"--read-ahead '{readAhead}': a number of blocks");
        }

        clientOptions.MetadataTtl = fuse.AttrTimeout > clientOptions.MetadataTtl ? fuse.AttrTimeout : clientOptions.MetadataTtl;
        var mountPoint = args.Positionals[0];
        try
        {
            // Fail fast on the mount point before connecting anywhere.
            FuseMount.CheckMountPoint(mountPoint, args.Has("--nonempty"));
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
        await using var client = await GrainFsClient.ConnectAsync(clientOptions, loggers);
        var rootStat = await client.StatAsync(fuse.Root);
        if (!rootStat.IsOk || !rootStat.Value!.IsDirectory)
        {
            return Program.Fail(rootStat.IsOk ? FsStatus.NotADirectory : rootStat.Status, $"--root {fuse.Root}: {rootStat.Message ?? "not a directory"}");
        }

        FuseMount mount;
        try
        {
            mount = FuseMount.Mount(mountPoint, client, fuse, logger, args.Has("--nonempty"));
        }
        catch (Exception e) when (e is FuseMountException or DllNotFoundException)
        {
            var message = e is DllNotFoundException ? "libfuse3 is not installed (apt-get install fuse3)" : e.Message;
            return Program.Fail(FsStatus.IoError, message);
        }

        using (mount)
        {
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
            Console.Error.WriteLine($"grainfs: {fuse.Root} mounted at {mount.MountPoint}; Ctrl-C or `grainfs umount {mount.MountPoint}` unmounts");
            var status = await Task.Factory.StartNew(() => mount.Run(), TaskCreationOptions.LongRunning);
            return status == 0 ? 0 : Program.Fail(FsStatus.IoError, $"the FUSE session ended with status {status}");

            void Stop(PosixSignalContext context)
            {
                context.Cancel = true;
                mount.Unmount();
            }
        }
    }

    private static TimeSpan Seconds(CliArgs args, string name, double fallback)
    {
        var text = args.Value(name);
        if (text is null)
        {
            return TimeSpan.FromSeconds(fallback);
        }

        return double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var seconds) && seconds >= 0
            ? TimeSpan.FromSeconds(seconds)
            : throw new UsageException($"{name} '{text}': a number of seconds");
    }

    private static uint? Id(CliArgs args, string name) =>
        args.Value(name) is { } text
            ? uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : throw new UsageException($"{name} '{text}': a numeric id")
            : null;

    /// <summary>Detaches a mount, also one whose daemon died (lazily: open files keep working until closed).</summary>
    public static async Task<int> UmountAsync(CliArgs args)
    {
        args.ExpectPositionals(1, UmountUsage);
        var mountPoint = Path.GetFullPath(args.Positionals[0]);
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
