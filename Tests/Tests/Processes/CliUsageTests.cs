using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Processes;

/// <summary>The command line's own surface, as a user meets it before any cluster: help, usage errors, completion.</summary>
public sealed class CliUsageTests
{
    [Fact]
    public async Task Help_lists_every_command_and_fs_help_lists_the_fs_commands()
    {
        var (code, stdout, _) = await Cli.RunAsync(["--help"]);
        Assert.Equal(0, code);
        foreach (var command in new[] { "fs", "mount", "umount", "report", "completion", "--cluster", "--gateway-port" })
        {
            Assert.Contains(command, stdout, StringComparison.Ordinal);
        }

        (code, stdout, _) = await Cli.RunAsync(["fs", "--help"]);
        Assert.Equal(0, code);
        foreach (var command in new[] { "mount", "unmount", "mounts", "ls", "stat", "put", "get", "cp", "mkdir", "rm", "mv", "persist", "cat", "load", "pin", "free", "unpin", "ttl", "report" })
        {
            Assert.Matches($@"(?m)^\s+(\w+, )?{command}\b", stdout);
        }

        (code, stdout, _) = await Cli.RunAsync(["fs", "ls", "--help"]);
        Assert.Equal(0, code);
        Assert.Contains("--json", stdout, StringComparison.Ordinal);
        Assert.Contains("-R", stdout, StringComparison.Ordinal);

        (code, stdout, _) = await Cli.RunAsync(["fs", "put", "--help"]);
        Assert.Equal(0, code);
        Assert.Contains("--write-type", stdout, StringComparison.Ordinal);
        Assert.Contains("MUST_CACHE, CACHE_THROUGH, THROUGH, ASYNC_THROUGH", stdout, StringComparison.Ordinal);
        Assert.Contains("--exclusive", stdout, StringComparison.Ordinal);

        (code, stdout, _) = await Cli.RunAsync(["fs", "mount", "--help"]);
        Assert.Equal(0, code);
        Assert.Contains("--read-only, --readonly", stdout, StringComparison.Ordinal);
        foreach (var option in new[] { "write-type", "quota-bytes", "quota-files", "write-replicas" })
        {
            Assert.Contains(option, stdout, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("fs ls --no-such-flag /", "unknown option '--no-such-flag'")]
    [InlineData("fs load --parallel", "--parallel needs a value")]
    [InlineData("fs stat", "missing arguments; usage: grainfs fs stat [--json] <path>")]
    [InlineData("fs ls / /again", "unexpected argument '/again'")]
    [InlineData("fs", "missing command")]
    [InlineData("mount", "missing arguments")]
    [InlineData("teleport", "unknown command 'teleport'")]
    [InlineData("fs put --write-type FAST local /w/a", "--write-type 'FAST': not a write type; one of MUST_CACHE, CACHE_THROUGH, THROUGH, ASYNC_THROUGH (see grainfs fs put --help)")]
    [InlineData("fs cp -r --write-type sometimes /w/a /w/b", "--write-type 'sometimes': not a write type; one of MUST_CACHE")]
    [InlineData("fs put local /w/a --write-type", "--write-type needs a value")]
    [InlineData("fs persist /w/a --timeout forever", "--timeout 'forever': not a duration")]
    [InlineData("fs put local", "missing arguments; usage: grainfs fs put [--write-type <TYPE>] [--exclusive] [--json] <local> <path>")]
    [InlineData("fs get /w/a", "missing arguments; usage: grainfs fs get <path> <local>")]
    [InlineData("fs cp /w/a", "missing arguments; usage: grainfs fs cp [-r] [--write-type <TYPE>] <src> <dst>")]
    [InlineData("fs mv /w/a", "missing arguments; usage: grainfs fs mv <src> <dst>")]
    [InlineData("fs mkdir -p", "missing arguments; usage: grainfs fs mkdir [-p] <path>")]
    [InlineData("fs rm", "missing arguments; usage: grainfs fs rm [-r] <path>")]
    [InlineData("fs persist", "missing arguments; usage: grainfs fs persist [--timeout <DURATION>] [--json] <path>")]
    [InlineData("fs rm --force /w/a", "unknown option '--force' (see grainfs fs rm --help)")]
    [InlineData("fs put --no-clobber local /w/a", "unknown option '--no-clobber' (see grainfs fs put --help)")]
    [InlineData("fs mv /w/a /w/b /w/c", "unexpected argument '/w/c'")]
    [InlineData("fs ttl /w/a 99999999d", "'99999999d' is not a duration (30s, 10m, 2h, 7d, or hh:mm:ss; at most 36500d)")]
    [InlineData("fs ttl /w/a 0s", "'0s' is not a duration")]
    [InlineData("fs persist /w/a --timeout 99999999d", "--timeout '99999999d': not a duration")]
    [InlineData("mount /tmp/never-mounted --op-timeout 4294968", "--op-timeout '4294968': a number of seconds from 0 to 2147483")]
    [InlineData("mount /tmp/never-mounted --attr-timeout -1", "--attr-timeout '-1': a number of seconds from 0 to 2147483")]
    public async Task A_usage_error_exits_2_with_one_line_naming_the_problem_before_connecting(string command, string words)
    {
        // No silo listens on this port: a usage error must not even try to connect (that would exit 3 after a timeout).
        var (code, _, stderr) = await Cli.RunAsync(["--gateway-port", Ports.Free().ToString(System.Globalization.CultureInfo.InvariantCulture), .. command.Split(' ')]);
        Assert.Equal(2, code);
        Assert.Contains(words, stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Trim().Split('\n'));
    }

    [Theory]
    [InlineData("fs put {missing} /w/a", "grainfs: local file {missing}: no such file or directory (ENOENT)")]
    [InlineData("fs put --write-type must-cache {missing} /w/a", "grainfs: local file {missing}: no such file or directory (ENOENT)")]
    [InlineData("fs put {folder} /w/a", "grainfs: local file {folder}: is a directory (EISDIR)")]
    [InlineData("fs get /w/a {missing}/a.bin", "grainfs: local folder {missing}: no such file or directory (ENOENT)")]
    public async Task A_local_file_put_cannot_read_or_get_cannot_write_fails_with_its_errno_before_connecting(string command, string words)
    {
        // The write type's name is accepted in any case and with '-' (the second line gets past parsing to the local file).
        var folder = Directory.CreateTempSubdirectory("grainfs-cli-").FullName;
        try
        {
            var missing = Path.Combine(folder, "no-such-file");
            string[] args = [.. command.Split(' ').Select(a => a.Replace("{missing}", missing, StringComparison.Ordinal).Replace("{folder}", folder, StringComparison.Ordinal))];
            var (code, stdout, stderr) = await Cli.RunAsync(["--gateway-port", Ports.Free().ToString(System.Globalization.CultureInfo.InvariantCulture), .. args]);
            Assert.Equal(1, code);
            Assert.Equal(words.Replace("{missing}", missing, StringComparison.Ordinal).Replace("{folder}", folder, StringComparison.Ordinal), stderr.Trim());
            Assert.Empty(stdout);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Theory]
    [InlineData("--gateway-port abc", null, null, "--gateway-port / GRAINFS_GATEWAY_PORT / GrainFs:GatewayPort = 'abc'")]
    [InlineData("", "GRAINFS_GATEWAY_PORT", "70000", "--gateway-port / GRAINFS_GATEWAY_PORT / GrainFs:GatewayPort = '70000': not a port number (1-65535)")]
    [InlineData("", "GrainFs__GatewayPort", "0", "--gateway-port / GRAINFS_GATEWAY_PORT / GrainFs:GatewayPort = '0': not a port number (1-65535)")]
    [InlineData("", "GrainFs__MetadataCacheEntries", "many", "GrainFs:MetadataCacheEntries = 'many': not a whole number")]
    public async Task A_bad_client_setting_exits_2_naming_its_flag_variable_and_key_before_connecting(string flags, string? variable, string? value, string words)
    {
        var environment = variable is null ? null : new Dictionary<string, string?> { [variable] = value };
        var (code, _, stderr) = await Cli.RunAsync([.. flags.Split(' ', StringSplitOptions.RemoveEmptyEntries), "fs", "mounts"], environment);
        Assert.Equal(2, code);
        Assert.Contains($"grainfs: {words}", stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Trim().Split('\n'));
    }

    [Fact]
    public async Task Bash_completion_completes_commands_and_options()
    {
        var (code, script, _) = await Cli.RunAsync(["completion", "bash"]);
        Assert.Equal(0, code);
        Assert.Contains("complete -o default -F _grainfs_complete grainfs", script, StringComparison.Ordinal);

        // The script asks the program itself, with System.CommandLine's suggest directive.
        var (_, commands, _) = await Cli.RunAsync(["[suggest:13]", "grainfs fs lo"]);
        Assert.Equal(["load", "locality"], commands.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        var (_, options, _) = await Cli.RunAsync(["[suggest:16]", "grainfs fs ls --j"]);
        Assert.Contains("--json", options, StringComparison.Ordinal);

        // Write types complete by the names --write-type accepts.
        var line = "grainfs fs put --write-type ";
        var (_, types, _) = await Cli.RunAsync([$"[suggest:{line.Length}]", line]);
        Assert.Equal(["ASYNC_THROUGH", "CACHE_THROUGH", "MUST_CACHE", "THROUGH"], types.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Order(StringComparer.Ordinal));
    }
}
