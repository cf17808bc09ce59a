using System.Globalization;
using GrainFs.Client;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Benchmarks.Chaos;

/// <summary>
/// The deployment the fault suite and the soak run on, on loopback, every part real and started for real: PostgreSQL
/// (clustering and metadata), s3rver (objects on disk, so it can be stopped and started again) behind a proxy that can
/// reset connections mid-body, two silos — A with its SSD tier on infra/chaos/faultfs.py and its HDD tier on a folder,
/// B with a MEM tier on a tmpfs of its own and an HDD tier on a folder, both read and write workers, both reading
/// GrainFS's clock from a file the suite steps — an SDK client and a FUSE mount that find the silos in PostgreSQL.
/// Mounts: /ds (the dataset, read-only S3, cached at the start), /w (a local folder the writers write into),
/// /pin (a local folder, pinned).
/// </summary>
internal sealed class ChaosDeployment : IAsyncDisposable
{
    public const int Files = 300;
    public const int FileBytes = 48 << 10;
    public const int PinnedFiles = 20;

    private readonly string _s3rverJs;
    private readonly string _s3Folder;
    private readonly List<IAsyncDisposable> _parts = [];

    private ChaosDeployment(string work, string s3rverJs)
    {
        Work = work;
        _s3rverJs = s3rverJs;
        _s3Folder = Path.Combine(work, "s3");
    }

    public string Work { get; }

    /// <summary>The processes' logs (silos, mount), kept after the run: /tmp/grainfs-chaos-logs, emptied at each start.</summary>
    public static string Logs { get; } = Path.Combine(Path.GetTempPath(), "grainfs-chaos-logs");

    /// <summary>The bytes of /ds/NAME(i).</summary>
    public byte[][] Expected { get; } = new byte[Files][];

    public required PostgresServer Postgres { get; init; }

    public required string Connection { get; init; }

    public S3rverServer S3 { get; private set; } = null!;

    public int S3Port { get; private set; }

    public ResetProxy Proxy { get; private set; } = null!;

    public FaultFs Disk { get; private set; } = null!;

    /// <summary>The HDD tier folders of silos A and B.</summary>
    public string[] Hdd { get; } = new string[2];

    /// <summary>Silo B's MEM tier: a tmpfs of <see cref="TmpfsBytes"/>.</summary>
    public string Tmpfs { get; private set; } = null!;

    public const long TmpfsBytes = 32L << 20;

    /// <summary>The local folder /w is mounted from.</summary>
    public string Writes { get; private set; } = null!;

    /// <summary>The local folder /pin is mounted from.</summary>
    public string Pinned { get; private set; } = null!;

    /// <summary>The file both silos read their clock's offset from (<c>GRAINFS_FAULT_CLOCK_FILE</c>).</summary>
    public string ClockFile { get; private set; } = null!;

    /// <summary>Silos A and B; an entry is replaced when the silo is started again.</summary>
    public SiloProcess[] Silos { get; } = new SiloProcess[2];

    public GrainFsClient Client { get; private set; } = null!;

    public FuseProcess Fuse { get; private set; } = null!;

    public static string Name(int i) => $"f{i:D3}.bin";

    public static async Task<ChaosDeployment> StartAsync(string work, Action<string> progress)
    {
        var s3rverJs = Path.Combine(Repo.Root, "infra", "bench", "node_modules", "s3rver", "bin", "s3rver.js");
        if (Directory.Exists(Logs))
        {
            Directory.Delete(Logs, recursive: true);
        }

        Directory.CreateDirectory(Logs);
        progress($"starting PostgreSQL (logs of the silos and the mount in {Logs})");
        var postgres = await PostgresServer.StartNewAsync();
        string connection;
        try
        {
            connection = await postgres.CreateDatabaseAsync("chaos");
        }
        catch
        {
            await postgres.DisposeAsync();
            throw;
        }

        var deployment = new ChaosDeployment(work, s3rverJs) { Postgres = postgres, Connection = connection };
        deployment._parts.Add(postgres);
        try
        {
            await deployment.StartPartsAsync(progress);
            return deployment;
        }
        catch
        {
            await deployment.DisposeAsync();
            throw;
        }
    }

