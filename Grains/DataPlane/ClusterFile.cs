namespace GrainFs.DataPlane;

/// <summary>
/// The <c>--cluster-file</c> of the silo and the command line: a file holding the Npgsql connection string, so that a
/// password is never on a command line (where <c>ps</c> shows it) or in the environment. The file must be the user's
/// own (or root's) and readable or writable by nobody else. Lines that are blank or start with '#' are skipped; the
/// first other line is the connection string. A password may also stay out of it: Npgsql reads <c>~/.pgpass</c> (or
/// the file <c>PGPASSFILE</c> names) for a connection string without one.
/// </summary>
public static class ClusterFile
{
    /// <summary>Reads the connection string; false with a message naming the file (never its contents) when it cannot be used.</summary>
    public static bool TryRead(string path, out string connection, out string error) =>
        OwnerOnlyFile.TryReadFirstLine(path, "the database connection", "a connection string (one line such as Host=db;Port=5432;Username=grainfs;Database=grainfs)", out connection, out error);
}

/// <summary>
/// A one-line secret kept in a file of the user's own (or root's) that group and others may neither read nor write:
/// the <c>--cluster-file</c> connection string, the <c>--web-password-file</c> password. Blank lines and lines starting
/// with '#' are skipped; the first other line is the value.
/// </summary>
public static class OwnerOnlyFile
{
    /// <summary>
    /// Reads the file's first line; false with a message naming the file (never its contents) when it cannot be used.
    /// <paramref name="holds"/> says what it holds ("the database connection"), <paramref name="expected"/> what a valid
    /// line is.
    /// </summary>
    public static bool TryReadFirstLine(string path, string holds, string expected, out string value, out string error)
    {
        value = string.Empty;
        var full = Path.GetFullPath(Security.CredentialFolder.ExpandHome(path.Trim()));
        if (!File.Exists(full))
        {
            error = Directory.Exists(full) ? $"'{full}' is a folder, not a file" : $"'{full}' does not exist";
            return false;
        }

        if (!OperatingSystem.IsWindows() && UnixFiles.Stat(full) is { } status)
        {
            if ((status.Permissions & UnixFiles.GROUP_OR_OTHER_READ_WRITE) != 0)
            {
                error = $"'{full}' is readable or writable by group or others (mode {UnixFiles.Octal(status.Permissions)}); it holds {holds}, so make it 0600 (chmod 600 '{full}')";
                return false;
            }

            var self = UnixFiles.EffectiveUserId;
            if (status.Uid != self && status.Uid != 0)
            {
                error = $"'{full}' is owned by user {UnixFiles.DescribeUser(status.Uid)}, not by this process's user {UnixFiles.DescribeUser(self)} or root; whoever owns it chooses {holds}";
                return false;
            }
        }

        string[] lines;
        try
        {
            lines = File.ReadAllLines(full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error = $"'{full}' cannot be read ({e.Message})";
            return false;
        }

        foreach (var line in lines)
        {
            var text = line.Trim();
            if (text.Length > 0 && text[0] != '#')
            {
                value = text;
                error = string.Empty;
                return true;
            }
        }

        error = $"'{full}' holds no value: it should hold {expected}";
        return false;
    }
}
