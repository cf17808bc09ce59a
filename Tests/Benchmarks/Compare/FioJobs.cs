using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace GrainFs.Benchmarks.Compare;

/// <summary>
/// The harness's fio section: the same three fio jobs on every system that shows the dataset as a folder (local disk
/// and the FUSE mounts), with each system's cache warm. fio's invalidate=1 (its default) drops the kernel's page cache of
/// the files before a job, so the reads reach the system itself. Each job is time-based, so a fast system reads its file
/// several times over.
/// </summary>
internal static class FioJobs
{
    /// <summary>Seconds each job runs.</summary>
    public const int Runtime = 3;

    /// <summary>The jobs: sequential and random reads of a large file, random reads over every file of the dataset.</summary>
    public static readonly FioJob[] All =
    [
        new("fio seq", "sequential 1 MiB reads of a large file, 1 job (psync)", ["--rw=read", "--bs=1M", "--numjobs=1"], LargeFile: true),
        new("fio rand", "random 128 KiB reads of a large file, 4 jobs (psync)", ["--rw=randread", "--bs=128k", "--numjobs=4"], LargeFile: true),
        new("fio small", "random 16 KiB reads over every file of the dataset (fio's opendir), 4 jobs (psync)", ["--rw=randread", "--bs=16k", "--numjobs=4"], LargeFile: false),
    ];

    /// <summary>Runs <paramref name="job"/> over <paramref name="folder"/> (or its file <paramref name="largeFile"/>); MB/s read.</summary>
    public static async Task<double> RunAsync(FioJob job, string folder, string largeFile, CancellationToken ct)
    {
        var arguments = new List<string>
        {
            "--name=" + job.Name.Replace(' ', '-'),
            job.LargeFile ? "--filename=" + Path.Combine(folder, largeFile) : "--opendir=" + folder,
            "--ioengine=psync",
            "--readonly",
            "--time_based",
            "--runtime=" + Runtime.ToString(CultureInfo.InvariantCulture),
            "--group_reporting",
            "--output-format=json",
        };
        arguments.AddRange(job.Options);
        using var fio = Process.Start(new ProcessStartInfo("fio", arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = fio.StandardOutput.ReadToEndAsync(ct);
        var error = fio.StandardError.ReadToEndAsync(ct);
        await fio.WaitForExitAsync(ct);
        var text = await output;
        if (fio.ExitCode != 0)
        {
            throw new InvalidOperationException($"{job.Name} over {folder} failed (exit {fio.ExitCode}): {(await error).Trim().Split('\n').LastOrDefault()}");
        }

        return ReadBandwidth(text) / 1e6;
    }

    /// <summary>
    /// Bytes per second of fio's JSON output summed over its jobs. fio may print lines ahead of the JSON ("fio: opendir
    /// added N files"), which are skipped.
    /// </summary>
    public static double ReadBandwidth(string output)
    {
        var start = output.IndexOf('{', StringComparison.Ordinal);
        if (start < 0)
        {
            throw new InvalidOperationException($"fio printed no JSON: {output.Trim()}");
        }

        using var json = JsonDocument.Parse(output.AsMemory(start));
        var total = 0.0;
        foreach (var job in json.RootElement.GetProperty("jobs").EnumerateArray())
        {
            if (job.GetProperty("error").GetInt32() != 0)
            {
                throw new InvalidOperationException($"fio job {job.GetProperty("jobname").GetString()} reported error {job.GetProperty("error").GetInt32()}");
            }

            total += job.GetProperty("read").GetProperty("bw_bytes").GetDouble();
        }

        return total;
    }
}

/// <summary>One fio job of the harness.</summary>
internal sealed record FioJob(string Name, string Description, string[] Options, bool LargeFile);
