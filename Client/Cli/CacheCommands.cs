using System.CommandLine;
using System.Globalization;
using GrainFs.Client;
using GrainFs.DataPlane;

namespace GrainFs.Cli;

/// <summary>The block-cache commands: fs cat, load, free, pin, unpin, ttl, and report.</summary>
internal sealed class CacheCommands(GrainFsClient client, Terminal terminal)
{
    private readonly TextWriter stdout = terminal.Out;
    private readonly Stream stdoutStream = terminal.Stream;

    public static IEnumerable<Command> Build()
    {
        var catPath = Commands.Positional("path", "a file");
        var cat = new Command("cat", "write a file to stdout, read through the cache") { catPath };
        cat.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new CacheCommands(c, t).CatAsync(parse.GetValue(catPath)!)));
        yield return cat;

        foreach (var pin in new[] { false, true })
        {
            var path = Commands.Positional("path", "a file or a directory tree");
            var parallel = Commands.Valued("--parallel", "N", "batches in flight at once (default 8)");
            var load = new Command(pin ? "pin" : "load", pin ? "load and pin a file or tree: never evicted until unpinned" : "pre-warm a file or tree into the cache (progress on stderr, a summary on stdout)") { path, parallel };
            load.SetAction((parse, _) =>
            {
                var batches = ParseParallel(parse.GetValue(parallel));
                return Commands.WithClientAsync(parse, (c, t) => new CacheCommands(c, t).LoadAsync(parse.GetValue(path)!, batches, pin));
            });
            yield return load;
        }

        var freePath = Commands.Positional("path", "a file or a directory tree");
        var free = new Command("free", "drop a file's or tree's blocks from every worker; returns once they are gone") { freePath };
        free.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new CacheCommands(c, t).FreeAsync(parse.GetValue(freePath)!)));
        yield return free;

        var unpinPath = Commands.Positional("path", "a file or a directory tree");
        var unpin = new Command("unpin", "let a file's or tree's blocks be evicted again") { unpinPath };
        unpin.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new CacheCommands(c, t).UnpinAsync(parse.GetValue(unpinPath)!)));
        yield return unpin;

        var ttlPath = Commands.Positional("path", "a file or a directory tree");
        var duration = Commands.Positional("duration", "30s, 10m, 2h, 7d or hh:mm:ss");
        var ttl = new Command("ttl", "free the cached blocks of a file or tree after a time") { ttlPath, duration };
        ttl.SetAction((parse, _) =>
        {
            var text = parse.GetValue(duration)!;
            var time = TryParseDuration(text, out var parsed) ? parsed : throw new UsageException($"'{text}' is not a duration (30s, 10m, 2h, 7d, or hh:mm:ss; at most {MaxDurationDays}d)");
            return Commands.WithClientAsync(parse, (c, t) => new CacheCommands(c, t).TtlAsync(parse.GetValue(ttlPath)!, time));
        });
        yield return ttl;

        var localityPath = Commands.Positional("path", "a file or a directory tree");
        var localityJson = Commands.Switch("--json", "one JSON object: path, files, bytes, hosts[] with host, silos, blocks, bytes, share");
        var locality = new Command("locality", "per host, the bytes of a file or tree cached there and their share of it (home copies and replicas)") { localityPath, localityJson };
        locality.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new CacheCommands(c, t).LocalityAsync(parse.GetValue(localityPath)!, parse.GetValue(localityJson))));
        yield return locality;

        yield return BuildReport();
    }

    /// <summary>`k8s affinity`: a preferred node affinity for a training job's pod spec, weighted by where its data is cached.</summary>
    public static Command BuildKubernetes()
    {
        var path = Commands.Positional("path", "the training data: a file or a directory tree");
        var label = Commands.Valued("--label", "KEY", "the node label that holds the host name GrainFS knows the node by (default kubernetes.io/hostname: the silos' --host is the node name)");
        var minShare = Commands.Valued("--min-share", "PERCENT", "leave out hosts holding less than this share of the tree (default 1)");
        var affinity = new Command("affinity", "print a preferred node affinity (YAML, for a pod spec's affinity:) weighted by each host's share of a tree's cached bytes") { path, label, minShare };
        affinity.SetAction((parse, _) =>
        {
            var text = parse.GetValue(minShare);
            var least = 1.0;
            if (text is not null && (!double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out least) || least < 0 || least > 100))
            {
                throw new UsageException($"--min-share '{text}': a percentage from 0 to 100");
            }

            var key = parse.GetValue(label) ?? "kubernetes.io/hostname";
            if (key.Length == 0 || key.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
            {
                throw new UsageException($"--label '{key}': a node label key (no spaces)");
            }

            return Commands.WithClientAsync(parse, (c, t) => new CacheCommands(c, t).AffinityAsync(parse.GetValue(path)!, key, least / 100));
        });
        return new Command("k8s", "Kubernetes helpers: schedule training pods near their cached data") { affinity };
    }

    public async Task<int> LocalityAsync(string path, bool asJson)
    {
        var result = await client.LocalityAsync(path);
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        var tree = result.Value!;
        if (asJson)
        {
            await using var json = Output.JsonWriter(stdoutStream);
            json.WriteStartObject();
            json.WriteString("path", tree.Path);
            json.WriteNumber("files", tree.Files);
            json.WriteNumber("bytes", tree.Bytes);
            json.WriteStartArray("hosts");
            foreach (var host in tree.Hosts)
            {
                json.WriteStartObject();
                json.WriteString("host", host.Host);
                Output.WriteStrings(json, "silos", host.Silos);
                json.WriteNumber("blocks", host.Blocks);
                json.WriteNumber("bytes", host.Bytes);
                json.WriteNumber("share", Math.Round(host.Share, 4));
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
            await json.FlushAsync();
            await stdoutStream.WriteAsync("\n"u8.ToArray());
            return 0;
        }

        stdout.WriteLine($"{tree.Path}: {tree.Files} files, {ByteSize.Format(tree.Bytes)}");
        if (tree.Hosts.Count == 0)
        {
            stdout.WriteLine("nothing of it is cached");
            return 0;
        }

        stdout.WriteLine($"{"HOST",-24} {"CACHED",12} {"SHARE",7}  SILOS");
        foreach (var host in tree.Hosts)
        {
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{host.Host,-24} {ByteSize.Format(host.Bytes),12} {host.Share * 100,6:F1}%  {string.Join(',', host.Silos)}"));
        }

        return 0;
    }

    public async Task<int> AffinityAsync(string path, string label, double minShare)
    {
        var result = await client.LocalityAsync(path);
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        var hosts = result.Value!.Hosts.Where(h => h.Share >= minShare && h.Share > 0).ToList();
        if (hosts.Count == 0)
        {
            return Program.Fail(FsStatus.NotFound, string.Create(CultureInfo.InvariantCulture, $"{path}: no host caches {minShare * 100:0.#}% or more of it (load it first: grainfs fs load {path})"));
        }

        // One term per host, weighted 1-100 by its share: the scheduler adds the weights of the terms a node matches.
        stdout.WriteLine($"# {path}: {ByteSize.Format(result.Value.Bytes)}; preferred nodes by the share of it cached there");
        stdout.WriteLine("affinity:");
        stdout.WriteLine("  nodeAffinity:");
        stdout.WriteLine("    preferredDuringSchedulingIgnoredDuringExecution:");
        foreach (var host in hosts)
        {
            var weight = Math.Clamp((int)Math.Round(host.Share * 100), 1, 100);
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    - weight: {weight}   # {host.Share * 100:0.#}% ({ByteSize.Format(host.Bytes)})"));
            stdout.WriteLine("      preference:");
            stdout.WriteLine("        matchExpressions:");
            stdout.WriteLine($"        - key: {Yaml(label)}");
            stdout.WriteLine("          operator: In");
            stdout.WriteLine($"          values: [{Yaml(host.Host)}]");
        }

        return 0;
    }

    // A YAML scalar, quoted when plain style could misread it.
    private static string Yaml(string value) =>
        value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_' or '/') && !char.IsAsciiDigit(value[0]) ? value : "\"" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    /// <summary>`report` (also `fs report`).</summary>
    public static Command BuildReport()
    {
        var json = Commands.Switch("--json", "one JSON object: workers[] with tiers[], counters and bytes served by source");
        var report = new Command("report", "every worker's tiers: capacity, used, blocks, hit ratio, bytes served") { json };
        report.SetAction((parse, _) => Commands.WithClientAsync(parse, (c, t) => new CacheCommands(c, t).ReportAsync(parse.GetValue(json))));
        return report;
    }

    public async Task<int> CatAsync(string path)
    {
        var opened = await client.OpenAsync(path);
        if (!opened.IsOk)
        {
            return Program.Fail(opened.Status, opened.Describe());
        }

        var copied = await WriteCommands.ReadToAsync(opened.Value!, stdoutStream, CancellationToken.None);
        await stdoutStream.FlushAsync();
        return copied.IsOk ? 0 : Program.Fail(copied.Status, copied.Describe());
    }

    private static int ParseParallel(string? text)
    {
        var parallel = 8;
        if (text is not null && (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out parallel) || parallel < 1))
        {
            throw new UsageException($"--parallel '{text}': a positive number of batches in flight");
        }

        return parallel;
    }

    public async Task<int> LoadAsync(string path, int parallel, bool pin)
    {
        var bar = new ProgressBar(Console.Error, Console.IsErrorRedirected);
        var result = await client.LoadAsync(path, bar, pin: pin ? true : null, parallelBatches: parallel);
        bar.Finish();
        if (result.Value is { } outcome)
        {
            var seconds = Math.Max(outcome.Elapsed.TotalSeconds, 0.001);
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{(pin ? "Pinned" : "Loaded")} {outcome.Files} files, {outcome.Blocks} blocks, {ByteSize.Format(outcome.Bytes)} in {seconds:F1} s ({outcome.Bytes / seconds / 1e6:F1} MB/s){(outcome.Failures > 0 ? $", {outcome.Failures} failed" : string.Empty)}"));
        }

        return result.IsOk ? 0 : Program.Fail(result.Status, result.Describe());
    }

    public async Task<int> FreeAsync(string path)
    {
        var result = await client.FreeAsync(path);
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        stdout.WriteLine($"Freed {result.Value!.Blocks} blocks ({ByteSize.Format(result.Value.Bytes)}) of {result.Value.Files} files");
        return 0;
    }

    public async Task<int> UnpinAsync(string path)
    {
        var result = await client.UnpinAsync(path);
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        stdout.WriteLine($"Unpinned {result.Value!.Blocks} blocks of {result.Value.Files} files");
        return 0;
    }

    public async Task<int> TtlAsync(string path, TimeSpan ttl)
    {
        var result = await client.SetTtlAsync(path, ttl);
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        stdout.WriteLine($"Set a TTL of {ttl} on {result.Value!.Blocks} cached blocks of {result.Value.Files} files");
        return 0;
    }

    /// <summary>The longest duration the CLI takes (a TTL, a persist delay): 100 years.</summary>
    public const int MaxDurationDays = 36_500;

    /// <summary>Parses 30s, 10m, 2h, 7d (decimals allowed) or hh:mm:ss: above zero and at most <see cref="MaxDurationDays"/> days.</summary>
    public static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = default;
        if (text.Length >= 2 && double.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number) && number > 0)
        {
            var unit = char.ToLowerInvariant(text[^1]) switch { 's' => 1.0, 'm' => 60.0, 'h' => 3600.0, 'd' => 86400.0, _ => 0.0 };
            var seconds = number * unit;
            if (seconds <= 0 || seconds > MaxDurationDays * 86400.0)
            {
                return false;
            }

            duration = TimeSpan.FromSeconds(seconds);
            return duration > TimeSpan.Zero;
        }

        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out duration) && duration > TimeSpan.Zero && duration <= TimeSpan.FromDays(MaxDurationDays);
    }

    public async Task<int> ReportAsync(bool asJson)
    {
        var result = await client.GetReportAsync();
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        var workers = result.Value!;
        if (asJson)
        {
            await using var json = Output.JsonWriter(stdoutStream);
            json.WriteStartObject();
            json.WriteStartArray("workers");
            foreach (var w in workers)
            {
                json.WriteStartObject();
                json.WriteString("silo", w.Silo);
                json.WriteString("host", w.Host);
                json.WriteString("policy", w.Policy);
                json.WriteStartArray("tiers");
                foreach (var t in w.Tiers)
                {
                    Output.WriteTier(json, t);
                }

                json.WriteEndArray();
                json.WriteNumber("requests", w.Requests);
                json.WriteNumber("misses", w.Misses);
                json.WriteNumber("hitRatio", w.Requests == 0 ? 0 : Math.Round(1 - ((double)w.Misses / w.Requests), 4));
                json.WriteNumber("fills", w.Fills);
                json.WriteNumber("fillBytes", w.FillBytes);
                json.WriteNumber("evictions", w.Evictions);
                json.WriteNumber("corrupt", w.Corrupt);
                json.WriteNumber("lost", w.Lost);
                var prefetch = w.Prefetch ?? new WorkerPrefetch(0, 0, 0, 0, 0);
                json.WriteStartObject("prefetch");
                json.WriteNumber("fills", prefetch.Fills);
                json.WriteNumber("bytes", prefetch.Bytes);
                json.WriteNumber("hits", prefetch.Hits);
                json.WriteNumber("wasted", prefetch.Wasted);
                json.WriteNumber("running", prefetch.Running);
                json.WriteEndObject();
                json.WriteStartObject("bytesServedBySource");
                foreach (var (source, bytes) in w.BytesServedBySource)
                {
                    json.WriteNumber(source, bytes);
                }

                json.WriteEndObject();
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
            await json.FlushAsync();
            stdoutStream.WriteByte((byte)'\n');
            return 0;
        }

        foreach (var w in workers)
        {
            var ratio = w.Requests == 0 ? "-" : (1 - ((double)w.Misses / w.Requests)).ToString("P1", CultureInfo.InvariantCulture);
            stdout.WriteLine($"{w.Silo} on {w.Host}  policy {w.Policy}  hit ratio {ratio} ({w.Requests} requests)  fills {w.Fills} ({ByteSize.Format(w.FillBytes)})  evictions {w.Evictions}{(w.Lost > 0 ? $"  lost files {w.Lost}" : string.Empty)}");
            foreach (var t in w.Tiers)
            {
                var share = t.Capacity == 0 ? 0 : (double)t.Used / t.Capacity;
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {t.Tier,-4} {ByteSize.Format(t.Used),12} / {ByteSize.Format(t.Capacity),-12} {share,6:P1}  {t.Blocks,8} blocks  {t.Hits,10} hits  {t.Path}"));
                if (t.OutOfService is { } why)
                {
                    stdout.WriteLine($"       OUT OF SERVICE ({t.Faults} faults): {why}");
                }
            }

            if (w.BytesServedBySource.Count > 0)
            {
                stdout.WriteLine("  served: " + string.Join(", ", w.BytesServedBySource.Select(kv => $"{kv.Key} {ByteSize.Format(kv.Value)}")));
            }

            if (w.Prefetch is { Fills: > 0 } or { Running: > 0 })
            {
                var p = w.Prefetch;
                stdout.WriteLine($"  prefetch: {p.Fills} fills ({ByteSize.Format(p.Bytes)}), {p.Hits} hits, {p.Wasted} wasted (evicted unread), {p.Running} running");
            }
        }

        return 0;
    }
}

