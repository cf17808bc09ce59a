using GrainFs.DataPlane;

namespace GrainFs.Tests.Unit;

public class ByteSizeTests
{
    [Theory]
    [InlineData("4096", 4096L)]
    [InlineData("64KiB", 65536L)]
    [InlineData("512MiB", 536870912L)]
    [InlineData("1.5GiB", 1610612736L)]
    [InlineData("2TiB", 2199023255552L)]
    [InlineData("4gb", 4294967296L)]
    [InlineData("10 M", 10485760L)]
    public void Parses_sizes(string text, long bytes) => Assert.Equal(bytes, ByteSize.Parse(text));

    [Theory]
    [InlineData("")]
    [InlineData("lots")]
    [InlineData("-1GiB")]
    [InlineData("12XB")]
    public void Refuses_non_sizes_naming_the_text(string text)
    {
        Assert.False(ByteSize.TryParse(text, out _, out var error));
        Assert.NotNull(error);
    }

    [Fact]
    public void Formats_readably() => Assert.Equal("1.5 GiB", ByteSize.Format(1610612736L));
}
