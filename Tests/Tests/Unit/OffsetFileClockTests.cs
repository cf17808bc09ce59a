using System.Diagnostics;
using GrainFs.Grains;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Unit;

public class OffsetFileClockTests
{
    [Theory]
    [InlineData("02:00:00", 2 * 3600)]
    [InlineData("+02:00:00\n", 2 * 3600)]
    [InlineData("-00:30:00", -1800)]
    [InlineData(" 1.00:00:00 ", 86400)]
    [InlineData("00:00:00", 0)]
    public void Parses_signed_offsets(string text, int seconds)
    {
        Assert.True(OffsetFileClock.TryParse(text, out var offset));
        Assert.Equal(TimeSpan.FromSeconds(seconds), offset);
    }

    [Theory]
    [InlineData("")]
    [InlineData("2h")]
    [InlineData("--01:00:00")]
    [InlineData("soon")]
    public void Refuses_what_is_not_an_offset(string text) => Assert.False(OffsetFileClock.TryParse(text, out _));

    [Fact]
    public void A_missing_or_bad_file_is_refused_at_start_naming_it()
    {
        var folder = TestProcess.NewFolder("clock");
        Directory.CreateDirectory(folder);
        var missing = Path.Combine(folder, "none");
        Assert.Contains(missing, Assert.Throws<ArgumentException>(() => new OffsetFileClock(missing)).Message, StringComparison.Ordinal);
        var bad = Path.Combine(folder, "bad");
        File.WriteAllText(bad, "two hours");
        var error = Assert.Throws<ArgumentException>(() => new OffsetFileClock(bad)).Message;
        Assert.Contains(bad, error, StringComparison.Ordinal);
        Assert.Contains("two hours", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Steps_when_the_file_changes_and_keeps_the_last_offset_when_it_goes_bad()
    {
        var folder = TestProcess.NewFolder("clock");
        Directory.CreateDirectory(folder);
        var file = Path.Combine(folder, "offset");
        File.WriteAllText(file, "00:00:00");
        using var clock = new OffsetFileClock(file);
        Assert.True((clock.GetUtcNow() - DateTimeOffset.UtcNow).Duration() < TimeSpan.FromSeconds(5));

        var before = clock.GetTimestamp();
        File.WriteAllText(file, "02:00:00");
        await WaitAsync(() => clock.Offset == TimeSpan.FromHours(2));
        Assert.InRange(clock.GetUtcNow() - DateTimeOffset.UtcNow, TimeSpan.FromHours(2) - TimeSpan.FromSeconds(5), TimeSpan.FromHours(2) + TimeSpan.FromSeconds(5));
        Assert.True(clock.GetElapsedTime(before) >= TimeSpan.FromHours(2), "timestamps step with the clock");

        File.WriteAllText(file, "later");
        await WaitAsync(() => clock.Errors is not null);
        Assert.Equal(TimeSpan.FromHours(2), clock.Offset);
        Assert.Contains("later", clock.Errors, StringComparison.Ordinal);

        File.WriteAllText(file, "-01:00:00");
        await WaitAsync(() => clock.Offset == TimeSpan.FromHours(-1));
        Assert.Null(clock.Errors);
    }

    private static async Task WaitAsync(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "the clock did not follow its file within 10 s");
            await Task.Delay(50);
        }
    }
}
