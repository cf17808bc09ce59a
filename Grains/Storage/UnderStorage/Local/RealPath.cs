using System.Runtime.InteropServices;

namespace GrainFs.Storage.UnderStorage;

/// <summary>
/// realpath(3): the canonical absolute path of an existing file or folder, every symbolic link resolved in every
/// component (absolute or relative targets, chains; a loop ends in ELOOP), '.' and '..' applied after resolution, as
/// the kernel would walk them. .NET has no public equivalent: <see cref="FileSystemInfo.ResolveLinkTarget"/> follows the
/// last component only, so a link under a linked folder would go unseen. This is what confines a mount to its root.
/// </summary>
public static partial class RealPath
{
    /// <summary>ENOENT: a component does not exist (or a link dangles).</summary>
    public const int ENOENT = 2;

    /// <summary>EACCES: a folder on the way may not be searched.</summary>
    public const int EACCES = 13;

    /// <summary>ENOTDIR: a file stands where a folder of the path should be.</summary>
    public const int ENOTDIR = 20;

    /// <summary>ELOOP: too many links on the way (a loop).</summary>
    public const int ELOOP = 40;

    /// <summary>
    /// The canonical path of <paramref name="path"/> (absolute, NUL-free), or null with <paramref name="errno"/> set
    /// (<see cref="ENOENT"/>, <see cref="EACCES"/>, <see cref="ENOTDIR"/>, <see cref="ELOOP"/>, …).
    /// </summary>
    public static string? Resolve(string path, out int errno)
    {
        if (path.Length == 0 || path.Contains('\0', StringComparison.Ordinal))
        {
            // C would stop at the NUL and resolve a different path.
            errno = ENOENT;
            return null;
        }

        var resolved = NativeRealPath(path, IntPtr.Zero);
        if (resolved == IntPtr.Zero)
        {
            errno = Marshal.GetLastPInvokeError();
            return null;
        }

        try
        {
            errno = 0;
            return Marshal.PtrToStringUTF8(resolved);
        }
        finally
        {
            NativeFree(resolved);
        }
    }

    /// <summary>The canonical path of <paramref name="path"/>, or the path itself made absolute when it cannot be resolved.</summary>
    public static string ResolveOrFull(string path) => Resolve(Path.GetFullPath(path), out _) ?? Path.GetFullPath(path);

    /// <summary>True when the canonical <paramref name="path"/> is <paramref name="root"/> or lies below it (both canonical).</summary>
    public static bool IsSameOrBelow(string path, string root) =>
        root == "/"
            ? path.StartsWith('/')
            : path.Length == root.Length
                ? string.Equals(path, root, StringComparison.Ordinal)
                : path.Length > root.Length && path[root.Length] == '/' && path.StartsWith(root, StringComparison.Ordinal);

    [LibraryImport("libc", EntryPoint = "realpath", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr NativeRealPath(string path, IntPtr resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void NativeFree(IntPtr pointer);
}
