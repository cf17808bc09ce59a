namespace GrainFs.Tests.Unit;

public class FsPathTests
{
    [Theory]
    [InlineData("/", "/")]
    [InlineData("/data", "/data")]
    [InlineData("/data/", "/data")]
    [InlineData("/data/a b/ü.jpg", "/data/a b/ü.jpg")]
    public void Normalizes_valid_paths(string input, string expected)
    {
        Assert.Equal(FsStatus.Ok, FsPath.TryNormalize(input, out var normalized, out var error));
        Assert.Equal(expected, normalized);
        Assert.Null(error);
    }

    [Theory]
    [InlineData("", FsStatus.InvalidArgument, "empty")]
    [InlineData("relative", FsStatus.InvalidArgument, "not absolute")]
    [InlineData("/x/../y", FsStatus.InvalidArgument, "'..'")]
    [InlineData("/x/./y", FsStatus.InvalidArgument, "'.'")]
    [InlineData("/x//y", FsStatus.InvalidArgument, "empty name")]
    [InlineData("/x\0y", FsStatus.InvalidArgument, "NUL")]
    public void Refuses_bad_paths_naming_the_problem(string input, FsStatus status, string words)
    {
        Assert.Equal(status, FsPath.TryNormalize(input, out _, out var error));
        Assert.Contains(words, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_over_long_names_and_paths()
    {
        Assert.Equal(FsStatus.NameTooLong, FsPath.TryNormalize("/data/" + new string('n', 256), out _, out var error));
        Assert.Contains("255", error, StringComparison.Ordinal);
        Assert.Equal(FsStatus.Ok, FsPath.TryNormalize("/data/" + new string('n', 255), out _, out _));
        var deep = string.Concat(Enumerable.Repeat("/" + new string('d', 200), 21));
        Assert.Equal(FsStatus.NameTooLong, FsPath.TryNormalize(deep, out _, out _));
    }

    [Theory]
    [InlineData("")]
    [InlineData("a")]
    [InlineData("a/b c/ü.jpg")]
    [InlineData("..a/b..")]
    [InlineData(".hidden/x")]
    public void Accepts_clean_relative_paths(string relative)
    {
        Assert.Equal(FsStatus.Ok, FsPath.CheckRelative(relative, out var error));
        Assert.Null(error);
        Assert.True(FsPath.IsValidRelative(relative));
    }

    [Theory]
    [InlineData("..", "'..'")]
    [InlineData("../etc/passwd", "'..'")]
    [InlineData("up/set/../../../etc/passwd", "'..'")]
    [InlineData("a/..", "'..'")]
    [InlineData("./a", "'.'")]
    [InlineData("a/./b", "'.'")]
    [InlineData("/etc/passwd", "empty name")]
    [InlineData("a//b", "empty name")]
    [InlineData("a/", "empty name")]
    [InlineData("ok.txt\0/../../etc", "NUL")]
    public void Refuses_relative_paths_that_could_leave_the_mount(string relative, string words)
    {
        Assert.Equal(FsStatus.InvalidArgument, FsPath.CheckRelative(relative, out var error));
        Assert.Contains(words, error, StringComparison.Ordinal);
        Assert.Contains("relative path", error, StringComparison.Ordinal);
        Assert.DoesNotContain("\0", error, StringComparison.Ordinal);
        Assert.False(FsPath.IsValidRelative(relative));
        Assert.False(FsPath.IsValidRelative(null));
    }

    [Theory]
    [InlineData("1:0:..", "'..'")]
    [InlineData("1:0:../outside", "'..'")]
    [InlineData("1:2:set/../../etc", "'..'")]
    [InlineData("1:0:/etc", "empty name")]
    [InlineData("1:0:a\0b", "NUL")]
    public void Directory_keys_whose_path_could_leave_the_mount_are_refused_naming_the_key(string key, string words)
    {
        Assert.False(DirectoryKey.TryParse(key, out _, out var error));
        Assert.Contains(words, error, StringComparison.Ordinal);
        var thrown = Assert.Throws<ArgumentException>(() => DirectoryKey.Parse(key));
        Assert.Contains($"directory key '{key.Replace("\0", "\\0", StringComparison.Ordinal)}'", thrown.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/data", "/data", true)]
    [InlineData("/data/x", "/data", true)]
    [InlineData("/database", "/data", false)]
    [InlineData("/data", "/data/x", false)]
    [InlineData("/anything", "/", true)]
    public void Knows_what_lies_below_what(string path, string ancestor, bool below) =>
        Assert.Equal(below, FsPath.IsSameOrBelow(path, ancestor));

    [Fact]
    public void Directory_keys_round_trip_and_shard_stably()
    {
        var key = new DirectoryKey(42, 3, "a:b/c");
        Assert.Equal("42:3:a:b/c", key.ToString());
        Assert.Equal(key, DirectoryKey.Parse(key.ToString()));
        Assert.Contains("not a directory key", Assert.Throws<ArgumentException>(() => DirectoryKey.Parse("nonsense")).Message, StringComparison.Ordinal);
        Assert.Equal(0, DirectoryKey.ShardOf("x", 1));
        var counts = new int[9];
        for (var i = 0; i < 8000; i++)
        {
            var shard = DirectoryKey.ShardOf($"img{i:D5}.jpg", 8);
            Assert.InRange(shard, 1, 8);
            Assert.Equal(shard, DirectoryKey.ShardOf($"img{i:D5}.jpg", 8));
            counts[shard]++;
        }

        // The hash spreads dataset-like names: no shard gets less than half its fair share.
        Assert.All(counts.Skip(1), c => Assert.InRange(c, 500, 1500));
    }
}
