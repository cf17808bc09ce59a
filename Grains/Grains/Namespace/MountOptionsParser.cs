using System.Globalization;
using System.Text.Json;
using GrainFs.Storage.UnderStorage;

namespace GrainFs.Grains.Namespace;

/// <summary>Turns the raw key=value options of a mount request into <see cref="MountOptions"/>, refusing anything unknown.</summary>
public static class MountOptionsParser
{
    /// <summary>Option keys every mount understands.</summary>
    public static readonly IReadOnlyList<string> CommonKeys = ["readonly", "sync-interval", "owner", "group", "mode", "block-size", "write-type", "quota-bytes", "quota-files", "write-replicas", "readers", "writers"];

    /// <summary>Parses options for a mount of <paramref name="scheme"/> (a built-in under-storage); false with a message naming the option and value.</summary>
    public static bool TryParse(string scheme, IReadOnlyDictionary<string, string> raw, out MountOptions options, out string? error) =>
        TryParse(scheme, raw, UnderStorageFactory.BuiltInProperties(scheme), out options, out error);

    /// <summary>Parses options for a mount whose under-storage understands <paramref name="schemeKeys"/>; false with a message naming the option and value.</summary>
    public static bool TryParse(string scheme, IReadOnlyDictionary<string, string> raw, IReadOnlyList<string> schemeKeys, out MountOptions options, out string? error)
    {
        options = MountOptions.Default;
        var readOnly = false;
        var sync = MountOptions.DEFAULT_SYNC_INTERVAL_SECONDS;
        int? owner = null, group = null, mode = null;
        var blockSize = MountOptions.DEFAULT_BLOCK_SIZE;
        var writeType = WriteType.AsyncThrough;
        long quotaBytes = 0, quotaFiles = 0;
        var writeReplicas = 1;
        IReadOnlyList<string>? readers = null, writers = null;
        var properties = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (rawKey, rawValue) in raw)
        {
            var key = rawKey.Trim().ToLowerInvariant();
            var value = rawValue.Trim();
            switch (key)
            {
                case "readonly":
                case "read-only":
                    if (value.Length == 0)
                    {
                        readOnly = true;
                    }
                    else if (!bool.TryParse(value, out readOnly))
                    {
                        error = $"option readonly: '{value}' is not true or false";
                        return false;
                    }

                    break;
                case "sync-interval":
                    if (!TryParseInterval(value, out sync))
                    {
                        error = $"option sync-interval: '{value}' is not -1 (never), 0 (every access) or a number of seconds up to {int.MaxValue} (also 30s, 5m, 2h, 7d, never, always)";
                        return false;
                    }

                    break;
                case "owner":
                case "group":
                    if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
                    {
                        error = $"option {key}: '{value}' is not a numeric {(key == "owner" ? "uid" : "gid")}";
                        return false;
                    }

                    if (key == "owner")
                    {
                        owner = id;
                    }
                    else
                    {
                        group = id;
                    }

                    break;
                case "block-size":
                    if (!GrainFs.DataPlane.ByteSize.TryParse(value, out var size, out var sizeError) || size < MountOptions.MIN_BLOCK_SIZE || size > MountOptions.MAX_BLOCK_SIZE)
                    {
                        error = $"option block-size: '{value}' {sizeError ?? "is outside 64KiB to 64MiB"}";
                        return false;
                    }

                    blockSize = (int)size;
                    break;
                case "write-type":
                    if (!WriteTypes.TryParse(value, out writeType))
                    {
                        error = $"option write-type: '{value}' is not one of {WriteTypes.Names}";
                        return false;
                    }

                    break;
                case "quota-bytes":
                    if (!GrainFs.DataPlane.ByteSize.TryParse(value, out quotaBytes, out var quotaError) || quotaBytes < 0)
                    {
                        error = $"option quota-bytes: '{value}' {quotaError ?? "is not a size such as 500GiB (0: no limit)"}";
                        return false;
                    }

                    break;
                case "quota-files":
                    if (!long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out quotaFiles))
                    {
                        error = $"option quota-files: '{value}' is not a number of files (0: no limit)";
                        return false;
                    }

                    break;
                case "write-replicas":
                    if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out writeReplicas) || writeReplicas is < 1 or > 2)
                    {
                        error = $"option write-replicas: '{value}' is not 1 or 2";
                        return false;
                    }

                    break;
                case "readers":
                case "writers":
                    if (!TryParseNames(value, out var names, out var namesError))
                    {
                        error = $"option {key}: {namesError}";
                        return false;
                    }

                    if (key == "readers")
                    {
                        readers = names;
                    }
                    else
                    {
                        writers = names;
                    }

                    break;
                case "mode":
                    if (!TryParseMode(value, out var bits))
                    {
                        error = $"option mode: '{value}' is not an octal permission mode such as 0755";
                        return false;
                    }

                    mode = bits;
                    break;
                default:
                    if (!schemeKeys.Contains(key))
                    {
                        var known = CommonKeys.Concat(schemeKeys);
                        error = $"unknown mount option '{rawKey}' for a {scheme} mount (known: {string.Join(", ", known)})";
                        return false;
                    }

                    if (value.Length == 0)
                    {
                        error = $"option {key} needs a value ({key}=…)";
                        return false;
                    }

                    properties[key] = value;
                    break;
            }
        }

        options = new MountOptions(readOnly, sync, owner, group, mode, properties, blockSize, writeType, quotaBytes, quotaFiles, writeReplicas, readers, writers);
        error = null;
        return true;
    }

    /// <summary>Parses a sync interval: -1/never, 0/always, seconds, or 30s / 5m / 2h.</summary>
    public static bool TryParseInterval(string text, out int seconds)
    {
        seconds = 0;
        switch (text.ToLowerInvariant())
        {
            case "never":
                seconds = -1;
                return true;
            case "always":
                seconds = 0;
                return true;
        }

        if (int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out seconds))
        {
            return seconds >= -1;
        }

        if (text.Length < 2)
        {
            return false;
        }

        var factor = char.ToLowerInvariant(text[^1]) switch { 's' => 1, 'm' => 60, 'h' => 3600, 'd' => 86400, _ => 0 };
        if (factor == 0 || !int.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var count))
        {
            return false;
        }

        var total = (long)count * factor;
        if (total > int.MaxValue)
        {
            return false; // about 68 years: longer is never meant
        }

        seconds = (int)total;
        return true;
    }

    /// <summary>
    /// Parses an access list: identity names separated by ':' (certificate common names), or '*' for every authenticated
    /// identity; empty means nobody but admins.
    /// </summary>
    public static bool TryParseNames(string text, out IReadOnlyList<string> names, out string? error)
    {
        var list = new List<string>();
        foreach (var name in text.Split(':', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (name != "*")
            {
                try
                {
                    GrainFs.DataPlane.Security.CertificateAuthority.ValidateName(name);
                }
                catch (GrainFs.DataPlane.Security.CredentialException e)
                {
                    names = [];
                    error = e.Message;
                    return false;
                }
            }

            if (!list.Contains(name, StringComparer.Ordinal))
            {
                list.Add(name);
            }
        }

        names = list;
        error = null;
        return true;
    }

    private static bool TryParseMode(string text, out int mode)
    {
        mode = 0;
        if (text.Length is 0 or > 5)
        {
            return false;
        }

        foreach (var c in text)
        {
            if (c is < '0' or > '7')
            {
                return false;
            }

            mode = (mode * 8) + (c - '0');
        }

        return mode <= 0xFFF;
    }

    /// <summary>Options as JSON for the metadata store, property values as given: the mount table passes its credentials sealed (<see cref="MountSecrets"/>).</summary>
    public static string ToJson(MountOptions options) => JsonSerializer.Serialize(new OptionsDocument
    {
        ReadOnly = options.ReadOnly,
        SyncIntervalSeconds = options.SyncIntervalSeconds,
        Owner = options.Owner,
        Group = options.Group,
        Mode = options.Mode,
        Properties = new Dictionary<string, string>(options.Properties),
        BlockSize = options.BlockSize,
        WriteType = WriteTypes.Name(options.WriteType),
        QuotaBytes = options.QuotaBytes,
        QuotaFiles = options.QuotaFiles,
        WriteReplicas = options.WriteReplicas,
        Readers = options.Readers is null ? null : [.. options.Readers],
        Writers = options.Writers is null ? null : [.. options.Writers],
    });

    /// <summary>Options from the metadata store's JSON.</summary>
    public static MountOptions FromJson(string json)
    {
        var document = JsonSerializer.Deserialize<OptionsDocument>(json) ?? new OptionsDocument();
        return new MountOptions(document.ReadOnly, document.SyncIntervalSeconds, document.Owner, document.Group, document.Mode,
            document.Properties ?? new Dictionary<string, string>(), document.BlockSize > 0 ? document.BlockSize : MountOptions.DEFAULT_BLOCK_SIZE,
            document.WriteType is { } type && WriteTypes.TryParse(type, out var writeType) ? writeType : WriteType.AsyncThrough,
            document.QuotaBytes, document.QuotaFiles, document.WriteReplicas is 1 or 2 ? document.WriteReplicas : 1,
            document.Readers, document.Writers);
    }

    private sealed class OptionsDocument
    {
        public bool ReadOnly { get; set; }

        public int SyncIntervalSeconds { get; set; } = MountOptions.DEFAULT_SYNC_INTERVAL_SECONDS;

        public int? Owner { get; set; }

        public int? Group { get; set; }

        public int? Mode { get; set; }

        public Dictionary<string, string>? Properties { get; set; }

        public int BlockSize { get; set; } = MountOptions.DEFAULT_BLOCK_SIZE;

        public string? WriteType { get; set; }

        public long QuotaBytes { get; set; }

        public long QuotaFiles { get; set; }

        public int WriteReplicas { get; set; } = 1;

        public List<string>? Readers { get; set; }

        public List<string>? Writers { get; set; }
    }
}