    private async Task StartPartsAsync(Action<string> progress)
    {
        // Every process this one starts (silos, the FUSE mount, the CLI) finds the cluster in PostgreSQL.
        Environment.SetEnvironmentVariable("GRAINFS_CLUSTER", Connection);
        var source = Directory.CreateDirectory(Path.Combine(Work, "source")).FullName;
        var random = new Random(17);
        for (var i = 0; i < Files; i++)
        {
            Expected[i] = new byte[FileBytes + i];
            random.NextBytes(Expected[i]);
            await File.WriteAllBytesAsync(Path.Combine(source, Name(i)), Expected[i]);
        }

        Pinned = Directory.CreateDirectory(Path.Combine(Work, "pinned")).FullName;
        for (var i = 0; i < PinnedFiles; i++)
        {
            var bytes = new byte[FileBytes];
            random.NextBytes(bytes);
            await File.WriteAllBytesAsync(Path.Combine(Pinned, $"p{i:D2}.bin"), bytes);
        }

        progress("starting s3rver behind a resetting proxy");
        S3 = await S3rverServer.StartAsync(_s3rverJs, _s3Folder, "chaos");
        S3Port = new Uri(S3.Endpoint).Port;
        using (var upload = S3.Client())
        {
            foreach (var path in Directory.EnumerateFiles(source))
            {
                await upload.PutObjectAsync(new Amazon.S3.Model.PutObjectRequest { BucketName = "chaos", Key = "ds/" + Path.GetFileName(path), FilePath = path, UseChunkEncoding = false });
            }
        }

        Proxy = new ResetProxy(S3Port);
        _parts.Add(Proxy);

        progress("starting the failing disk (faultfs.py), a tmpfs tier and two silos on PostgreSQL");
        Disk = await FaultFs.StartAsync();
        _parts.Add(Disk);
        Tmpfs = TestProcess.NewFolder("chaos-tmpfs");
        Directory.CreateDirectory(Tmpfs);
        await Run("mount", "-t", "tmpfs", "-o", $"size={TmpfsBytes},mode=0700", "tmpfs", Tmpfs);
        Hdd[0] = TestProcess.NewFolder("chaos-hdd-a");
        Hdd[1] = TestProcess.NewFolder("chaos-hdd-b");
        Writes = TestProcess.NewFolder("chaos-writes");
        Directory.CreateDirectory(Writes);
        ClockFile = Path.Combine(Work, "clock-offset");
        await File.WriteAllTextAsync(ClockFile, "00:00:00\n");
        var tiers = new[]
        {
            new[] { $"SSD={Disk.MountPoint}:256MiB", $"HDD={Hdd[0]}:256MiB" },
            // The MEM tier is given less than its tmpfs holds, so only a foreign file fills the tmpfs.
            new[] { $"MEM={Tmpfs}:24MiB", $"HDD={Hdd[1]}:256MiB" },
        };
        for (var s = 0; s < 2; s++)
        {
            var letter = (char)('a' + s);
            Silos[s] = await SiloProcess.StartAsync($"chaos-{letter}", new SiloProcessOptions
            {
                Tiers = tiers[s],
                ExtraArgs = ["--host", $"chaos-{letter}", "--name", $"chaos-{letter}", "--advertise", "127.0.0.1", "--roles", "read,write"],
                Environment = new Dictionary<string, string?>
                {
                    // A stalled fill is noticed in 5 s here (30 s by default), so that the suite's faults stay short.
                    ["GrainFs__Cache__FillStallTimeout"] = "00:00:05",
                    ["GRAINFS_FAULT_CLOCK_FILE"] = ClockFile,
                },
                Dashboard = false,
                Metrics = true,
                LogFile = Path.Combine(Logs, $"silo-{letter}.log"),
            });
        }

        Client = await GrainFsClient.ConnectAsync(new GrainFsClientOptions { Cluster = Connection, MetadataCacheEntries = 0 });
        Check(await Client.MountAsync("/ds", "s3://chaos/ds", new Dictionary<string, string>
        {
            ["endpoint"] = Proxy.Endpoint,
            ["access-key"] = S3.AccessKey,
            ["secret-key"] = S3.SecretKey,
            ["readonly"] = "true",
        }));
        Check(await Client.MountAsync("/w", $"file://{Writes}"));
        Check(await Client.MountAsync("/pin", $"file://{Pinned}", new Dictionary<string, string> { ["readonly"] = "true" }));
        Check(await Client.LoadAsync("/ds"));
        Check(await Client.PinAsync("/pin"));
        progress("mounting over FUSE");
        Fuse = await FuseProcess.StartAsync(Silos[0], logFile: Path.Combine(Logs, "mount.log"));
    }

