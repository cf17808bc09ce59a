using System.CommandLine;
using System.CommandLine.Invocation;
using GrainFs.Client;

namespace GrainFs.Cli;

/// <summary>
/// The `grainfs` command line, on System.CommandLine: help for every command (--help), usage errors that name the
/// problem, tab completion (`grainfs completion bash`). Exit codes: 0 success, 1 a file-system error (message on
/// stderr), 2 a usage error, 3 the cluster could not be reached.
/// </summary>
public static class Program
{
    /// <summary>Entry point.</summary>
    public static async Task<int> Main(string[] args)
    {
        var root = Commands.Root();
        if (args.Length == 0)
        {
            await root.Parse(["--help"]).InvokeAsync();
            return 2;
        }

        var parse = root.Parse(args);
        if (parse.Action is ParseErrorAction || (parse.Action is not System.CommandLine.Help.HelpAction && UsageErrors.UnknownOption(parse) is not null))
        {
            Console.Error.WriteLine($"grainfs: {UsageErrors.Describe(parse)}");
            return 2;
        }

        try
        {
            // No default exception handler (our handlers map failures to exit codes) and no signal handling of its
            // own: `grainfs mount` unmounts on SIGINT/SIGTERM itself.
            return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null });
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

    /// <summary>Prints a one-line file-system error and returns exit code 1.</summary>
    internal static int Fail(FsStatus status, string message)
    {
        Console.Error.WriteLine($"grainfs: {message} ({status.ErrnoName()})");
        return 1;
    }
}

/// <summary>A command line that cannot be run as given; exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);
