using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Processes;

/// <summary>The test infrastructure's wait for a line of a child's output: woken by the line, failed by the exit.</summary>
public sealed class TestProcessTests
{
    [Fact]
    public async Task A_wait_for_output_returns_when_the_line_arrives_or_has_arrived()
    {
        // The child stays up after its lines, so the waits are answered by the lines, not by the exit.
        await using var child = TestProcess.Start("/bin/sh", ["-c", "echo first; echo 'ready at 127.0.0.1' >&2; exec sleep 60"]);
        await child.WaitForOutputAsync("ready at", TimeSpan.FromSeconds(30));
        await child.WaitForOutputAsync("first", TimeSpan.FromSeconds(30));
        Assert.False(child.HasExited);
    }

    [Fact]
    public async Task A_wait_for_output_fails_with_the_output_when_the_process_exits_first()
    {
        await using var child = TestProcess.Start("/bin/sh", ["-c", "echo something else; exit 3"]);
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => child.WaitForOutputAsync("never printed", TimeSpan.FromSeconds(30)));
        Assert.Contains("exited (3)", error.Message, StringComparison.Ordinal);
        Assert.Contains("something else", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_wait_for_output_times_out_while_the_process_is_silent()
    {
        await using var child = TestProcess.Start("/bin/sh", ["-c", "exec sleep 60"]);
        await Assert.ThrowsAsync<TimeoutException>(() => child.WaitForOutputAsync("never printed", TimeSpan.FromMilliseconds(200)));
    }

    [Fact]
    public async Task Output_goes_to_the_log_file_and_stderr_to_its_callback()
    {
        var log = Path.Combine(TestProcess.NewFolder("log"), "child.log");
        var errors = new List<string>();
        var child = TestProcess.Start("/bin/sh", ["-c", "echo out; echo err >&2"], options: new TestProcessOptions
        {
            LogFile = log,
            OnStandardError = line =>
            {
                lock (errors)
                {
                    errors.Add(line);
                }
            },
        });
        await using (child)
        {
            Assert.Equal(0, await child.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        }

        Assert.Equal(["err"], errors);
        Assert.Equal(["err", "out"], File.ReadAllLines(log).Order(StringComparer.Ordinal));
    }
}
