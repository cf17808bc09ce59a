using System.Globalization;
using System.Text;
using System.Text.Json;
using GrainFs.DataPlane;

namespace GrainFs.Cli;

/// <summary>
/// How the CLI prints entries: plain lines like ls, or JSON objects (path, kind, size, mtime, etag, mode, persistence;
/// persistError when the upload failed; uid and gid when GrainFS keeps an owner).
/// </summary>
internal static class Output
{
    public static Utf8JsonWriter JsonWriter(Stream stream) =>
        new(stream, new JsonWriterOptions { Indented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    /// <summary>Writes property <paramref name="name"/> as an array of <paramref name="values"/>.</summary>
    public static void WriteStrings(Utf8JsonWriter json, string name, IEnumerable<string> values)
    {
        json.WriteStartArray(name);
        foreach (var value in values)
        {
            json.WriteStringValue(value);
        }

        json.WriteEndArray();
    }

    /// <summary>One tier of a worker report as a JSON object (`report --json`, `status --json`, `worker list --json`).</summary>
    public static void WriteTier(Utf8JsonWriter json, TierUsage t)
    {
        json.WriteStartObject();
        json.WriteString("tier", t.Tier);
        json.WriteString("path", t.Path);
        json.WriteNumber("capacity", t.Capacity);
        json.WriteNumber("used", t.Used);
        json.WriteNumber("blocks", t.Blocks);
        json.WriteNumber("hits", t.Hits);
        json.WriteNumber("faults", t.Faults);
        json.WriteBoolean("inService", t.OutOfService is null);
        if (t.OutOfService is { } why)
        {
            json.WriteString("outOfService", why);
        }

        json.WriteEndObject();
    }

    public static void WriteEntry(Utf8JsonWriter json, string path, FsEntry entry)
    {
        json.WriteStartObject();
        json.WriteString("path", path);
        json.WriteString("kind", entry.IsDirectory ? "directory" : "file");
        json.WriteNumber("size", entry.Size);
        json.WriteString("mtime", entry.MtimeUtc.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture));
        json.WriteString("etag", entry.ETag);
        json.WriteString("mode", Convert.ToString(EffectiveMode(entry), 8).PadLeft(4, '0'));
        json.WriteString("persistence", entry.Persistence.Name());
        if (entry.Persistence == Persistence.Failed)
        {
            json.WriteString("persistError", entry.PersistError ?? string.Empty);
        }

        if (entry.Uid >= 0)
        {
            json.WriteNumber("uid", entry.Uid);
        }

        if (entry.Gid >= 0)
        {
            json.WriteNumber("gid", entry.Gid);
        }

        json.WriteEndObject();
    }

    /// <summary>One entry as `fs stat --json` prints it: a JSON array holding it, and a newline.</summary>
    public static async Task WriteEntryArrayAsync(Stream stream, string path, FsEntry entry)
    {
        await using var json = JsonWriter(stream);
        json.WriteStartArray();
        WriteEntry(json, path, entry);
        json.WriteEndArray();
        await json.FlushAsync();
        stream.WriteByte((byte)'\n');
    }

    public static int EffectiveMode(FsEntry entry) =>
        (entry.Mode & 0xFFF) != 0 ? entry.Mode & 0xFFF : entry.IsDirectory ? 0x1ED : 0x1A4;

    public static string LongLine(string name, FsEntry entry)
    {
        var mode = EffectiveMode(entry);
        var text = new StringBuilder(10);
        text.Append(entry.IsDirectory ? 'd' : '-');
        for (var shift = 6; shift >= 0; shift -= 3)
        {
            var bits = (mode >> shift) & 7;
            text.Append((bits & 4) != 0 ? 'r' : '-').Append((bits & 2) != 0 ? 'w' : '-').Append((bits & 1) != 0 ? 'x' : '-');
        }

        return string.Create(CultureInfo.InvariantCulture,
            $"{text} {entry.Size,14} {entry.MtimeUtc:yyyy-MM-dd HH:mm:ss} {name}");
    }

    public static string StatText(string path, FsEntry entry)
    {
        var text = new StringBuilder(string.Create(CultureInfo.InvariantCulture,
            $"""
              path:        {path}
              kind:        {(entry.IsDirectory ? "directory" : "file")}
              size:        {entry.Size} ({ByteSize.Format(entry.Size)})
              mtime:       {entry.MtimeUtc:yyyy-MM-ddTHH:mm:ss.fffZ}
              etag:        {(entry.ETag.Length == 0 ? "-" : entry.ETag)}
              mode:        {Convert.ToString(EffectiveMode(entry), 8).PadLeft(4, '0')}
            """));
        if (entry.Uid >= 0 || entry.Gid >= 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"\n  owner:       {Id(entry.Uid)}:{Id(entry.Gid)}");
        }

        text.Append("\n  persistence: ").Append(entry.Persistence.Name());
        if (entry.Persistence == Persistence.Failed)
        {
            text.Append(" (").Append(entry.PersistError ?? "no reason given").Append(')');
        }

        return text.ToString();

        static string Id(int id) => id >= 0 ? id.ToString(CultureInfo.InvariantCulture) : "-";
    }
}
