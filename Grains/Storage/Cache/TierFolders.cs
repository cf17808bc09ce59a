using GrainFs.DataPlane;
using Microsoft.Win32.SafeHandles;

namespace GrainFs.Storage.Cache;

/// <summary>
/// Who may read a tier's block files directly: only the silo's user (folders 0700, block files 0600), or also the
/// members of a short-circuit group (<c>--short-circuit-group</c>: folders 0750 with that group and the setgid bit, so
/// what is made inside gets the group too; block files 0640), e.g. the FUSE daemon's or a loader's user.
/// </summary>
/// <param name="FolderMode">The mode of the tier folder and the folders in it.</param>
/// <param name="FileMode">The mode of block files.</param>
/// <param name="Group">The short-circuit group's id, or null.</param>
public sealed record TierPermissions(UnixFileMode FolderMode, UnixFileMode FileMode, uint? Group)
{
    /// <summary>The silo's user only: 0700 and 0600.</summary>
    public static TierPermissions Private { get; } = new(
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute,
        UnixFileMode.UserRead | UnixFileMode.UserWrite,
        null);

    /// <summary>The silo's user and the members of <paramref name="gid"/>: 02750 and 0640.</summary>
    public static TierPermissions ForGroup(uint gid) => new(
        UnixFileMode.SetGroup | UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute,
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead,
        gid);

    /// <summary>The permissions <paramref name="options"/> ask for; throws <see cref="ArgumentException"/> for a group that does not exist.</summary>
    public static TierPermissions From(CacheOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.ShortCircuitGroup is not { Length: > 0 } group || OperatingSystem.IsWindows())
        {
            return Private;
        }

        return UnixFiles.TryGetGroupId(group.Trim(), out var gid)
            ? ForGroup(gid)
            : throw new ArgumentException($"GrainFs:Cache:ShortCircuitGroup = '{group}': no such group", nameof(options));
    }
}

/// <summary>
/// Tier folders as the silo owns them: a folder that already exists must be its user's own and writable by nobody else
/// (else another local user could have made it to read the cache, or to plant blocks in it), and the silo makes or
/// tightens its folders and block files to the <see cref="TierPermissions"/>.
/// </summary>
public static class TierFolders
{
    /// <summary>
    /// Null when <paramref name="path"/> does not exist yet, or is a folder the silo may use as a tier; else why not,
    /// naming the folder, its owner and its mode.
    /// </summary>
    public static string? Problem(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            return null;
        }

        var full = Path.GetFullPath(path);
        UnixFileStatus? found;
        try
        {
            found = UnixFiles.Stat(full, followLinks: false);
        }
        catch (IOException e)
        {
            return $"'{full}' cannot be checked: {e.Message}";
        }

        if (found is not { } status)
        {
            return null;
        }

        var self = UnixFiles.EffectiveUserId;
        if (status.IsSymbolicLink)
        {
            if (status.Uid != self && status.Uid != 0)
            {
                return $"'{full}' is a symbolic link owned by user {UnixFiles.DescribeUser(status.Uid)}, not by this silo's user {UnixFiles.DescribeUser(self)} or root: another user chose where it leads; remove it";
            }

            if (UnixFiles.Stat(full) is not { } target)
            {
                return $"'{full}' is a symbolic link that leads nowhere";
            }

            status = target;
        }

        if (!status.IsDirectory)
        {
            return $"'{full}' is not a folder (owner {UnixFiles.DescribeUser(status.Uid)}, mode {UnixFiles.Octal(status.Permissions)})";
        }

        if (status.Uid != self)
        {
            return $"'{full}' is owned by user {UnixFiles.DescribeUser(status.Uid)}, not by this silo's user {UnixFiles.DescribeUser(self)} (mode {UnixFiles.Octal(status.Permissions)}): " +
                "another user could read, replace or plant its blocks; remove it, or give it to the silo's user (chown)";
        }

        if ((status.Permissions & UnixFiles.GROUP_OR_OTHER_WRITE) != 0)
        {
            return $"'{full}' is writable by group or others (owner {UnixFiles.DescribeUser(status.Uid)}, mode {UnixFiles.Octal(status.Permissions)}): " +
                "other users could replace or plant its blocks; make it 0700 (chmod 700) or remove it";
        }

