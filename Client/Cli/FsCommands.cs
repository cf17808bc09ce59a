using System.Globalization;
using GrainFs.Client;

namespace GrainFs.Cli;

/// <summary>The `grainfs fs …` commands. Each returns the process exit code.</summary>
internal sealed class FsCommands(GrainFsClient client, TextWriter stdout, Stream stdoutStream)
{
    public const string MountUsage = "grainfs fs mount <path> <uri> [--option k=v …] [--readonly] [--sync-interval S]";
    public const string UnmountUsage = "grainfs fs unmount <path>";
    public const string MountsUsage = "grainfs fs mounts [--json]";
    public const string LsUsage = "grainfs fs ls [-l] [-R] [--json] <path>";
    public const string StatUsage = "grainfs fs stat [--json] <path>";

    public async Task<int> MountAsync(CliArgs args)
    {
        args.ExpectPositionals(2, MountUsage);
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var option in args.Values("--option"))
        {
            var eq = option.IndexOf('=');
            var key = eq < 0 ? option : option[..eq];
            if (key.Length == 0)
            {
                throw new UsageException($"--option '{option}': expected key=value");
            }

            options[key] = eq < 0 ? string.Empty : option[(eq + 1)..];
        }

        if (args.Has("--readonly"))
        {
            options["readonly"] = "true";
        }

        if (args.Value("--sync-interval") is { } interval)
        {
            options["sync-interval"] = interval;
        }

        var result = await client.MountAsync(args.Positionals[0], args.Positionals[1], options);
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        var mount = result.Value!;
        stdout.WriteLine($"Mounted {mount.Uri} at {mount.Path}");
        return 0;
    }

    public async Task<int> UnmountAsync(CliArgs args)
    {
        args.ExpectPositionals(1, UnmountUsage);
        var result = await client.UnmountAsync(args.Positionals[0]);
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        stdout.WriteLine($"Unmounted {result.Value!.Path}");
        return 0;
    }

    public async Task<int> MountsAsync(CliArgs args)
    {
        args.ExpectPositionals(0, MountsUsage);
        var result = await client.GetMountsAsync(refresh: true);
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        var table = result.Value!;
        if (args.Has("--json"))
        {
            await using var json = Output.JsonWriter(stdoutStream);
            json.WriteStartArray();
            foreach (var m in table.Mounts)
            {
                json.WriteStartObject();
                json.WriteString("path", m.Path);
                json.WriteString("uri", m.Uri);
                json.WriteNumber("id", m.Id);
                json.WriteBoolean("readOnly", m.Options.ReadOnly);
                json.WriteNumber("syncIntervalSeconds", m.Options.SyncIntervalSeconds);
                json.WriteString("created", m.CreatedUtc.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
                json.WriteStartObject("options");
                foreach (var (key, value) in m.Options.Properties)
                {
                    json.WriteString(key, value);
                }

                json.WriteEndObject();
                json.WriteEndObject();
            }

            json.WriteEndArray();
            await json.FlushAsync();
            stdoutStream.WriteByte((byte)'\n');
            return 0;
        }

        foreach (var m in table.Mounts)
        {
            var flags = new List<string> { m.Options.ReadOnly ? "readonly" : "readwrite", $"sync-interval={m.Options.SyncIntervalSeconds}" };
            flags.AddRange(m.Options.Properties.Select(p => $"{p.Key}={p.Value}"));
            stdout.WriteLine($"{m.Path}  {m.Uri}  ({string.Join(", ", flags)})");
        }

        return 0;
    }

    public async Task<int> StatAsync(CliArgs args)
    {
        args.ExpectPositionals(1, StatUsage);
        var path = args.Positionals[0];
        var result = await client.StatAsync(path);
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        var full = Normalized(path);
        if (args.Has("--json"))
        {
            await using var json = Output.JsonWriter(stdoutStream);
            json.WriteStartArray();
            Output.WriteEntry(json, full, result.Value!);
            json.WriteEndArray();
            await json.FlushAsync();
            stdoutStream.WriteByte((byte)'\n');
        }
        else
        {
            stdout.WriteLine(Output.StatText(full, result.Value!));
        }

        return 0;
    }

    public async Task<int> LsAsync(CliArgs args)
    {
        args.ExpectPositionals(1, LsUsage);
        var path = args.Positionals[0];
        var stat = await client.StatAsync(path);
        if (!stat.IsOk)
        {
            return Program.Fail(stat.Status, stat.Describe());
        }

        var root = Normalized(path);
        var json = args.Has("--json") ? Output.JsonWriter(stdoutStream) : null;
        var recursive = args.Has("-R");
        var longFormat = args.Has("-l");
        var failures = 0;
        json?.WriteStartArray();
        if (!stat.Value!.IsDirectory)
        {
            Emit(root, stat.Value, root);
        }
        else
        {
            var pending = new Stack<string>();
            pending.Push(root);
            while (pending.Count > 0)
            {
                var directory = pending.Pop();
                var subdirectories = new List<string>();
                string? cursor = null;
                do
                {
                    var page = await client.ListPageAsync(directory, cursor);
                    if (!page.IsOk)
                    {
                        failures++;
                        Console.Error.WriteLine($"grainfs: {page.Describe()} ({page.Status.ErrnoName()})");
                        break;
                    }

                    foreach (var entry in page.Value!.Entries)
                    {
                        var full = FsPath.Combine(directory, entry.Name);
                        Emit(full, entry, recursive ? full : entry.Name);
                        if (recursive && entry.IsDirectory)
                        {
                            subdirectories.Add(full);
                        }
                    }

                    cursor = page.Value.NextCursor;
                    if (json is not null)
                    {
                        await json.FlushAsync();
                    }
                }
                while (cursor is not null);

                // Depth first, in name order.
                subdirectories.Sort(StringComparer.Ordinal);
                for (var i = subdirectories.Count - 1; i >= 0; i--)
                {
                    pending.Push(subdirectories[i]);
                }
            }
        }

        if (json is not null)
        {
            json.WriteEndArray();
            await json.FlushAsync();
            await json.DisposeAsync();
            stdoutStream.WriteByte((byte)'\n');
        }

        await stdout.FlushAsync();
        return failures == 0 ? 0 : 1;

        void Emit(string full, FsEntry entry, string shown)
        {
            if (json is not null)
            {
                Output.WriteEntry(json, full, entry);
            }
            else
            {
                stdout.WriteLine(longFormat ? Output.LongLine(shown, entry) : shown);
            }
        }
    }

    private static string Normalized(string path) =>
        FsPath.TryNormalize(path, out var normalized, out _) == FsStatus.Ok ? normalized : path;
}
