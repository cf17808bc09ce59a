using GrainFs.Client;
using GrainFs.DataPlane;

namespace GrainFs.Cli;

/// <summary>
/// The `grainfs` command line. Exit codes: 0 success, 1 a file-system error (message on stderr), 2 a usage
/// error, 3 the cluster could not be reached.
/// </summary>
public static class Program
{
    private const string Usage = """
        usage: grainfs [--cluster <conn>] [--cluster-id <id>] [--gateway-port <port>] <command>

        commands:
          mount <mountpoint> [options]   serve GrainFS through FUSE in the foreground (see README)
          umount <mountpoint>            detach a FUSE mount, also one whose daemon died
          fs mount <path> <uri> [--option k=v …] [--readonly] [--sync-interval S]
                                     attach file:///folder or s3://bucket/prefix at <path>
          fs unmount <path>          detach a mount
          fs mounts [--json]         list mounts (credentials redacted)
          fs ls [-l] [-R] [--json] <path>
          fs stat [--json] <path>
          fs cat <path>              write a file to stdout, through the cache
          fs load <path> [--parallel N]
                                     pre-warm a file or tree into the cache (progress on stderr)
          fs free <path>             drop a file's or tree's blocks from every worker
          fs pin <path>              load and pin (never evicted)
          fs unpin <path>
          fs ttl <path> <duration>   free the cached blocks after 30s, 10m, 2h, 7d …
          report [--json]            every worker's tiers: capacity, used, blocks, hit ratio, bytes served

        the cluster: --cluster <Npgsql connection string> or GRAINFS_CLUSTER (absent: the embedded silo on
        127.0.0.1, gateway port --gateway-port / GRAINFS_GATEWAY_PORT, default 30000). --host / GRAINFS_HOST
        names this machine for short-circuit reads (default: the machine's name).
        """;

    /// <summary>Entry point.</summary>
    public static async Task<int> Main(string[] args)
    {
        try
        {
            return await RunAsync(args);
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"grainfs: {e.Message}");
            return 2;
        }
        catch (GrainFsConnectException e)
        {
            Console.Error.WriteLine($"grainfs: {e.Message}");
            return 3;
        }
    }

    private static async Task<int> RunAsync(string[] args)
    {
        if (args.Length == 0 || args[0] is "--help" or "-h" or "help")
        {
            Console.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }

        if (!SettingNames.TryParse(args, SettingNames.ClientSettings, out var flags, out var rest, out var error))
        {
            throw new UsageException(error!);
        }

        if (rest.Count >= 1 && rest[0] is "mount" or "umount")
        {
            var mountArgs = rest[0] == "mount"
                ? CliArgs.Parse(rest.Skip(1), MountCommands.Switches, MountCommands.Options)
                : CliArgs.Parse(rest.Skip(1), [], []);
            GrainFsClientOptions mountOptions;
            try
            {
                mountOptions = GrainFsClientOptions.FromEnvironment(flags);
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message);
            }

            return rest[0] == "mount" ? await MountCommands.MountAsync(mountArgs, mountOptions) : await MountCommands.UmountAsync(mountArgs);
        }

        if (rest.Count >= 1 && rest[0] == "report")
        {
            rest.Insert(0, "fs");
        }

        if (rest.Count < 2 || rest[0] != "fs")
        {
            throw new UsageException(rest.Count == 0 ? "missing command (see grainfs --help)" : $"unknown command '{string.Join(' ', rest.Take(2))}' (see grainfs --help)");
        }

        var verb = rest[1];
        var tail = rest.Skip(2);
        var parsed = verb switch
        {
            "mount" => CliArgs.Parse(tail, ["--readonly"], ["--option", "--sync-interval"]),
            "unmount" or "umount" => CliArgs.Parse(tail, [], []),
            "mounts" => CliArgs.Parse(tail, ["--json"], []),
            "ls" => CliArgs.Parse(tail, ["-l", "-R", "--json"], []),
            "stat" => CliArgs.Parse(tail, ["--json"], []),
            "cat" or "free" or "unpin" or "ttl" => CliArgs.Parse(tail, [], []),
            "load" or "pin" => CliArgs.Parse(tail, [], ["--parallel"]),
            "report" => CliArgs.Parse(tail, ["--json"], []),
            _ => throw new UsageException($"unknown command 'fs {verb}' (see grainfs --help)"),
        };

        GrainFsClientOptions options;
        try
        {
            options = GrainFsClientOptions.FromEnvironment(flags);
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }

        // A command-line client lives for one command: no background refresh needed beyond that.
        options.MountTableRefresh = TimeSpan.Zero;
        await using var client = await GrainFsClient.ConnectAsync(options);
        var stdoutStream = Console.OpenStandardOutput();
        var stdout = new StreamWriter(stdoutStream, new System.Text.UTF8Encoding(false), 1 << 16) { AutoFlush = false };
        var commands = new FsCommands(client, stdout, stdoutStream);
        var cache = new CacheCommands(client, stdout, stdoutStream);
        int code;
        try
        {
            code = verb switch
            {
                "mount" => await commands.MountAsync(parsed),
                "unmount" or "umount" => await commands.UnmountAsync(parsed),
                "mounts" => await commands.MountsAsync(parsed),
                "ls" => await commands.LsAsync(parsed),
                "cat" => await cache.CatAsync(parsed),
                "load" => await cache.LoadAsync(parsed, pin: false),
                "pin" => await cache.LoadAsync(parsed, pin: true),
                "free" => await cache.FreeAsync(parsed),
                "unpin" => await cache.UnpinAsync(parsed),
                "ttl" => await cache.TtlAsync(parsed),
                "report" => await cache.ReportAsync(parsed),
                _ => await commands.StatAsync(parsed),
            };
        }
        finally
        {
            await stdout.FlushAsync();
        }

        return code;
    }

    /// <summary>Prints a one-line file-system error and returns exit code 1.</summary>
    internal static int Fail(FsStatus status, string message)
    {
        Console.Error.WriteLine($"grainfs: {message} ({status.ErrnoName()})");
        return 1;
    }
}
