using System.Text;

namespace GrainFs;

/// <summary>
/// GrainFS paths: absolute, slash-separated, no relative components. Validation here is shared by
/// the CLI, the SDK and the grains so every entry point refuses the same inputs with the same words.
/// </summary>
public static class FsPath
{
    /// <summary>Longest name of one path component, in UTF-8 bytes (NAME_MAX).</summary>
    public const int MaxNameBytes = 255;

    /// <summary>Longest whole path, in UTF-8 bytes (PATH_MAX).</summary>
    public const int MaxPathBytes = 4096;

    /// <summary>The root of the namespace.</summary>
    public const string Root = "/";

    /// <summary>
    /// Checks and normalises a user-supplied path: it must be absolute, must not contain empty,
    /// '.' or '..' components, and names must fit NAME_MAX. A single trailing slash is dropped.
    /// </summary>
    public static FsStatus TryNormalize(string? path, out string normalized, out string? error)
    {
        normalized = string.Empty;
        if (string.IsNullOrEmpty(path))
        {
            error = "path is empty";
            return FsStatus.InvalidArgument;
        }

        if (path[0] != '/')
        {
            error = $"path '{path}' is not absolute (GrainFS paths start with /)";
            return FsStatus.InvalidArgument;
        }

        if (path.Contains('\0', StringComparison.Ordinal))
        {
            error = "path contains a NUL character";
            return FsStatus.InvalidArgument;
        }

        if (!System.Text.Ascii.IsValid(path) && LoneSurrogateAt(path) is var at and >= 0)
        {
            // Not Unicode: it has no UTF-8 form, and encoding it would turn it into another name (U+FFFD).
            error = $"path '{path[..at]}…' is not valid Unicode (a lone UTF-16 surrogate at character {at})";
            return FsStatus.InvalidArgument;
        }

        if (Encoding.UTF8.GetByteCount(path) > MaxPathBytes)
        {
            error = $"path is longer than {MaxPathBytes} bytes";
            return FsStatus.NameTooLong;
        }

        var trimmed = path.Length > 1 && path[^1] == '/' ? path[..^1] : path;
        if (trimmed == Root)
        {
            normalized = Root;
            error = null;
            return FsStatus.Ok;
        }

        var start = 1;
        while (start <= trimmed.Length)
        {
            var end = trimmed.IndexOf('/', start);
            if (end < 0)
            {
                end = trimmed.Length;
            }

            var name = trimmed.AsSpan(start, end - start);
            var status = CheckName(name, out error);
            if (status != FsStatus.Ok)
            {
                error = $"path '{path}': {error}";
                return status;
            }

            start = end + 1;
        }

        normalized = trimmed;
        error = null;
        return FsStatus.Ok;
    }

    /// <summary>Where <paramref name="text"/> has a UTF-16 surrogate that is not half of a pair, or -1.</summary>
    private static int LoneSurrogateAt(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(text[i]))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>Checks one path component (a file or directory name).</summary>
    public static FsStatus CheckName(ReadOnlySpan<char> name, out string? error)
    {
        if (name.IsEmpty)
        {
            error = "empty name (a doubled slash)";
            return FsStatus.InvalidArgument;
        }

        if (name is "." || name is "..")
        {
            error = $"relative component '{name}' is not allowed";
            return FsStatus.InvalidArgument;
        }

        if (name.Contains('/') || name.Contains('\0'))
        {
            error = $"name '{name}' contains '/' or NUL";
            return FsStatus.InvalidArgument;
        }

        if (Encoding.UTF8.GetByteCount(name) > MaxNameBytes)
        {
            error = $"name '{name[..Math.Min(32, name.Length)]}…' is longer than {MaxNameBytes} bytes";
            return FsStatus.NameTooLong;
        }

        error = null;
        return FsStatus.Ok;
    }

    /// <summary>
    /// Checks a path relative to a mount's root, as it reaches a grain or an under-storage adapter: "" is the root, else
    /// names joined by single slashes, none empty, '.' or '..', none with NUL, each within NAME_MAX, the whole within
    /// PATH_MAX. A path that passes cannot name anything outside the mount by its words (symbolic links are the
    /// adapter's to confine). The error names the path.
    /// </summary>
    public static FsStatus CheckRelative(string? relative, out string? error)
    {
        if (relative is null)
        {
            error = "relative path is missing";
            return FsStatus.InvalidArgument;
        }

        if (relative.Length == 0)
        {
            error = null;
            return FsStatus.Ok;
        }

        if (Encoding.UTF8.GetByteCount(relative) > MaxPathBytes)
        {
            error = $"relative path is longer than {MaxPathBytes} bytes";
            return FsStatus.NameTooLong;
        }

        var start = 0;
        while (start <= relative.Length)
        {
            var end = relative.IndexOf('/', start);
            if (end < 0)
            {
                end = relative.Length;
            }

            var status = CheckName(relative.AsSpan(start, end - start), out error);
            if (status != FsStatus.Ok)
            {
                error = $"relative path '{Printable(relative)}': {Printable(error!)}";
                return status;
            }

            start = end + 1;
        }

        error = null;
        return FsStatus.Ok;
    }

    /// <summary>True when <paramref name="relative"/> passes <see cref="CheckRelative"/>.</summary>
    public static bool IsValidRelative(string? relative) => CheckRelative(relative, out _) == FsStatus.Ok;

    /// <summary>Text of a caller's path for a message: NUL shown as \0, at most 200 characters.</summary>
    private static string Printable(string text)
    {
        var shown = text.Length > 200 ? text[..200] + "…" : text;
        return shown.Replace("\0", "\\0", StringComparison.Ordinal);
    }

    /// <summary>True when <paramref name="path"/> equals <paramref name="ancestor"/> or lies below it. Both normalised.</summary>
    public static bool IsSameOrBelow(string path, string ancestor)
    {
        if (ancestor == Root)
        {
            return true;
        }

        return path.Length == ancestor.Length
            ? string.Equals(path, ancestor, StringComparison.Ordinal)
            : path.Length > ancestor.Length && path[ancestor.Length] == '/' && path.StartsWith(ancestor, StringComparison.Ordinal);
    }

    /// <summary>Joins a normalised directory path and a child name.</summary>
    public static string Combine(string directory, string name) =>
        directory == Root ? "/" + name : directory + "/" + name;

    /// <summary>Joins two relative paths ("" is the root).</summary>
    public static string CombineRelative(string directory, string name) =>
        directory.Length == 0 ? name : directory + "/" + name;

    /// <summary>Splits a normalised relative path into its parent ("" at the top) and its last name.</summary>
    public static (string Parent, string Name) SplitRelative(string relative)
    {
        var slash = relative.LastIndexOf('/');
        return slash < 0 ? (string.Empty, relative) : (relative[..slash], relative[(slash + 1)..]);
    }
}
