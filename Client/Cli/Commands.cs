using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text;
using GrainFs.Client;
using GrainFs.DataPlane;

namespace GrainFs.Cli;

/// <summary>
/// The command tree. A new command is a <see cref="Command"/> built in its group's file (FsCommands, WriteCommands,
/// CacheCommands, MountCommands) and added to its group here.
/// </summary>
internal static class Commands
{
    /// <summary>The options every command takes, one per client setting (flag → configuration key), anywhere on the line.</summary>
    public static readonly IReadOnlyList<(Setting Setting, Option Option)> ClusterOptions =
        [.. SettingNames.ClientSettings.Select(s => (s, s.IsSwitch
            ? (Option)new Option<bool>(s.Flag) { Description = $"{s.Help} [env {s.Env}]", Recursive = true }
            : new Option<string>(s.Flag) { Description = $"{s.Help} [env {s.Env}]", Recursive = true, HelpName = s.Flag.TrimStart('-') }))];

    public static RootCommand Root()
    {
        var root = new RootCommand("grainfs — the GrainFS command line: mounts, listings, files and the block cache of a GrainFS cluster.");
        foreach (var (_, option) in ClusterOptions)
        {
            root.Add(option);
        }

        var fs = new Command("fs", "the GrainFS namespace and its cache: mounts, listings, files in and out, cp, mkdir, rm, mv, persist, load, free, pin, TTL");
        foreach (var command in FsCommands.Build())
        {
            fs.Add(command);
        }

        foreach (var command in WriteCommands.Build())
        {
            fs.Add(command);
        }

        foreach (var command in CacheCommands.Build())
        {
            fs.Add(command);
        }

        root.Add(fs);
        root.Add(MountCommands.BuildMount());
        root.Add(MountCommands.BuildUmount());
        root.Add(CacheCommands.BuildReport());
        root.Add(ClusterCommands.BuildStatus());
        root.Add(ClusterCommands.BuildWorker());
        root.Add(CacheCommands.BuildKubernetes());
        root.Add(BenchCommand.Build());
        root.Add(CertCommands.Build());
        root.Add(Completion());
        return root;
    }

    /// <summary>The client options: GRAINFS_* environment variables, then the cluster flags given on the line.</summary>
    public static GrainFsClientOptions ClientOptions(ParseResult parse)
    {
        var flags = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (setting, option) in ClusterOptions)
        {
            // A switch given means "true"; one not given leaves the environment's value.
            var value = option is Option<bool> flag ? (parse.GetValue(flag) ? "true" : null) : parse.GetValue((Option<string>)option);
            if (value is not null)
            {
                flags[setting.Key] = value;
            }
        }

        try
        {
            return GrainFsClientOptions.FromEnvironment(flags);
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
    }

    /// <summary>
    /// Runs a command against the cluster: connects (a command-line client lives for one command, so no background
    /// refresh), hands the command stdout as text and as a byte stream, and flushes it however the command ends.
    /// </summary>
    public static async Task<int> WithClientAsync(ParseResult parse, Func<GrainFsClient, Terminal, Task<int>> run)
    {
        var options = ClientOptions(parse);
        options.MountTableRefresh = TimeSpan.Zero;
        await using var client = await GrainFsClient.ConnectAsync(options);
        var stream = Console.OpenStandardOutput();
        var writer = new StreamWriter(stream, new UTF8Encoding(false), 1 << 16) { AutoFlush = false };
        try
        {
            return await run(client, new Terminal(writer, stream));
        }
        finally
        {
            await writer.FlushAsync();
        }
    }

    /// <summary>An argument named in the usage line as &lt;name&gt;.</summary>
    public static Argument<string> Positional(string name, string description) => new(name) { Description = description };

    /// <summary>A switch (present means true).</summary>
    public static Option<bool> Switch(string name, string description, params string[] aliases) => new(name, aliases) { Description = description };

    /// <summary>An option with a value, checked by the command itself so its message can say what a good value looks like.</summary>
    public static Option<string> Valued(string name, string helpName, string description) => new(name) { Description = description, HelpName = helpName };

    /// <summary>
    /// An option whose value is checked while the line is parsed, so a bad value is a usage error (exit 2) before any
    /// connection: "<paramref name="name"/> 'VALUE': <paramref name="expected"/>".
    /// </summary>
    public static Option<T?> Checked<T>(string name, string helpName, string description, TryParser<T> tryParse, string expected, params string[] completions)
        where T : struct
    {
        var option = new Option<T?>(name)
        {
            Description = description,
            HelpName = helpName,
            CustomParser = result =>
            {
                if (result.Tokens.Count == 0)
                {
                    return null;
                }

                var text = result.Tokens[0].Value;
                if (tryParse(text, out var value))
                {
                    return value;
                }

                result.AddError($"{name} '{text}': {expected}");
                return null;
            },
        };
        // Not the enum's own member names, which are no values here.
        option.CompletionSources.Clear();
        option.CompletionSources.Add(completions);
        return option;
    }

    /// <summary>--write-type: how the written files reach under-storage, by name.</summary>
    public static Option<WriteType?> WriteTypeOption() =>
        Checked<WriteType>("--write-type", "TYPE", $"how the written files reach under-storage: {WriteTypes.Names}; default: the mount's write-type",
            WriteTypes.TryParse, $"not a write type; one of {WriteTypes.Names}", WriteTypes.Names.Split(", "));

