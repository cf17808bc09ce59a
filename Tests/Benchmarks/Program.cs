using System.Globalization;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Benchmarks;

/// <summary>grainfs-bench &lt;benchmark&gt; [--flag value …]</summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "--help" or "-h")
        {
            Console.WriteLine("usage: grainfs-bench metadata [--entries 1000000] [--per-dir 1000] [--samples 200000] [--in-flight 1,16,64,256] [--folder DIR] [--silo DLL]");
            Console.WriteLine("       grainfs-bench cache [--big-mib 1024] [--small 10000] [--cold 1000] [--repeats 3] [--folder DIR] [--silo DLL]");
            Console.WriteLine("       grainfs-bench compare [--images 3000] [--large-mib 256] [--large-files 2] [--repeats 3] [--cold-repeats 2] [--readers 8] [--systems 'local disk,direct S3,GrainFS SDK,GrainFS FUSE,rclone,s3fs'] [--work DIR] [--out DIR]");
            Console.WriteLine("       grainfs-bench fuse [--small 10000] [--stat 100000] [--big-mib 1024] [--repeats 3] [--folder DIR] [--silo DLL] [--cli DLL]");
            Console.WriteLine("       grainfs-bench write [--only throughput,close,persist,rate,checkpoint] [--write-size 512MiB] [--checkpoint-size 2GiB] [--close-size 4MiB] [--close-files 10] [--persist-size 256MiB] [--persist-files 8] [--persist-rate 20MiB] [--rate-size 256MiB] [--repeats 3] [--out DIR] [--silo DLL] [--cli DLL]");
            Console.WriteLine("       grainfs-bench chaos [--only fuse-kill,silo-kill,silo-stop,pg-kill,pg-stop,s3-stall,s3-down,s3-reset,disk-eio,disk-full,tmpfs-full,tier-removed,files-removed,clock-step] [--hold 8]");
            Console.WriteLine("       grainfs-bench soak [--minutes 30] [--kill-every 180] [--sample 20]");
            Console.WriteLine("       grainfs-bench security [--only remote,stat,cold,short-circuit] [--big-mib 512] [--stat 20000] [--cold 500] [--readers 8] [--repeats 3] [--folder DIR] [--out DIR] [--silo DLL]");
            return args.Length == 0 ? 2 : 0;
        }

        // Silo data folders and other scratch folders go under a run root removed when the benchmark ends (unless
        // GRAINFS_TEST_ROOT names one that the caller owns); data sets stay in their --folder, made once and reused.
        using var runRoot = TestProcess.OwnRunRoot(Path.Combine(Path.GetTempPath(), "grainfs-bench"));
        var rest = new BenchArgs(args.Skip(1).ToArray());
        return args[0] switch
        {
            "metadata" => await MetadataBenchmark.RunAsync(rest),
            "cache" => await CacheBenchmark.RunAsync(rest),
            "fuse" => await FuseBenchmark.RunAsync(rest),
            "write" => await WriteBenchmark.RunAsync(rest),
            "compare" => await Compare.CompareBenchmark.RunAsync(rest),
            "security" => await SecurityBenchmark.RunAsync(rest),
            "chaos" => await Chaos.ChaosSuite.RunAsync(rest),
            "soak" => await Chaos.Soak.RunAsync(rest),
            _ => Unknown(args[0]),
        };
    }

    private static int Unknown(string name)
    {
        Console.Error.WriteLine($"grainfs-bench: unknown benchmark '{name}' (known: metadata, cache, fuse, write, compare, security, chaos, soak)");
        return 2;
    }
}

/// <summary>--flag value pairs.</summary>
internal sealed class BenchArgs(string[] args)
{
    public string Text(string flag, string fallback)
    {
        var i = Array.IndexOf(args, flag);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    /// <summary>The flag's value, or null when it is not given (the library then picks its default, such as the silo built next to the repository).</summary>
    public string? TextOrNull(string flag)
    {
        var i = Array.IndexOf(args, flag);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    public int Int(string flag, int fallback) => int.Parse(Text(flag, fallback.ToString(CultureInfo.InvariantCulture)), NumberStyles.None, CultureInfo.InvariantCulture);

    public int[] Ints(string flag, int[] fallback)
    {
        var text = Text(flag, string.Empty);
        return text.Length == 0 ? fallback : [.. text.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))];
    }
}
