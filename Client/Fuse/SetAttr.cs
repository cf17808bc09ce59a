namespace GrainFs.Fuse;

/// <summary>
/// setattr's <c>to_set</c> bits (FUSE_SET_ATTR_*, fuse_lowlevel.h) decoded into the VFS's <see cref="AttributeChange"/>:
/// mode, owner, size and mtime are taken from the struct stat libfuse passes; atime and ctime have nowhere to go in
/// GrainFS, so a change of them alone is accepted and changes nothing.
/// </summary>
internal static class SetAttr
{
    public const int Mode = 1 << 0;
    public const int Uid = 1 << 1;
    public const int Gid = 1 << 2;
    public const int Size = 1 << 3;
    public const int Atime = 1 << 4;
    public const int Mtime = 1 << 5;
    public const int AtimeNow = 1 << 7;
    public const int MtimeNow = 1 << 8;
    public const int Ctime = 1 << 10;

    // The Unix seconds a DateTime can hold (0001-01-01 to 9999-12-31).
    private const long MinSeconds = -62_135_596_800;
    private const long MaxSeconds = 253_402_300_799;

    /// <summary>
    /// The change <paramref name="toSet"/> asks for; <paramref name="nowUtc"/> stands for MTIME_NOW. EINVAL for a
    /// modification time outside what a <see cref="DateTime"/> holds (decoded in libfuse's callback: it must not throw).
    /// </summary>
    public static FsStatus Decode(int toSet, in Native.Stat stat, DateTime nowUtc, out AttributeChange change)
    {
        change = new AttributeChange();
        DateTime? mtime = null;
        if ((toSet & MtimeNow) != 0)
        {
            mtime = nowUtc;
        }
        else if ((toSet & Mtime) != 0)
        {
            if (stat.MtimeSec is < MinSeconds or > MaxSeconds || stat.MtimeNsec is < 0 or > 999_999_999)
            {
                return FsStatus.InvalidArgument;
            }

            mtime = DateTime.UnixEpoch.AddTicks((stat.MtimeSec * TimeSpan.TicksPerSecond) + (stat.MtimeNsec / 100));
        }

        change = new AttributeChange(
            Mode: (toSet & Mode) != 0 ? (int)(stat.Mode & 0xFFF) : null,
            Uid: (toSet & Uid) != 0 ? unchecked((int)stat.Uid) : null,
            Gid: (toSet & Gid) != 0 ? unchecked((int)stat.Gid) : null,
            MtimeUtc: mtime,
            Size: (toSet & Size) != 0 ? stat.Size : null);
        return FsStatus.Ok;
    }
}
