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
        foreach (var command in new[] { "mount", "unmount", "mounts", "ls", "stat", "cat", "load", "pin", "free", "unpin", "ttl", "report" })
        {
            Assert.Matches($@"(?m)^\s+(\w+, )?{command}\b", stdout);
        }

        (code, stdout, _) = await Cli.RunAsync(["fs", "ls", "--help"]);
        Assert.Equal(0, code);
        Assert.Contains("--json", stdout, StringComparison.Ordinal);
        Assert.Contains("-R", stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("fs ls --no-such-flag /", "unknown option '--no-such-flag'")]
    [InlineData("fs load --parallel", "--parallel needs a value")]
    [InlineData("fs stat", "missing arguments; usage: grainfs fs stat [--json] <path>")]
    [InlineData("fs ls / /again", "unexpected argument '/again'")]
    [InlineData("fs", "missing command")]
    [InlineData("mount", "missing arguments")]
    [InlineData("teleport", "unknown command 'teleport'")]
    public async Task A_usage_error_exits_2_with_one_line_naming_the_problem_before_connecting(string command, string words)
    {
        // No silo listens on this port: a usage error must not even try to connect (that would exit 3 after a timeout).
        var (code, _, stderr) = await Cli.RunAsync(["--gateway-port", Ports.Free().ToString(System.Globalization.CultureInfo.InvariantCulture), .. command.Split(' ')]);
        Assert.Equal(2, code);
        Assert.Contains(words, stderr, StringComparison.Ordinal);
        Assert.Single(stderr.Trim().Split('\n'));
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
        Assert.Equal(["load"], commands.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        var (_, options, _) = await Cli.RunAsync(["[suggest:16]", "grainfs fs ls --j"]);
        Assert.Contains("--json", options, StringComparison.Ordinal);
    }
}