/// <summary>A one-line progress bar on stderr (plain lines when stderr is not a terminal).</summary>
internal sealed class ProgressBar(TextWriter output, bool plain) : IProgress<LoadProgress>
{
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private long _lastDraw = -1;

    public void Report(LoadProgress value)
    {
        var now = _clock.ElapsedMilliseconds;
        var done = value.Bytes >= value.TotalBytes;
        if (!done && now - Interlocked.Read(ref _lastDraw) < (plain ? 2000 : 200))
        {
            return;
        }

        Interlocked.Exchange(ref _lastDraw, now);
        var share = value.TotalBytes == 0 ? 1 : (double)value.Bytes / value.TotalBytes;
        var filled = (int)(share * 30);
        var rate = value.Bytes / Math.Max(0.001, now / 1000.0) / 1e6;
        var line = string.Create(CultureInfo.InvariantCulture,
            $"[{new string('#', filled)}{new string('.', 30 - filled)}] {share,6:P1}  {ByteSize.Format(value.Bytes)} / {ByteSize.Format(value.TotalBytes)}  files {value.Files}/{value.TotalFiles}  {rate:F1} MB/s{(value.Failures > 0 ? $"  {value.Failures} failed" : string.Empty)}");
        lock (output)
        {
            output.Write(plain ? line + "\n" : "\r" + line);
        }
    }

    public void Finish()
    {
        if (!plain)
        {
            output.WriteLine();
        }
    }
}
