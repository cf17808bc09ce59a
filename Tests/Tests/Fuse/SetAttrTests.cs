using GrainFs.Fuse;

namespace GrainFs.Tests.Fuse;

/// <summary>setattr's to_set bits (FUSE_SET_ATTR_*) decoded into an <see cref="AttributeChange"/>, without a mount.</summary>
public class SetAttrTests
{
    private static readonly DateTime Now = new(2026, 12, 1, 10, 30, 0, DateTimeKind.Utc);

    private static Native.Stat Stat() => new()
    {
        Mode = 0x8000 | 0x9ED, // S_IFREG | 04755: the type bits never reach the change
        Uid = 1234,
        Gid = 4321,
        Size = 4096,
        MtimeSec = 1_700_000_000,
        MtimeNsec = 123_456_789,
        AtimeSec = 1,
        CtimeSec = 2,
    };

    private static AttributeChange Decode(int toSet, Native.Stat? stat = null)
    {
        Assert.Equal(FsStatus.Ok, SetAttr.Decode(toSet, stat ?? Stat(), Now, out var change));
        return change;
    }

    [Fact]
    public void Each_bit_takes_its_field_from_the_stat_and_nothing_else()
    {
        Assert.Equal(new AttributeChange(Mode: 0x9ED), Decode(SetAttr.Mode));
        Assert.Equal(new AttributeChange(Uid: 1234), Decode(SetAttr.Uid));
        Assert.Equal(new AttributeChange(Gid: 4321), Decode(SetAttr.Gid));
        Assert.Equal(new AttributeChange(Size: 4096), Decode(SetAttr.Size));
        Assert.Equal(new AttributeChange(MtimeUtc: DateTime.UnixEpoch.AddSeconds(1_700_000_000).AddTicks(1_234_567)), Decode(SetAttr.Mtime));
    }

    [Fact]
    public void Chown_and_truncate_together_set_owner_group_and_size()
    {
        var change = Decode(SetAttr.Uid | SetAttr.Gid | SetAttr.Size, Stat() with { Size = 0 });
        Assert.Equal(new AttributeChange(Uid: 1234, Gid: 4321, Size: 0), change);
    }

    [Fact]
    public void Mtime_now_is_the_clock_even_with_mtime_set()
    {
        Assert.Equal(Now, Decode(SetAttr.MtimeNow).MtimeUtc);
        // The kernel sends MTIME with MTIME_NOW (touch): the stat's time is then not the one meant.
        Assert.Equal(Now, Decode(SetAttr.Mtime | SetAttr.MtimeNow | SetAttr.Atime | SetAttr.AtimeNow).MtimeUtc);
        Assert.Equal(DateTimeKind.Utc, Decode(SetAttr.Mtime).MtimeUtc!.Value.Kind);
    }

    [Theory]
    [InlineData(SetAttr.Atime)]
    [InlineData(SetAttr.AtimeNow)]
    [InlineData(SetAttr.Ctime)]
    [InlineData(SetAttr.Atime | SetAttr.AtimeNow | SetAttr.Ctime)]
    [InlineData(0)]
    public void Atime_and_ctime_alone_change_nothing(int toSet) => Assert.True(Decode(toSet).IsEmpty);

    [Fact]
    public void A_modification_time_a_datetime_cannot_hold_is_einval()
    {
        Assert.Equal(FsStatus.InvalidArgument, SetAttr.Decode(SetAttr.Mtime, Stat() with { MtimeSec = long.MaxValue }, Now, out _));
        Assert.Equal(FsStatus.InvalidArgument, SetAttr.Decode(SetAttr.Mtime, Stat() with { MtimeSec = -62_135_596_801 }, Now, out _));
        Assert.Equal(FsStatus.InvalidArgument, SetAttr.Decode(SetAttr.Mtime, Stat() with { MtimeNsec = 1_000_000_000 }, Now, out _));
        // Before 1970 is fine; and the same stat with MTIME_NOW does not look at it.
        Assert.Equal(new DateTime(1969, 12, 31, 23, 59, 59, DateTimeKind.Utc), Decode(SetAttr.Mtime, Stat() with { MtimeSec = -1, MtimeNsec = 0 }).MtimeUtc);
        Assert.Equal(Now, Decode(SetAttr.MtimeNow, Stat() with { MtimeSec = long.MaxValue }).MtimeUtc);
    }
}
