using System.Globalization;

namespace GrainFs.DataPlane;

/// <summary>Byte sizes as people write them: 4096, 64KiB, 512MiB, 1.5GiB, 2TiB (K/M/G/T and KB/MB/GB/TB are binary too).</summary>
public static class ByteSize
{
    private static readonly (string Suffix, long Factor)[] Units =
    [
        ("TiB", 1L << 40), ("GiB", 1L << 30), ("MiB", 1L << 20), ("KiB", 1L << 10),
        ("TB", 1L << 40), ("GB", 1L << 30), ("MB", 1L << 20), ("KB", 1L << 10),
        ("T", 1L << 40), ("G", 1L << 30), ("M", 1L << 20), ("K", 1L << 10),
        ("B", 1L),
    ];

    /// <summary>Parses a size; false with a reason when the text is not one.</summary>
    public static bool TryParse(string? text, out long bytes, out string? error)
    {
        bytes = 0;
        var value = text?.Trim();
        if (string.IsNullOrEmpty(value))
        {
            error = "empty size";
            return false;
        }

        long factor = 1;
        foreach (var (suffix, unit) in Units)
        {
            if (value.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                factor = unit;
                value = value[..^suffix.Length].TrimEnd();
                break;
            }
        }

        if (!decimal.TryParse(value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number))
        {
            error = $"'{text}' is not a size (examples: 4096, 64KiB, 512MiB, 4GiB, 1TiB)";
            return false;
        }

        var total = number * factor;
        if (total > long.MaxValue)
        {
            error = $"'{text}' is too large";
            return false;
        }

        bytes = (long)decimal.Floor(total);
        error = null;
        return true;
    }

    /// <summary>Parses a size or throws <see cref="FormatException"/> naming the text.</summary>
    public static long Parse(string text) =>
        TryParse(text, out var bytes, out var error) ? bytes : throw new FormatException(error);

    /// <summary>Formats a size with the largest binary unit that keeps it readable (1.5 GiB).</summary>
    public static string Format(long bytes)
    {
        string[] names = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        double value = bytes;
        var unit = 0;
        while (Math.Abs(value) >= 1024 && unit < names.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return unit == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{bytes} B")
            : string.Create(CultureInfo.InvariantCulture, $"{value:0.##} {names[unit]}");
    }
}
