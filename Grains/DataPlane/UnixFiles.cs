using System.Globalization;
using System.Runtime.InteropServices;

namespace GrainFs.DataPlane;

/// <summary>What statx(2) says of a path: its owner, group, type and mode bits.</summary>
/// <param name="Uid">The owner's user id.</param>
/// <param name="Gid">The group id.</param>
/// <param name="Mode">The type and permission bits (st_mode).</param>
public readonly record struct UnixFileStatus(uint Uid, uint Gid, int Mode)
{
    /// <summary>The permission bits, setuid, setgid and sticky included (07777).</summary>
    public int Permissions => Mode & 0xFFF;

    /// <summary>A directory.</summary>
    public bool IsDirectory => (Mode & 0xF000) == 0x4000;

    /// <summary>A symbolic link (only when stat'ed without following links).</summary>
    public bool IsSymbolicLink => (Mode & 0xF000) == 0xA000;
}

/// <summary>
/// The few POSIX calls .NET does not offer, for the checks that keep local files private: owners (statx, which has one
/// layout on every architecture), user and group names, the effective user, and changing a file's group. Linux only;
/// callers skip them on Windows.
/// </summary>
public static partial class UnixFiles
{
    /// <summary>Group and other may read or write: 0066.</summary>
    public const int GROUP_OR_OTHER_READ_WRITE = 0x36;

    /// <summary>Group and other may write: 0022.</summary>
    public const int GROUP_OR_OTHER_WRITE = 0x12;

    private const int AT_FDCWD = -100;
    private const int AT_SYMLINK_NOFOLLOW = 0x100;
    private const uint STATX_BASIC_STATS = 0x7FF;
    private const int STATX_SIZE = 256;
    private const int ENOENT = 2;
    private const int ENOTDIR = 20;

    /// <summary>The user this process acts as (geteuid).</summary>
    public static uint EffectiveUserId => GetEffectiveUserId();

    /// <summary>True when this process may give its files the group <paramref name="gid"/>: root, or a member (its effective or a supplementary group).</summary>
    public static unsafe bool MayUseGroup(uint gid)
    {
        if (GetEffectiveUserId() == 0 || GetEffectiveGroupId() == gid)
        {
            return true;
        }

        var count = GetGroups(0, null);
        if (count <= 0)
        {
            return false;
        }

        var groups = new uint[count];
        fixed (uint* list = groups)
        {
            count = GetGroups(count, list);
        }

        return count > 0 && Array.IndexOf(groups, gid, 0, count) >= 0;
    }

    /// <summary>The status of <paramref name="path"/>, or null when it does not exist; the link itself when <paramref name="followLinks"/> is false.</summary>
    public static unsafe UnixFileStatus? Stat(string path, bool followLinks = true)
    {
        var buffer = stackalloc byte[STATX_SIZE];
        if (StatX(AT_FDCWD, path, followLinks ? 0 : AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, buffer) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno is ENOENT or ENOTDIR)
            {
                return null;
            }

            throw new IOException($"cannot stat '{path}': {Marshal.GetPInvokeErrorMessage(errno)}");
        }

        var span = new ReadOnlySpan<byte>(buffer, STATX_SIZE);
        // Native byte order; stx_uid, stx_gid and stx_mode sit at the same offsets on every architecture.
        return new UnixFileStatus(MemoryMarshal.Read<uint>(span[20..]), MemoryMarshal.Read<uint>(span[24..]), MemoryMarshal.Read<ushort>(span[28..]));
    }

    /// <summary>A group by name or number; false when there is no such group.</summary>
    public static bool TryGetGroupId(string group, out uint gid)
    {
        if (uint.TryParse(group, NumberStyles.None, CultureInfo.InvariantCulture, out gid))
        {
            return true;
        }

        var entry = GetGroupByName(group);
        if (entry == IntPtr.Zero)
        {
            gid = 0;
            return false;
        }

        // struct group { char *gr_name; char *gr_passwd; gid_t gr_gid; char **gr_mem; }
        gid = (uint)Marshal.ReadInt32(entry, 2 * IntPtr.Size);
        return true;
    }

    /// <summary>A user id with its name, e.g. <c>65534 (nobody)</c>.</summary>
    public static string DescribeUser(uint uid) => Describe(uid, GetUserById(uid));

    /// <summary>A group id with its name, e.g. <c>1001 (grainfs-readers)</c>.</summary>
    public static string DescribeGroup(uint gid) => Describe(gid, GetGroupById(gid));

    /// <summary>Permission bits as octal, e.g. <c>0750</c>.</summary>
    public static string Octal(int permissions) => Convert.ToString(permissions & 0xFFF, 8).PadLeft(4, '0');

    /// <summary>Gives <paramref name="path"/> the group <paramref name="gid"/> (its owner stays); throws <see cref="IOException"/> with the reason.</summary>
    public static void ChangeGroup(string path, uint gid)
    {
        if (ChangeOwner(path, uint.MaxValue, gid) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"cannot give '{path}' the group {DescribeGroup(gid)}: {Marshal.GetPInvokeErrorMessage(errno)}");
        }
    }

    // struct passwd and struct group both begin with the name.
    private static string Describe(uint id, IntPtr entry) =>
        entry != IntPtr.Zero && Marshal.PtrToStringUTF8(Marshal.ReadIntPtr(entry)) is { Length: > 0 } name
            ? string.Create(CultureInfo.InvariantCulture, $"{id} ({name})")
            : id.ToString(CultureInfo.InvariantCulture);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int StatX(int dirfd, string path, int flags, uint mask, byte* buffer);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEffectiveUserId();

    [LibraryImport("libc", EntryPoint = "getegid")]
    private static partial uint GetEffectiveGroupId();

    [LibraryImport("libc", EntryPoint = "getgroups")]
    private static unsafe partial int GetGroups(int size, uint* list);

    [LibraryImport("libc", EntryPoint = "getpwuid")]
    private static partial IntPtr GetUserById(uint uid);

    [LibraryImport("libc", EntryPoint = "getgrgid")]
    private static partial IntPtr GetGroupById(uint gid);

    [LibraryImport("libc", EntryPoint = "getgrnam", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr GetGroupByName(string name);

    [LibraryImport("libc", EntryPoint = "chown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int ChangeOwner(string path, uint owner, uint group);
}