    /// <summary>Kills silo <paramref name="s"/> (SIGKILL: a crashed node).</summary>
    public void KillSilo(int s) => Silos[s].Process.Kill();

    /// <summary>Starts silo <paramref name="s"/> again on its ports and folders (killing it first if it still runs).</summary>
    public async Task StartSiloAgainAsync(int s) => Silos[s] = await Silos[s].StartAgainAsync();

    /// <summary>Stops the S3 server (its objects stay on disk).</summary>
    public async Task StopS3Async() => await S3.DisposeAsync();

    /// <summary>Starts the S3 server again on its port, over the same objects.</summary>
    public async Task StartS3AgainAsync() => S3 = await S3rverServer.StartAsync(_s3rverJs, _s3Folder, "chaos", port: S3Port);

    /// <summary>Moves both silos' GrainFS clock to <paramref name="offset"/> from the host's (they read it within 200 ms).</summary>
    public Task SetClockAsync(TimeSpan offset) =>
        File.WriteAllTextAsync(ClockFile, (offset < TimeSpan.Zero ? "-" : string.Empty) + offset.Duration().ToString("c", CultureInfo.InvariantCulture) + "\n");

    /// <summary>Process ids to watch in the soak: both silos, the mount's supervisor and serving process, PostgreSQL's postmaster, s3rver.</summary>
    public IEnumerable<(string Name, int Pid)> Processes()
    {
        yield return ("silo A", Silos[0].Process.Id);
        yield return ("silo B", Silos[1].Process.Id);
        yield return ("FUSE supervisor", Fuse.Process.Id);
        var serving = GrainFs.Fuse.MountState.ReadPid(GrainFs.Fuse.MountState.For(Fuse.MountPoint, 0).ServingFile);
        if (serving != 0)
        {
            yield return ("FUSE server", serving);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Fuse is not null)
        {
            await Fuse.DisposeAsync();
        }

        if (Client is not null)
        {
            await Client.DisposeAsync();
        }

        foreach (var silo in Silos)
        {
            if (silo is not null)
            {
                await silo.DisposeAsync();
            }
        }

        if (S3 is not null)
        {
            await S3.DisposeAsync();
        }

        if (Tmpfs is not null)
        {
            await TestProcess.RunAsync("umount", ["-l", Tmpfs]);
        }

        for (var i = _parts.Count - 1; i >= 0; i--)
        {
            await _parts[i].DisposeAsync();
        }

        Environment.SetEnvironmentVariable("GRAINFS_CLUSTER", null);
    }

    public static void Check<T>(FsResult<T> result)
    {
        if (!result.IsOk)
        {
            throw new InvalidOperationException(result.Message);
        }
    }

    private static async Task Run(string file, params string[] args)
    {
        var (code, stdout, stderr) = await TestProcess.RunAsync(file, args, timeout: TimeSpan.FromSeconds(30));
        if (code != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({code}): {stdout}{stderr}");
        }
    }
}
