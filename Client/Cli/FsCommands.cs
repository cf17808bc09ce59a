using System.CommandLine;
using System.Globalization;
using GrainFs.Client;

namespace GrainFs.Cli;

/// <summary>The `grainfs fs` namespace commands: mount, unmount, mounts, ls, stat. Each returns the process exit code.</summary>
internal sealed class FsCommands(GrainFsClient client, Terminal terminal)
{
    private readonly TextWriter stdout = terminal.Out;
    private readonly Stream stdoutStream = terminal.Stream;

    public static IEnumerable<Command> Build()
    {
        var path = Commands.Positional("path", "the GrainFS path of the mount point, e.g. /imagenet");
        var uri = Commands.Positional("uri", "file:///absolute/folder or s3://bucket/prefix");
        var option = new Option<string[]>("--option", "-o") { Description = "a mount option key=value (repeatable): readonly, sync-interval, owner, group, mode, block-size, write-type, quota-bytes, quota-files, write-replicas; for s3 endpoint, region, path-style, access-key, secret-key, session-token, part-size", HelpName = "key=value", Arity = ArgumentArity.ZeroOrMore };
        var readOnly = Commands.Switch("--readonly", "refuse writes through this mount (EROFS); same as --option readonly=true", "--read-only");
        var syncInterval = Commands.Valued("--sync-interval", "S", "re-list cached directories from under-storage: -1/never, 0/always, or seconds (30, 5m, 2h)");
        var mount = new Command("mount", "attach an under-storage URI at a GrainFS path") { path, uri, option, readOnly, syncInterval };
        mount.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new FsCommands(c, t).MountAsync(parse.GetValue(path)!, parse.GetValue(uri)!, parse.GetValue(option) ?? [], parse.GetValue(readOnly), parse.GetValue(syncInterval))));
        yield return mount;

        var unmountPath = Commands.Positional("path", "the mount point");
        var unmount = new Command("unmount", "detach a mount") { unmountPath };
        unmount.Aliases.Add("umount");
        unmount.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new FsCommands(c, t).UnmountAsync(parse.GetValue(unmountPath)!)));
        yield return unmount;

        var mountsJson = Commands.Switch("--json", "one JSON array of mounts");
        var mounts = new Command("mounts", "list mounts (credentials redacted)") { mountsJson };
        mounts.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new FsCommands(c, t).MountsAsync(parse.GetValue(mountsJson))));
        yield return mounts;

        var aclPath = Commands.Positional("path", "the mount point");
        var readers = Commands.Valued("--readers", "NAMES", "identities that may read, ':'-separated ('*': every authenticated identity; '': admins only)");
        var writers = Commands.Valued("--writers", "NAMES", "identities that may write and read, ':'-separated");
        var acl = new Command("acl", "show or set who may read and write a mount (admins may do everything; identities are certificate names)") { aclPath, readers, writers };
        acl.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new FsCommands(c, t).AclAsync(parse.GetValue(aclPath)!, parse.GetValue(readers), parse.GetValue(writers))));
        yield return acl;

        var lsPath = Commands.Positional("path", "a directory or file");
        var longFormat = Commands.Switch("-l", "long format: mode, size, mtime, name");
        var recursive = Commands.Switch("-R", "list subdirectories too, depth first", "--recursive");
        var lsJson = Commands.Switch("--json", "one JSON array of entries: path, kind, size, mtime, etag, mode, persistence (persistError, uid, gid when set)");
        var ls = new Command("ls", "list a directory") { lsPath, longFormat, recursive, lsJson };
        ls.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new FsCommands(c, t).LsAsync(parse.GetValue(lsPath)!, parse.GetValue(longFormat), parse.GetValue(recursive), parse.GetValue(lsJson))));
        yield return ls;

        var statPath = Commands.Positional("path", "a file or directory");
        var statJson = Commands.Switch("--json", "a JSON array with one entry");
        var stat = new Command("stat", "show a file's or directory's inode: kind, size, mtime, ETag, mode, owner, persistence") { statPath, statJson };
        stat.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new FsCommands(c, t).StatAsync(parse.GetValue(statPath)!, parse.GetValue(statJson))));
        yield return stat;
    }

    public async Task<int> MountAsync(string path, string uri, string[] rawOptions, bool readOnly, string? syncInterval)
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var option in rawOptions)
        {
            var eq = option.IndexOf('=');
            var key = eq < 0 ? option : option[..eq];
            if (key.Length == 0)
            {
                throw new UsageException($"--option '{option}': expected key=value");
            }

            options[key] = eq < 0 ? string.Empty : option[(eq + 1)..];
        }

        if (readOnly)
        {
            options["readonly"] = "true";
        }

        if (syncInterval is { } interval)
        {
            options["sync-interval"] = interval;
        }

        var result = await client.MountAsync(path, uri, options);
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        var mount = result.Value!;
        stdout.WriteLine($"Mounted {mount.Uri} at {mount.Path}");
        return 0;
    }

    public async Task<int> UnmountAsync(string path)
    {
        var result = await client.UnmountAsync(path);
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        stdout.WriteLine($"Unmounted {result.Value!.Path}");
        return 0;
    }

    public async Task<int> AclAsync(string path, string? readers, string? writers)
    {
        MountInfo mount;
        if (readers is null && writers is null)
        {
            var table = await client.GetMountsAsync(refresh: true);
            if (!table.IsOk)
            {
                return Program.Fail(table.Status, table.Describe());
            }

            var found = table.Value!.Mounts.FirstOrDefault(m => m.Path == path.TrimEnd('/') || (path == "/" && m.Path == "/"));
            if (found is null)
            {
                return Program.Fail(FsStatus.NotFound, $"{path} is not a mount point");
            }

            mount = found;
        }
        else
        {
            var result = await client.SetAccessAsync(path, Names(readers), Names(writers));
            if (!result.IsOk)
            {
                return Program.Fail(result.Status, result.Describe());
            }

            mount = result.Value!;
        }

        stdout.WriteLine($"{mount.Path} readers: {Describe(mount.Options.Readers)}");
        stdout.WriteLine($"{mount.Path} writers: {Describe(mount.Options.Writers)}");
        return 0;

        static IReadOnlyList<string>? Names(string? text) =>
            text is null ? null : text.Split(':', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

        static string Describe(IReadOnlyList<string>? names) => names is { Count: > 0 } ? string.Join(", ", names) : "(admins only)";
    }

    public async Task<int> MountsAsync(bool asJson)
    {
        var result = await client.GetMountsAsync(refresh: true);
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        var table = result.Value!;
        if (asJson)
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
                json.WriteString("writeType", m.Options.WriteType.Name());
                json.WriteNumber("quotaBytes", m.Options.QuotaBytes);
                json.WriteNumber("quotaFiles", m.Options.QuotaFiles);
                json.WriteNumber("writeReplicas", m.Options.WriteReplicas);
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
            var flags = new List<string> { m.Options.ReadOnly ? "readonly" : "readwrite", $"sync-interval={m.Options.SyncIntervalSeconds}", $"write-type={m.Options.WriteType.Name()}" };
            if (m.Options.QuotaBytes > 0)
            {
                flags.Add(string.Create(CultureInfo.InvariantCulture, $"quota-bytes={m.Options.QuotaBytes}"));
            }

            if (m.Options.QuotaFiles > 0)
            {
                flags.Add(string.Create(CultureInfo.InvariantCulture, $"quota-files={m.Options.QuotaFiles}"));
            }

            if (m.Options.WriteReplicas != 1)
            {
                flags.Add(string.Create(CultureInfo.InvariantCulture, $"write-replicas={m.Options.WriteReplicas}"));
            }

            flags.AddRange(m.Options.Properties.Select(p => $"{p.Key}={p.Value}"));
            stdout.WriteLine($"{m.Path}  {m.Uri}  ({string.Join(", ", flags)})");
        }

        return 0;
    }

    public async Task<int> StatAsync(string path, bool asJson)
    {
        var result = await client.StatAsync(path);
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        var full = Normalized(path);
        if (asJson)
        {
            await Output.WriteEntryArrayAsync(stdoutStream, full, result.Value!);
        }
        else
        {
            stdout.WriteLine(Output.StatText(full, result.Value!));
        }

        return 0;
    }

    public async Task<int> LsAsync(string path, bool longFormat, bool recursive, bool asJson)
    {
        var stat = await client.StatAsync(path);
        if (!stat.IsOk)
        {
            return Program.Fail(stat.Status, stat.Describe());
        }

        var root = Normalized(path);
        var json = asJson ? Output.JsonWriter(stdoutStream) : null;
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
