namespace GrainFs.Cli;

/// <summary>The arguments of one command: positionals, switches (-l, --json) and options (--option k=v).</summary>
internal sealed class CliArgs
{
    private readonly HashSet<string> _switches = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<string>> _options = new(StringComparer.Ordinal);

    public List<string> Positionals { get; } = [];

    /// <summary>Parses <paramref name="args"/> against the switches and value options a command accepts.</summary>
    public static CliArgs Parse(IEnumerable<string> args, IReadOnlyCollection<string> switches, IReadOnlyCollection<string> options)
    {
        var result = new CliArgs();
        var list = args.ToList();
        for (var i = 0; i < list.Count; i++)
        {
            var arg = list[i];
            if (arg == "--")
            {
                result.Positionals.AddRange(list.Skip(i + 1));
                break;
            }

            if (arg.StartsWith("--", StringComparison.Ordinal) && arg.Length > 2)
            {
                var eq = arg.IndexOf('=');
                var name = eq > 0 ? arg[..eq] : arg;
                if (switches.Contains(name) && eq < 0)
                {
                    result._switches.Add(name);
                    continue;
                }

                if (options.Contains(name))
                {
                    string value;
                    if (eq > 0)
                    {
                        value = arg[(eq + 1)..];
                    }
                    else if (i + 1 < list.Count)
                    {
                        value = list[++i];
                    }
                    else
                    {
                        throw new UsageException($"{name} needs a value");
                    }

                    if (!result._options.TryGetValue(name, out var values))
                    {
                        result._options[name] = values = [];
                    }

                    values.Add(value);
                    continue;
                }

                throw new UsageException($"unknown option '{name}'");
            }

            if (arg.Length > 1 && arg[0] == '-' && !char.IsAsciiDigit(arg[1]))
            {
                // Bundled short switches: -lR.
                foreach (var c in arg[1..])
                {
                    var name = "-" + c;
                    if (!switches.Contains(name))
                    {
                        throw new UsageException($"unknown option '{name}'");
                    }

                    result._switches.Add(name);
                }

                continue;
            }

            result.Positionals.Add(arg);
        }

        return result;
    }

    public bool Has(string name) => _switches.Contains(name);

    public IReadOnlyList<string> Values(string name) => _options.TryGetValue(name, out var values) ? values : [];

    public string? Value(string name) => _options.TryGetValue(name, out var values) ? values[^1] : null;

    public string Positional(int index, string what) =>
        index < Positionals.Count ? Positionals[index] : throw new UsageException($"missing {what}");

    public void ExpectPositionals(int count, string usage)
    {
        if (Positionals.Count != count)
        {
            throw new UsageException(Positionals.Count < count ? $"missing arguments; usage: {usage}" : $"unexpected argument '{Positionals[count]}'; usage: {usage}");
        }
    }
}

/// <summary>A command line that cannot be run as given; exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);
