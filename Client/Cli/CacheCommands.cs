using System.Globalization;
using GrainFs.Client;
using GrainFs.DataPlane;

namespace GrainFs.Cli;

/// <summary>The block-cache commands: fs cat, load, free, pin, unpin, ttl, and report.</summary>
internal sealed class CacheCommands(GrainFsClient client, TextWriter stdout, Stream stdoutStream)
{
    public const string CatUsage = "grainfs fs cat <path>";
    public const string LoadUsage = "grainfs fs load <path> [--parallel N]";
    public const string FreeUsage = "grainfs fs free <path>";
    public const string PinUsage = "grainfs fs pin <path>";
    public const string UnpinUsage = "grainfs fs unpin <path>";
    public const string TtlUsage = "grainfs fs ttl <path> <duration>   (e.g. 30s, 10m, 2h, 7d)";
    public const string ReportUsage = "grainfs report [--json]";

    public async Task<int> CatAsync(CliArgs args)
    {
        args.ExpectPositionals(1, CatUsage);
        var opened = await client.OpenAsync(args.Positionals[0]);
        if (!opened.IsOk)
        {
            return Program.Fail(opened.Status, opened.Describe());
        }

        var file = opened.Value!;
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(4 << 20);
        try
        {
            long offset = 0;
            while (offset < file.Length)
            {
                var read = await file.ReadAsync(offset, buffer.AsMemory(0, (int)Math.Min(buffer.Length, file.Length - offset)));
                if (!read.IsOk)
                {
                    await stdoutStream.FlushAsync();
                    return Program.Fail(read.Status, read.Describe());
                }

                await stdoutStream.WriteAsync(buffer.AsMemory(0, read.Value));
                offset += read.Value;
            }

            await stdoutStream.FlushAsync();
            return 0;
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public async Task<int> LoadAsync(CliArgs args, bool pin)
    {
        args.ExpectPositionals(1, pin ? PinUsage : LoadUsage);
        var parallel = 8;
        if (args.Value("--parallel") is { } text && (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out parallel) || parallel < 1))
        {
            throw new UsageException($"--parallel '{text}': a positive number of batches in flight");
        }

        var bar = new ProgressBar(Console.Error, Console.IsErrorRedirected);
        var result = await client.LoadAsync(args.Positionals[0], bar, pin: pin ? true : null, parallelBatches: parallel);
        bar.Finish();
        if (result.Value is { } outcome)
        {
            var seconds = Math.Max(outcome.Elapsed.TotalSeconds, 0.001);
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{(pin ? "Pinned" : "Loaded")} {outcome.Files} files, {outcome.Blocks} blocks, {ByteSize.Format(outcome.Bytes)} in {seconds:F1} s ({outcome.Bytes / seconds / 1e6:F1} MB/s){(outcome.Failures > 0 ? $", {outcome.Failures} failed" : string.Empty)}"));
        }

        return result.IsOk ? 0 : Program.Fail(result.Status, result.Describe());
    }

    public async Task<int> FreeAsync(CliArgs args)
    {
        args.ExpectPositionals(1, FreeUsage);
        var result = await client.FreeAsync(args.Positionals[0]);
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        stdout.WriteLine($"Freed {result.Value!.Blocks} blocks ({ByteSize.Format(result.Value.Bytes)}) of {result.Value.Files} files");
        return 0;
    }

    public async Task<int> UnpinAsync(CliArgs args)
    {
        args.ExpectPositionals(1, UnpinUsage);
        var result = await client.UnpinAsync(args.Positionals[0]);
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        stdout.WriteLine($"Unpinned {result.Value!.Blocks} blocks of {result.Value.Files} files");
        return 0;
    }

    public async Task<int> TtlAsync(CliArgs args)
    {
        args.ExpectPositionals(2, TtlUsage);
        if (!TryParseDuration(args.Positionals[1], out var ttl))
        {
            throw new UsageException($"'{args.Positionals[1]}' is not a duration (30s, 10m, 2h, 7d, or hh:mm:ss)");
        }

        var result = await client.SetTtlAsync(args.Positionals[0], ttl);
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        stdout.WriteLine($"Set a TTL of {ttl} on {result.Value!.Blocks} cached blocks of {result.Value.Files} files");
        return 0;
    }

    public static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = default;
        if (text.Length >= 2 && double.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number) && number > 0)
        {
            duration = char.ToLowerInvariant(text[^1]) switch
            {
                's' => TimeSpan.FromSeconds(number),
                'm' => TimeSpan.FromMinutes(number),
                'h' => TimeSpan.FromHours(number),
                'd' => TimeSpan.FromDays(number),
                _ => default,
            };
            return duration > TimeSpan.Zero;
        }

        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out duration) && duration > TimeSpan.Zero;
    }

    public async Task<int> ReportAsync(CliArgs args)
    {
        args.ExpectPositionals(0, ReportUsage);
        var result = await client.GetReportAsync();
        if (!result.IsOk)
        {
            return Program.Fail(result.Status, result.Describe());
        }

        var workers = result.Value!;
        if (args.Has("--json"))
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
                    json.WriteStartObject();
                    json.WriteString("tier", t.Tier);
                    json.WriteString("path", t.Path);
                    json.WriteNumber("capacity", t.Capacity);
                    json.WriteNumber("used", t.Used);
                    json.WriteNumber("blocks", t.Blocks);
                    json.WriteNumber("hits", t.Hits);
                    json.WriteEndObject();
                }

                json.WriteEndArray();
                json.WriteNumber("requests", w.Requests);
                json.WriteNumber("misses", w.Misses);
                json.WriteNumber("hitRatio", w.Requests == 0 ? 0 : Math.Round(1 - ((double)w.Misses / w.Requests), 4));
                json.WriteNumber("fills", w.Fills);
                json.WriteNumber("fillBytes", w.FillBytes);
                json.WriteNumber("evictions", w.Evictions);
                json.WriteNumber("corrupt", w.Corrupt);
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
            stdout.WriteLine($"{w.Silo} on {w.Host}  policy {w.Policy}  hit ratio {ratio} ({w.Requests} requests)  fills {w.Fills} ({ByteSize.Format(w.FillBytes)})  evictions {w.Evictions}");
            foreach (var t in w.Tiers)
            {
                var share = t.Capacity == 0 ? 0 : (double)t.Used / t.Capacity;
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {t.Tier,-4} {ByteSize.Format(t.Used),12} / {ByteSize.Format(t.Capacity),-12} {share,6:P1}  {t.Blocks,8} blocks  {t.Hits,10} hits  {t.Path}"));
            }

            if (w.BytesServedBySource.Count > 0)
            {
                stdout.WriteLine("  served: " + string.Join(", ", w.BytesServedBySource.Select(kv => $"{kv.Key} {ByteSize.Format(kv.Value)}")));
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