        return FormatProblem(full);
    }

    /// <summary>
    /// Makes the tier folder <paramref name="root"/> and its <c>blocks</c> folder with
    /// <paramref name="permissions"/>, or brings existing ones to them (the silo's own: anything else is refused with
    /// <see cref="InvalidOperationException"/> naming the folder, its owner and mode). Returns the mode the root had when
    /// it was another, for the log; null otherwise.
    /// </summary>
    public static string? Prepare(string root, TierPermissions permissions)
    {
        ArgumentNullException.ThrowIfNull(permissions);
        if (Problem(root) is { } problem)
        {
            throw new InvalidOperationException($"tier folder {problem}");
        }

        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(Path.Combine(root, "blocks"));
            return null;
        }

        string? before = null;
        if (Directory.Exists(root))
        {
            var mode = File.GetUnixFileMode(root);
            before = mode == permissions.FolderMode ? null : UnixFiles.Octal((int)mode);
        }
        else
        {
            Directory.CreateDirectory(root, permissions.FolderMode);
        }

        Apply(root, permissions);
        CheckFormat(root, permissions);
        var blocks = Path.Combine(root, "blocks");
        EnsureFolder(blocks, permissions);
        Apply(blocks, permissions);
        foreach (var shard in Directory.EnumerateDirectories(blocks))
        {
            Apply(shard, permissions);
        }

        return before;
    }

    /// <summary>The on-disk format of tier folders this build reads and writes (block files, the write journal).</summary>
    public const int Format = 1;

    /// <summary>The file in a tier folder that names its format: <c>grainfs-tier-format N</c>.</summary>
    public const string FormatFile = "FORMAT";

    private const string FormatPrefix = "grainfs-tier-format ";

    /// <summary>
    /// Checks the format a tier folder was written in, before anything in it is read (recovery drops block files it
    /// cannot read, and a newer format's would look like that; its journal holds files not yet uploaded): a folder
    /// without a FORMAT file (new, or made before there was one, in format 1) is marked with this build's format; a
    /// newer format or an unreadable FORMAT file is refused with <see cref="InvalidOperationException"/> naming the
    /// folder, leaving it untouched.
    /// </summary>
    public static void CheckFormat(string root, TierPermissions permissions)
    {
        ArgumentNullException.ThrowIfNull(permissions);
        var path = Path.Combine(root, FormatFile);
        if (!File.Exists(path))
        {
            var temp = path + ".tmp";
            using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                file.Write(System.Text.Encoding.ASCII.GetBytes($"{FormatPrefix}{Format}\n"));
                file.Flush(flushToDisk: true);
            }

            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(temp, permissions.FileMode);
            }

            File.Move(temp, path, overwrite: true);
            return;
        }

        if (FormatProblem(root) is { } problem)
        {
            throw new InvalidOperationException($"tier folder {problem}");
        }
    }

    /// <summary>Null when the tier folder <paramref name="root"/> has no FORMAT file or one this build reads; else why not, naming the folder.</summary>
    public static string? FormatProblem(string root)
    {
        var path = Path.Combine(root, FormatFile);
        if (!File.Exists(path))
        {
            return null;
        }

        var text = File.ReadAllText(path).Trim();
        if (!text.StartsWith(FormatPrefix, StringComparison.Ordinal)
            || !int.TryParse(text.AsSpan(FormatPrefix.Length), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var found)
            || found < 1)
        {
            return $"'{root}': its {FormatFile} file says '{Printable(text)}', not '{FormatPrefix}N': not a GrainFS tier folder, or damaged (move it away, or empty it)";
        }

        return found > Format
            ? $"'{root}' is in tier format {found}, written by a newer GrainFS; this one reads format {Format}: run the newer version on it, or empty the folder (written files not yet uploaded would be lost)"
            : null;
    }

    private static string Printable(string text) =>
        new([.. text.Take(40).Select(c => char.IsControl(c) ? '?' : c)]);

    /// <summary>A folder inside a prepared tier folder, made with <paramref name="permissions"/> when it is missing.</summary>
    public static void EnsureFolder(string path, TierPermissions permissions)
    {
        ArgumentNullException.ThrowIfNull(permissions);
        if (Directory.Exists(path))
        {
            return;
        }

        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
            return;
        }

        Directory.CreateDirectory(path, permissions.FolderMode);
        // mkdir(2) honours the umask; the mode must be exact for the group to read through it.
        File.SetUnixFileMode(path, permissions.FolderMode);
    }

    /// <summary>Gives a block file just created its mode (exact, whatever the umask); its group comes from the setgid folder.</summary>
    public static void SetFileMode(SafeFileHandle file, TierPermissions permissions)
    {
        ArgumentNullException.ThrowIfNull(permissions);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(file, permissions.FileMode);
        }
    }

    /// <summary>Brings a block file found at start to <paramref name="permissions"/> (a silo restarted with another short-circuit group).</summary>
    public static void Adopt(FileInfo file, TierPermissions permissions)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(permissions);
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        if (permissions.Group is { } gid && UnixFiles.Stat(file.FullName, followLinks: false) is { } status && status.Gid != gid)
        {
            UnixFiles.ChangeGroup(file.FullName, gid);
        }

        if (file.UnixFileMode != permissions.FileMode)
        {
            File.SetUnixFileMode(file.FullName, permissions.FileMode);
        }
    }

    private static void Apply(string folder, TierPermissions permissions)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        // Links followed: a tier root may be a link (checked by Problem) to the folder that gets the permissions.
        if (permissions.Group is { } gid && UnixFiles.Stat(folder) is { } status && status.Gid != gid)
        {
            UnixFiles.ChangeGroup(folder, gid);
        }

        // After the group: chown(2) may clear the setgid bit.
        File.SetUnixFileMode(folder, permissions.FolderMode);
    }
}