    private static Command Completion()
    {
        var shell = new Argument<string>("shell") { Description = "bash or zsh" };
        shell.AcceptOnlyFromAmong("bash", "zsh");
        var command = new Command("completion", "print a shell script that completes grainfs commands and options: eval \"$(grainfs completion bash)\"") { shell };
        command.SetAction(parse =>
        {
            // System.CommandLine answers "[suggest:POSITION] LINE" with the completions at that position.
            var script = parse.GetValue(shell) == "zsh"
                ? "autoload -U +X bashcompinit && bashcompinit\n" + BashScript
                : BashScript;
            Console.Out.Write(script);
            return 0;
        });
        return command;
    }

    private const string BashScript = """
        _grainfs_complete() {
          local IFS=$'\n'
          COMPREPLY=( $(grainfs "[suggest:${COMP_POINT}]" "${COMP_LINE}" 2>/dev/null) )
        }
        complete -o default -F _grainfs_complete grainfs

        """;
}

/// <summary>Parses an option's text; false when it is not a valid value.</summary>
internal delegate bool TryParser<T>(string text, out T value);

/// <summary>A command's stdout, as text and as bytes (for JSON and file contents).</summary>
internal sealed record Terminal(TextWriter Out, Stream Stream);

/// <summary>Turns System.CommandLine's parse errors into one line that names the problem.</summary>
internal static class UsageErrors
{
    /// <summary>
    /// A word that looks like an option but is none of the command's: System.CommandLine takes it as an argument value,
    /// so it is looked for among the command's arguments (after "--" a word is always an argument).
    /// </summary>
    public static string? UnknownOption(ParseResult parse)
    {
        var afterDoubleDash = false;
        var argumentTokens = new HashSet<Token>();
        for (SymbolResult? r = parse.CommandResult; r is CommandResult command; r = r.Parent)
        {
            foreach (var child in command.Children)
            {
                if (child is ArgumentResult argument)
                {
                    argumentTokens.UnionWith(argument.Tokens);
                }
            }
        }

        foreach (var token in parse.Tokens)
        {
            afterDoubleDash |= token.Type == TokenType.DoubleDash;
            if (!afterDoubleDash && token.Type == TokenType.Argument && LooksLikeOption(token.Value) && argumentTokens.Contains(token))
            {
                return $"unknown option '{token.Value}' (see {Program(parse.CommandResult)} --help)";
            }
        }

        return null;
    }

    private static bool LooksLikeOption(string word) => word.Length > 1 && word[0] == '-' && !char.IsAsciiDigit(word[1]);

    public static string Describe(ParseResult parse)
    {
        var command = parse.CommandResult.Command;
        var path = CommandPath(parse.CommandResult);
        if (UnknownOption(parse) is { } unknown)
        {
            return unknown;
        }

        if (parse.UnmatchedTokens.Count > 0)
        {
            var token = parse.UnmatchedTokens[0];
            if (LooksLikeOption(token))
            {
                return $"unknown option '{token}' (see {Program(parse.CommandResult)} --help)";
            }

            return command.Subcommands.Count > 0
                ? $"unknown command '{(path.Length == 0 ? token : path + " " + token)}' (see {Program(parse.CommandResult)} --help)"
                : $"unexpected argument '{token}'; usage: {Usage(parse.CommandResult)}";
        }

        foreach (var error in parse.Errors)
        {
            switch (error.SymbolResult)
            {
                case ArgumentResult { Tokens.Count: 0 } argument when argument.Parent is CommandResult:
                    return $"missing arguments; usage: {Usage(parse.CommandResult)}";
                case OptionResult option when option.Tokens.Count == 0:
                    return $"{option.Option.Name} needs a value ({option.Option.Description})";
                case CommandResult when command.Subcommands.Count > 0:
                    return $"missing command (see {Program(parse.CommandResult)} --help)";
            }
        }

        return $"{parse.Errors[0].Message} (see {Program(parse.CommandResult)} --help)";
    }

    /// <summary>"grainfs fs ls": the program and the command path.</summary>
    private static string Program(CommandResult result) => CommandPath(result) is { Length: > 0 } path ? "grainfs " + path : "grainfs";

    private static string CommandPath(CommandResult result)
    {
        var names = new List<string>();
        for (SymbolResult? r = result; r is CommandResult c && c.Parent is not null; r = r.Parent)
        {
            names.Insert(0, c.Command.Name);
        }

        return string.Join(' ', names);
    }

    /// <summary>"grainfs fs ls [-l] [-R] [--json] &lt;path&gt;", from the command's own symbols.</summary>
    private static string Usage(CommandResult result)
    {
        var text = new StringBuilder(Program(result));
        foreach (var option in result.Command.Options)
        {
            if (option.Hidden || option is System.CommandLine.Help.HelpOption)
            {
                continue;
            }

            text.Append(" [").Append(option.Name);
            if (option.ValueType != typeof(bool))
            {
                text.Append(" <").Append(option.HelpName ?? "value").Append('>');
            }

            text.Append(']');
        }

        foreach (var argument in result.Command.Arguments)
        {
            text.Append(" <").Append(argument.Name).Append('>');
        }

        return text.ToString();
    }
}
