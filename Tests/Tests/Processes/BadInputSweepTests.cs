using System.Buffers.Binary;
using System.Globalization;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using GrainFs.Client;
using GrainFs.DataPlane.Blocks;
using GrainFs.DataPlane.Security;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Processes;

/// <summary>
/// What the bad-input sweep runs against: an embedded silo process (trust model on), a local folder mounted
/// read-write at /data, a bucket of odd keys at /odd-keys, a FUSE mount of the whole namespace, and an SDK client.
/// </summary>
public sealed class BadInputSweepFixture : IAsyncLifetime
{
    public static readonly byte[] Hello = Encoding.UTF8.GetBytes("hello, unharmed");

    public SiloProcess Silo { get; private set; } = null!;

    public FuseProcess Mount { get; private set; } = null!;

    public GrainFsClient Client { get; private set; } = null!;

    public string Folder { get; private set; } = null!;

    public string DataPort { get; private set; } = null!;

    public string Gateway => Silo.GatewayPort.ToString(CultureInfo.InvariantCulture);

    public async Task InitializeAsync()
    {
        var moto = await MotoServer.Shared;
        var bucket = await moto.CreateBucketAsync("oddkeys");
        foreach (var (key, _) in BadInputSweepTests.S3Keys)
        {
            try
            {
                await moto.PutAsync(bucket, key, Encoding.UTF8.GetBytes(key));
            }
            catch (Exception e)
            {
                throw new InvalidOperationException($"moto refused the key {JsonSerializer.Serialize(key)}: {e.Message}", e);
            }
        }

        Folder = TestProcess.NewFolder("sweep");
        await File.WriteAllBytesAsync(Path.Combine(Folder, "hello.txt"), Hello);
        Directory.CreateDirectory(Path.Combine(Folder, "fuse"));
        await File.WriteAllBytesAsync(Path.Combine(Folder, "fuse", "hello.txt"), Hello);
        Silo = await SiloProcess.StartAsync("sweep", environment: moto.Environment);
        Assert.Equal(0, (await Silo.CliAsync("fs", "mount", "/data", $"file://{Folder}")).ExitCode);
        Assert.Equal(0, (await Silo.CliAsync(["fs", "mount", "/odd-keys", $"s3://{bucket}", .. moto.MountOptions.SelectMany(o => new[] { "--option", $"{o.Key}={o.Value}" })])).ExitCode);
        DataPort = Regex.Match(Silo.Process.Output, @"Data port listening on (\S+)").Groups[1].Value;
        Client = await GrainFsClient.ConnectAsync(new GrainFsClientOptions { GatewayPort = Silo.GatewayPort, MountTableRefresh = TimeSpan.Zero });
        Mount = await FuseProcess.StartAsync(Silo);
    }

    /// <summary>The silo, the SDK and the FUSE mount still serve, and hello.txt still reads right.</summary>
    public async Task AssertUnharmedAsync()
    {
        Assert.False(Silo.Process.HasExited, "the silo exited:\n" + Silo.Process.Output);
        Assert.False(Mount.Process.HasExited, "the mount exited:\n" + Mount.Process.Output);
        var read = new byte[Hello.Length + 10];
        var got = await Client.ReadAsync("/data/hello.txt", 0, read);
        Assert.True(got.IsOk, got.Message);
        Assert.Equal(Hello, read[..got.Value]);
        Assert.Equal(Hello, await File.ReadAllBytesAsync(Path.Combine(Mount.MountPoint, "data", "hello.txt")));
        var (code, stdout, stderr) = await Silo.CliAsync("fs", "cat", "/data/hello.txt");
        Assert.True(code == 0 && stdout == Encoding.UTF8.GetString(Hello), stdout + stderr);
    }

    public async Task DisposeAsync()
    {
        await Mount.DisposeAsync();
        await Client.DisposeAsync();
        await Silo.DisposeAsync();
    }
}

/// <summary>
/// The bad-input sweep: a table of cases across CLI arguments, mount URIs and options, silo settings, paths (every odd
/// byte, length and component), S3 keys, the data-port protocol and FUSE calls, each expecting a clear error that names
/// the problem (or, for odd but valid input, the right result), and after each table an unharmed system.
/// </summary>
public sealed class BadInputSweepTests(BadInputSweepFixture fixture) : IClassFixture<BadInputSweepFixture>
{
    /// <summary>A CLI call: its arguments, the exit codes allowed, and text the error must contain (the value, option or path).</summary>
    public sealed record CliCase(string Args, int[] Codes, string Named);

    public static readonly CliCase[] CliCases =
    [
        new("fs ls /no/such/dir", [1], "/no/such/dir: no such file or directory"),
        new("fs ls relative/path", [1], "'relative/path' is not absolute"),
        new("fs ls /data/../../etc", [1], "'..' is not allowed"),
        new("fs ls /data/./hello.txt", [1], "'/data/./hello.txt'"),
        new("fs stat /data/hello.txt/child", [1], "/data/hello.txt: not a directory"),
        new("fs stat /data//hello.txt", [1], "empty name (a doubled slash)"),
        new("fs stat /data/" + new string('n', 256), [1], "ENAMETOOLONG"),
        new("fs stat /" + string.Join('/', Enumerable.Repeat("deep", 1000)), [1], "ENAMETOOLONG"),
        new("fs cat /data", [1], "/data: is a directory"),
        new("fs cat /data/missing", [1], "/data/missing: no such file or directory"),
        new("fs get /data/hello.txt /proc/no-such/x", [1], "/proc/no-such"),
        new("fs get /data/missing {tmp}/out", [1], "/data/missing"),
        new("fs put /no/local/file /data/x", [1], "local file /no/local/file"),
        new("fs put /etc/hostname /nomount/x", [1], "/nomount/x: no such file or directory (not under any mount)"),
        new("fs put /etc/hostname /data/hello.txt/below", [1], "/data/hello.txt: not a directory"),
        new("fs put /etc/hostname /data/hello.txt --exclusive", [1], "EEXIST"),
        new("fs put --write-type FAST /etc/hostname /data/x", [2], "--write-type 'FAST'"),
        new("fs mkdir /data/hello.txt/sub", [1], "/data/hello.txt: not a directory"),
        new("fs mkdir /", [1], "EPERM"),
        new("fs mkdir /not-a-mount", [1], "/not-a-mount"),
        new("fs rm /", [1], "refusing to remove '/'"),
        new("fs rm /data", [1], "cannot remove '/data': is a directory"),
        new("fs rm /data/missing", [1], "/data/missing: no such file or directory"),
        new("fs mv /data/missing /data/other", [1], "/data/missing"),
        new("fs mv /data /data/inside", [1], "cannot move '/data' into itself"),
        new("fs mv /data/missing /odd-keys/elsewhere", [1], "/data/missing"),
        new("fs cp /data/missing /data/x", [1], "/data/missing"),
        new("fs cp /data /data/copy", [1], "cannot copy '/data': is a directory"),
        new("fs cp -r /data /data/inside", [1], "/data"),
        new("fs ttl /data 99999999d", [2], "'99999999d' is not a duration"),
        new("fs ttl /data -5s", [2], "'-5s' is not a duration"),
        new("fs ttl /data soon", [2], "'soon' is not a duration"),
        new("fs ttl /data 0x10", [2], "'0x10' is not a duration"),
        new("fs ttl /data 1e9", [2], "'1e9' is not a duration"),
        new("fs ttl /data 36501d", [2], "'36501d' is not a duration"),
        new("fs ttl /missing 1h", [1], "/missing: no such file or directory"),
        new("fs pin /missing", [1], "/missing"),
        new("fs unpin /missing", [1], "/missing"),
        new("fs free /missing", [1], "/missing"),
        new("fs load /missing", [1], "/missing"),
        new("fs load /data --parallel 0", [2], "--parallel '0'"),
        new("fs load /data --parallel -1", [2], "--parallel '-1'"),
        new("fs load /data --parallel abc", [2], "--parallel 'abc'"),
        new("fs load /data --parallel 99999999999", [2], "--parallel '99999999999'"),
        new("fs persist /data/hello.txt --timeout -1s", [2], "--timeout '-1s'"),
        new("fs persist /data/hello.txt --timeout forever", [2], "--timeout 'forever'"),
        new("fs persist /data/missing", [1], "/data/missing"),
        new("fs mount relative file:///tmp", [1], "'relative' is not absolute"),
        new("fs mount / file:///tmp", [1], "cannot mount at /"),
        new("fs mount /m1 bogus://x", [1], "unsupported under-storage scheme 'bogus'"),
        new("fs mount /m1 file://relative/path", [1], "'file://relative/path': a file URI needs an absolute path"),
        new("fs mount /m1 file:///no/such/folder", [1], "file:///no/such/folder: no such directory"),
        new("fs mount /m1 file:///etc/hostname", [1], "file:///etc/hostname"),
        new("fs mount /m1 s3://", [1], "'' is not a valid bucket name"),
        new("fs mount /m1 s3://Bad_Bucket_Name", [1], "'Bad_Bucket_Name' is not a valid bucket name"),
        new("fs mount /m1 s3://" + new string('b', 64), [1], "is not a valid bucket name"),
        new("fs mount /m1 notauri", [1], "notauri"),
        new("fs mount /m1 file:///tmp --option block-size=0", [1], "option block-size: '0'"),
        new("fs mount /m1 file:///tmp --option block-size=3", [1], "option block-size: '3'"),
        new("fs mount /m1 file:///tmp --option block-size=1PiB", [1], "option block-size: '1PiB'"),
        new("fs mount /m1 file:///tmp --option block-size=-64KiB", [1], "option block-size: '-64KiB'"),
        new("fs mount /m1 file:///tmp --option mode=999", [1], "option mode: '999'"),
        new("fs mount /m1 file:///tmp --option owner=-1", [1], "option owner: '-1'"),
        new("fs mount /m1 file:///tmp --option group=abc", [1], "option group: 'abc'"),
        new("fs mount /m1 file:///tmp --option unknown=1", [1], "unknown mount option 'unknown'"),
        new("fs mount /m1 file:///tmp --option noequals", [1], "unknown mount option 'noequals'"),
        new("fs mount /m1 file:///tmp --option write-type=FAST", [1], "option write-type: 'FAST'"),
        new("fs mount /m1 file:///tmp --option quota-bytes=-1", [1], "option quota-bytes: '-1'"),
        new("fs mount /m1 file:///tmp --option quota-files=lots", [1], "option quota-files: 'lots'"),
        new("fs mount /m1 file:///tmp --option write-replicas=0", [1], "option write-replicas: '0'"),
        new("fs mount /m1 file:///tmp --option write-replicas=99", [1], "option write-replicas: '99'"),
        new("fs mount /m1 file:///tmp --sync-interval 99999999d", [1], "option sync-interval: '99999999d'"),
        new("fs mount /m1 file:///tmp --sync-interval -2", [1], "option sync-interval: '-2'"),
        new("fs mount /m1 file:///tmp --option readonly=maybe", [1], "option readonly: 'maybe'"),
        new("fs mount /data file:///tmp", [1], "/data is already a mount point"),
        new("fs mount /data/sub file:///tmp", [1], "/data/sub is inside the mount /data"),
        new("fs mount /m1 s3://bucket --option part-size=1", [1], "part-size '1'"),
        new("fs mount /m1 s3://bucket --option path-style=perhaps", [1], "path-style must be true or false, not 'perhaps'"),
        new("fs unmount /never-mounted", [1], "/never-mounted is not a mount point"),
        new("fs unmount /", [1], "/ is not a mount point"),
        new("mount {tmp}/nonexistent", [1], "does not exist (create it first)"),
        new("mount /etc/hostname", [1], "mount point /etc/hostname is a file"),
        new("mount {mp} --max-read 0", [2], "--max-read '0'"),
        new("mount {mp} --max-read 2MiB", [2], "--max-read '2MiB'"),
        new("mount {mp} --kernel-read-ahead 1KiB", [2], "--kernel-read-ahead '1KiB'"),
        new("mount {mp} --op-timeout 4294968", [2], "--op-timeout '4294968'"),
        new("mount {mp} --op-timeout -1", [2], "--op-timeout '-1'"),
        new("mount {mp} --entry-timeout abc", [2], "--entry-timeout 'abc'"),
        new("mount {mp} --attr-timeout 1e400", [2], "--attr-timeout '1e400'"),
        new("mount {mp} --negative-timeout NaN", [2], "--negative-timeout 'NaN'"),
        new("mount {mp} --mode 9999", [2], "--mode '9999'"),
        new("mount {mp} --mode rwx", [2], "--mode 'rwx'"),
        new("mount {mp} --uid -1", [2], "--uid '-1'"),
        new("mount {mp} --gid 99999999999", [2], "--gid '99999999999'"),
        new("mount {mp} --metadata-cache -5", [2], "--metadata-cache '-5'"),
        new("mount {mp} --read-ahead lots", [2], "--read-ahead 'lots'"),
        new("mount {mp} --root relative", [2], "--root: path 'relative' is not absolute"),
        new("mount {mp} --root /no/such", [1], "--root /no/such"),
        new("mount {mp} --root /data/hello.txt", [1], "--root /data/hello.txt: not a directory"),
        new("mount {mp} --upgrade", [1], "no supervised GrainFS mount at"),
        new("umount {tmp}/not-mounted", [1], "is not a mount point"),
        new("report --json --extra", [2], "unknown option '--extra'"),
        new("certs", [2], "missing command"),
        new("certs bogus-sub", [2], "unknown command 'certs bogus-sub'"),
        new("completion fish", [2], "'fish'"),
        new("--gateway-port 0 fs ls /", [2], "'0': not a port number"),
        new("--gateway-port 70000 fs ls /", [2], "'70000': not a port number"),
        new("--gateway-port abc fs ls /", [2], "'abc': not a whole number"),
        new("--gateways notahost fs ls /", [2], "'notahost' is not host:port"),
        new("--gateways 127.0.0.1:1 fs ls /", [3], "cannot reach the cluster"),
        new("--credentials /no/such/folder fs ls /", [3], "credentials folder '/no/such/folder' does not exist"),
        new("--cluster-file /no/such/file fs ls /", [2], "'/no/such/file' does not exist"),
        new("--cluster notaconnectionstring fs ls /", [2], "not an Npgsql connection string"),
    ];

    /// <summary>A silo started with a bad setting: it must exit at once, non-zero, naming the setting or value.</summary>
    public sealed record SiloCase(string Args, string Named);

    public static readonly SiloCase[] SiloCases =
    [
        new("--tier MEM=/dev/shm/sweep:0", "capacity must be more than 0"),
        new("--tier bogus", "'bogus' is not a tier"),
        new("--tier FAST=/tmp/sweep:1GiB", "unknown tier 'FAST'"),
        new("--tier SSD=relative:1GiB", "the tier folder must be an absolute path"),
        new("--tier SSD=/tmp/sweep:lots", "capacity 'lots' is not a size"),
        new("--data-port 70000", "GrainFs:DataPort = '70000'"),
        new("--gateway-port -1", "GrainFs:GatewayPort = '-1'"),
        new("--silo-port abc", "GrainFs:SiloPort = 'abc'"),
        new("--cache-policy random", "GrainFs:Cache:Policy = 'random'"),
        new("--persist-rate -1", "GrainFs:Persist:Rate = '-1'"),
        new("--persist-rate fast", "GrainFs:Persist:Rate = 'fast'"),
        new("--persist-parallel 0", "GrainFs:Persist:Parallel = '0'"),
        new("--roles gpu,wizard", "unknown role 'wizard'"),
        new("--listen-address 300.1.1.1", "GrainFs:ListenAddress = '300.1.1.1'"),
        new("--write-tier NVME", "GrainFs:Cache:WriteTier = 'NVME'"),
        new("--telemetry carrier-pigeon", "'carrier-pigeon'"),
        new("--dashboard-port 99999", "GrainFs:DashboardPort = '99999'"),
        new("--metrics-port x", "GrainFs:MetricsPort = 'x'"),
        new("--advertise not-an-ip", "GrainFs:AdvertisedAddress = 'not-an-ip'"),
        new("--allow-local-root relative", "'relative': not the absolute path of an existing folder"),
        new("--cluster-file /no/such", "'/no/such' does not exist"),
        new("--cluster notaconnstring", "not an Npgsql connection string"),
        new("--data /proc/1/nope", "GrainFs:Data = '/proc/1/nope'"),
        new("--short-circuit-group no-such-group-xyz", "'no-such-group-xyz': no such group"),
        new("--credentials /no/such/dir", "credentials folder '/no/such/dir' does not exist"),
        new("--unknown-flag 1", "unknown argument '--unknown-flag'"),
    ];

    /// <summary>A path given to the SDK: the statuses allowed, and whether the message must name the path.</summary>
    public sealed record PathCase(string Path, FsStatus[] Expect);

    public static readonly PathCase[] PathCases =
    [
        new(string.Empty, [FsStatus.InvalidArgument]),
        new("relative", [FsStatus.InvalidArgument]),
        new("/data/../data/hello.txt", [FsStatus.InvalidArgument]),
        new("/data/./hello.txt", [FsStatus.InvalidArgument]),
        new("/data//hello.txt", [FsStatus.InvalidArgument]),
        new("/data/hello.txt/", [FsStatus.NotADirectory]),
        new("/data/nul\0name", [FsStatus.InvalidArgument]),
        new("/data/" + new string('n', 256), [FsStatus.NameTooLong]),
        new("/data/" + new string('\u00e9', 128), [FsStatus.NameTooLong]),
        new("/data/" + string.Join('/', Enumerable.Repeat("d", 2100)), [FsStatus.NameTooLong]),
        new("/data/lone\ud800surrogate", [FsStatus.InvalidArgument]),
        new("/data/hello.txt/below", [FsStatus.NotADirectory]),
        new("/data/missing", [FsStatus.NotFound]),
        new("/not-a-mount/x", [FsStatus.NotFound]),
        new("\\data\\hello.txt", [FsStatus.InvalidArgument]),
        new("/data/ spaces ", [FsStatus.NotFound]),
        new("/data/\u202eright-to-left", [FsStatus.NotFound]),
        new("/data/emoji-\U0001F600", [FsStatus.NotFound]),
    ];

    /// <summary>S3 keys of the odd-keys bucket: readable under their name, or skipped (never failing the listing).</summary>
    public static readonly (string Key, bool Listed)[] S3Keys =
    [
        ("plain.txt", true),
        ("nul\0byte.txt", false),
        ("q?mark#hash.txt", true),
        ("amp&semi;.txt", true),
        ("a//double.txt", false),
        ("dots/../up.txt", false),
        ("dot/./here.txt", false),
        (new string('k', 1000) + "/seg.txt", false),
        ("sp ace+plus%25.txt", true),
        ("tab\there.txt", true),
        ("unicode-\u00e9\u4e2d.txt", true),
    ];

    public static int OddByteCases => 32;

    /// <summary>Data-port requests after an authenticated handshake (or raw bytes before one): the reply expected.</summary>
    public sealed record PortCase(string Name, Func<BlockKey, byte[]> Request, DataPortStatus? Reply, string Named);

    private static byte[] Request(BlockKey key, long offset, int length, ushort flags = 0, byte op = DataPortProtocol.OpRead, byte version = DataPortProtocol.Version, uint magic = DataPortProtocol.RequestMagic)
    {
        var request = new byte[DataPortProtocol.RequestSize];
        DataPortProtocol.WriteRequest(request, key, offset, length, flags, op);
        request[4] = version;
        BinaryPrimitives.WriteUInt32LittleEndian(request, magic);
        return request;
    }

    public static readonly PortCase[] PortCases =
    [
        new("bad magic", key => Request(key, 0, 10, magic: 0xDEADBEEF), DataPortStatus.BadRequest, "not a GrainFS data-port request"),
        new("version 9", key => Request(key, 0, 10, version: 9), DataPortStatus.BadRequest, "unsupported protocol version 9"),
        new("op 7", key => Request(key, 0, 10, op: 7), DataPortStatus.BadRequest, "op 7"),
        new("negative offset", key => Request(key, -1, 10), DataPortStatus.BadRequest, "bad range: offset -1"),
        new("negative length", key => Request(key, 0, -10), DataPortStatus.BadRequest, "bad range: offset 0, length -10"),
        new("length past the largest block", key => Request(key, 0, DataPortProtocol.MaxLength + 1), DataPortStatus.BadRequest, "at most"),
        new("length int.MaxValue", key => Request(key, 0, int.MaxValue), DataPortStatus.BadRequest, "at most"),
        new("offset long.MaxValue", key => Request(key, long.MaxValue, 10), null, string.Empty),
        new("offset far past the block", key => Request(key, 1L << 40, 4096), null, string.Empty),
        new("a block nobody holds", _ => Request(BlockKey.For((1UL, 2UL), 3), 0, 10), DataPortStatus.Miss, string.Empty),
        new("a write without a capability", key => Request(key, 0, 10, op: DataPortProtocol.OpWrite), DataPortStatus.Denied, "capability"),
        new("a source longer than allowed", key => [.. Request(key, 0, 10, flags: DataPortProtocol.FlagSource), .. new byte[] { 0xFF, 0xFF, 0xFF, 0x7F }], DataPortStatus.BadRequest, "block source"),
        new("all zeros", _ => new byte[DataPortProtocol.RequestSize], DataPortStatus.BadRequest, "not a GrainFS data-port request"),
    ];

    /// <summary>Raw bytes sent where a TLS handshake is expected: the connection must close (within the handshake timeout).</summary>
    public static readonly (string Name, byte[] Bytes)[] RawPortCases =
    [
        ("an HTTP request", Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n")),
        ("a bare data-port request without TLS", Request(BlockKey.For((1UL, 2UL), 3), 0, 10)),
        ("64 KiB of random bytes", RandomBytes(64 << 10)),
        ("a half request, then silence (slowloris)", [0x16, 0x03, 0x01]),
    ];

    /// <summary>Calls through the FUSE mount (fuse_odd_ops.py: names, nodes, offsets, kinds).</summary>
    public const int FuseCases = 44;

    public static int Total => CliCases.Length + SiloCases.Length + PathCases.Length + OddByteCases + S3Keys.Length + PortCases.Length + RawPortCases.Length + FuseCases;

    private static byte[] RandomBytes(int count)
    {
        var bytes = new byte[count];
        new Random(3).NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public void The_sweep_has_at_least_200_cases()
    {
        Console.WriteLine($"bad-input sweep: {Total} cases (CLI {CliCases.Length}, silo settings {SiloCases.Length}, SDK paths {PathCases.Length}, odd bytes {OddByteCases}, S3 keys {S3Keys.Length}, data port {PortCases.Length + RawPortCases.Length}, FUSE calls {FuseCases})");
        Assert.True(Total >= 200, $"{Total} cases");
    }

    [Fact]
    public async Task Cli_arguments_and_mount_uris_and_options_get_named_errors()
    {
        var tmp = TestProcess.NewFolder("sweep-cli");
        var mountPoint = Directory.CreateDirectory(Path.Combine(tmp, "mp")).FullName;
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        using var gate = new SemaphoreSlim(2);
        await Task.WhenAll(CliCases.Select(async c =>
        {
            await gate.WaitAsync();
            try
            {
                var args = Split(c.Args.Replace("{tmp}", tmp, StringComparison.Ordinal).Replace("{mp}", mountPoint, StringComparison.Ordinal));
                if (!args[0].StartsWith("--", StringComparison.Ordinal) || args[0] is "--credentials" or "--cluster-file" or "--cluster")
                {
                    args = ["--gateway-port", fixture.Gateway, .. args];
                }

                var (code, stdout, stderr) = await Cli.RunAsync(args);
                var text = stdout + stderr;
                if (!c.Codes.Contains(code) || !text.Contains(c.Named, StringComparison.Ordinal) || text.Contains("Unhandled exception", StringComparison.Ordinal) || text.Contains("   at ", StringComparison.Ordinal))
                {
                    failures.Add($"`grainfs {c.Args}`: exit {code}, want {string.Join('/', c.Codes)} naming \"{c.Named}\": {text.Trim()}");
                }
            }
            finally
            {
                gate.Release();
            }
        }));
        Console.WriteLine($"bad-input sweep: CLI {CliCases.Length - failures.Count}/{CliCases.Length}");
        Assert.True(failures.IsEmpty, string.Join('\n', failures));
        Assert.False(MountTable.IsMounted(mountPoint));
        await fixture.AssertUnharmedAsync();
    }

    [Fact]
    public async Task A_silo_with_a_bad_setting_exits_naming_it()
    {
        var failures = new List<string>();
        foreach (var c in SiloCases)
        {
            var data = TestProcess.NewFolder("sweep-silo");
            var args = new List<string> { Repo.SiloDll, "--data", data, "--gateway-port", Ports.Free().ToString(CultureInfo.InvariantCulture), "--silo-port", Ports.Free().ToString(CultureInfo.InvariantCulture), "--dashboard-port", "0", "--metrics-port", "0" };
            args.AddRange(Split(c.Args));
            var (code, stdout, stderr) = await TestProcess.RunAsync("dotnet", args, timeout: TimeSpan.FromSeconds(60));
            var text = stdout + stderr;
            if (code == 0 || !text.Contains(c.Named, StringComparison.Ordinal) || text.Contains("Unhandled exception", StringComparison.Ordinal))
            {
                failures.Add($"silo {c.Args}: exit {code}, want non-zero naming \"{c.Named}\": {text.Trim()[..Math.Min(400, text.Trim().Length)]}");
            }
        }

        Console.WriteLine($"bad-input sweep: silo settings {SiloCases.Length - failures.Count}/{SiloCases.Length}");
        Assert.True(failures.Count == 0, string.Join('\n', failures));
        await fixture.AssertUnharmedAsync();
    }

    [Fact]
    public async Task Odd_paths_get_a_status_that_names_them()
    {
        var failures = new List<string>();
        foreach (var c in PathCases)
        {
            foreach (var (call, result) in new (string, Func<Task<(FsStatus Status, string? Message)>>)[]
            {
                ("stat", async () => Outcome(await fixture.Client.StatAsync(c.Path))),
                ("open", async () => Outcome(await fixture.Client.OpenAsync(c.Path))),
                ("list", async () => Outcome(await fixture.Client.ListPageAsync(c.Path))),
            })
            {
                var (status, message) = await result();
                if (!c.Expect.Contains(status) || string.IsNullOrEmpty(message))
                {
                    failures.Add($"{call} {Show(c.Path)}: {status} ({message}), want {string.Join('/', c.Expect)} with a message");
                }
            }
        }

        Console.WriteLine($"bad-input sweep: SDK paths {PathCases.Length - failures.Select(f => f[(f.IndexOf(' ', StringComparison.Ordinal) + 1)..]).Distinct().Count()}/{PathCases.Length}");
        Assert.True(failures.Count == 0, string.Join('\n', failures));
        await fixture.AssertUnharmedAsync();
    }

    [Fact]
    public async Task Every_odd_byte_in_a_name_round_trips_and_stays_its_own_name()
    {
        var bytes = Enumerable.Range(1, 31).Append(0x7F).Select(b => (char)b).ToList();
        Assert.Equal(OddByteCases, bytes.Count);
        var failures = new List<string>();
        await fixture.Client.MakeDirectoryAsync("/data/odd-bytes");
        foreach (var b in bytes)
        {
            var path = $"/data/odd-bytes/a{b}z";
            var content = Encoding.UTF8.GetBytes($"byte {(int)b}");
            var written = await fixture.Client.WriteFileAsync(path, new MemoryStream(content));
            var read = new byte[64];
            var got = written.IsOk ? await fixture.Client.ReadAsync(path, 0, read) : default;
            // Uploads run after the write is acknowledged: waited for, so the local folder holds each file too.
            var persisted = written.IsOk ? await fixture.Client.PersistAsync(path, TimeSpan.FromSeconds(60)) : default;
            if (!written.IsOk || !got.IsOk || !read.AsSpan(0, got.Value).SequenceEqual(content) || !persisted.IsOk)
            {
                failures.Add($"0x{(int)b:X2}: write {written.Status} ({written.Message}), read {got.Status} ({got.Message}), persist {persisted.Status} ({persisted.Message})");
            }
        }

        var listed = await fixture.Client.ListPageAsync("/data/odd-bytes", maxEntries: 1000);
        Assert.True(listed.IsOk, listed.Message);
        Assert.Equal(bytes.Select(b => $"a{b}z").Order(StringComparer.Ordinal), listed.Value!.Entries.Select(e => e.Name).Order(StringComparer.Ordinal));
        // Each is its own file on the local disk too, and reads back through the kernel.
        Assert.Equal(OddByteCases, Directory.GetFiles(Path.Combine(fixture.Folder, "odd-bytes")).Length);
        Assert.Equal("byte 10", await File.ReadAllTextAsync(Path.Combine(fixture.Mount.MountPoint, "data", "odd-bytes", "a\nz")));
        Assert.True((await fixture.Client.RemoveAsync("/data/odd-bytes", recursive: true)).IsOk);
        Console.WriteLine($"bad-input sweep: odd bytes {OddByteCases - failures.Count}/{OddByteCases}");
        Assert.True(failures.Count == 0, string.Join('\n', failures));
        await fixture.AssertUnharmedAsync();
    }

    [Fact]
    public async Task Odd_s3_keys_are_listed_and_readable_or_skipped_never_failing_the_listing()
    {
        var failures = new List<string>();
        var names = new List<string>();
        string? cursor = null;
        do
        {
            var page = await fixture.Client.ListPageAsync("/odd-keys", cursor);
            Assert.True(page.IsOk, page.Message);
            names.AddRange(page.Value!.Entries.Select(e => e.Name));
            cursor = page.Value.NextCursor;
        }
        while (cursor is not null);

        foreach (var (key, listed) in S3Keys)
        {
            var path = "/odd-keys/" + key;
            var read = new byte[4096];
            var got = await fixture.Client.ReadAsync(path, 0, read);
            var isListed = names.Contains(key.Split('/')[0]);
            if (listed && (!got.IsOk || Encoding.UTF8.GetString(read, 0, got.Value) != key || !isListed))
            {
                failures.Add($"{Show(key)}: want listed and readable, read {got.Status} ({got.Message}), listed {isListed}");
            }
            else if (!listed && got.IsOk)
            {
                failures.Add($"{Show(key)}: want skipped (no POSIX name carries it), but it read");
            }
        }

        Console.WriteLine($"bad-input sweep: S3 keys {S3Keys.Length - failures.Count}/{S3Keys.Length}");
        Assert.True(failures.Count == 0, string.Join('\n', failures) + "\nlisted: " + string.Join(", ", names.Select(Show)));
        await fixture.AssertUnharmedAsync();
    }

    [Fact]
    public async Task The_data_port_answers_malformed_requests_with_a_named_refusal_and_keeps_serving()
    {
        var trust = ClusterTrust.Open(CredentialFolder.Resolve(null, "grainfs"), "grainfs", IdentityKind.Client);
        // A block the worker holds, for requests that name a real key.
        Assert.Equal(0, (await fixture.Silo.CliAsync("fs", "load", "/data/hello.txt")).ExitCode);
        var stat = await fixture.Client.OpenAsync("/data/hello.txt");
        Assert.True(stat.IsOk, stat.Message);
        var key = stat.Value!.Version.KeyOf(0);
        var failures = new List<string>();
        foreach (var c in PortCases)
        {
            await using var stream = await ConnectAsync(trust);
            await stream.WriteAsync(c.Request(key));
            await stream.FlushAsync();
            var header = new byte[DataPortProtocol.ReplyHeaderSize];
            var (status, message) = await ReplyAsync(stream, header);
            // An absurd offset of a held block is answered with no bytes, or refused.
            var ok = c.Reply is null
                ? status is DataPortStatus.Ok or DataPortStatus.BadRequest
                : status == c.Reply && message.Contains(c.Named, StringComparison.Ordinal);
            if (!ok)
            {
                failures.Add($"{c.Name}: {status} '{message}', want {c.Reply?.ToString() ?? "Ok with nothing or BadRequest"} naming '{c.Named}'");
            }
        }

        foreach (var (name, bytes) in RawPortCases)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(System.Net.IPEndPoint.Parse(fixture.DataPort));
            await socket.SendAsync(bytes);
            var buffer = new byte[4096];
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                // The server answers no TLS handshake it cannot make, and closes within its 10 s handshake timeout.
                while (await socket.ReceiveAsync(buffer, deadline.Token) > 0)
                {
                }
            }
            catch (SocketException)
            {
                // Reset: closed as well.
            }
            catch (OperationCanceledException)
            {
                failures.Add($"{name}: the connection stayed open for 30 s");
            }
        }

        // And a well-formed read still gets the bytes; the connection it leaves open is probed by TCP keepalive at both
        // ends, so a peer gone without a word is noticed.
        using (var client = new DataPortClient(trust))
        {
            var buffer = new byte[64];
            var result = await client.ReadAsync(fixture.DataPort, key, 0, buffer, waitForFill: false, TimeSpan.FromSeconds(10));
            Assert.Equal(DataPortStatus.Ok, result.Status);
            Assert.Equal(BadInputSweepFixture.Hello, buffer[..result.Read]);
            // ss shows one timer per socket: a retransmission's while bytes are unacknowledged, else the keepalive's.
            var port = fixture.DataPort.Split(':')[^1];
            var sockets = string.Empty;
            for (var i = 0; i < 50; i++)
            {
                (_, sockets, _) = await TestProcess.RunAsync("ss", ["-tnoH", "state", "established", $"( sport = :{port} or dport = :{port} )"]);
                var lines = sockets.Split('\n', StringSplitOptions.RemoveEmptyEntries);
                if (lines.Length >= 2 && lines.All(l => l.Contains("timer:(keepalive", StringComparison.Ordinal)))
                {
                    break;
                }

                await Task.Delay(100);
            }

            var found = sockets.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(found.Length >= 2 && found.All(l => l.Contains("timer:(keepalive", StringComparison.Ordinal)), sockets);
        }

        Console.WriteLine($"bad-input sweep: data port {PortCases.Length + RawPortCases.Length - failures.Count}/{PortCases.Length + RawPortCases.Length}");
        Assert.True(failures.Count == 0, string.Join('\n', failures));
        await fixture.AssertUnharmedAsync();
    }

    [Fact]
    public async Task Fuse_calls_with_odd_arguments_get_their_errno_and_leave_the_mount_serving()
    {
        var script = Path.Combine(AppContext.BaseDirectory, "Fuse", "fuse_odd_ops.py");
        var folder = Path.Combine(fixture.Mount.MountPoint, "data", "fuse");
        var (code, stdout, stderr) = await TestProcess.RunAsync("/usr/bin/python3", [script, folder, Convert.ToHexString(BadInputSweepFixture.Hello)], timeout: TimeSpan.FromMinutes(3));
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var failed = lines.Where(l => l.TryGetProperty("ok", out var ok) && !ok.GetBoolean()).Select(l => l.ToString()).ToList();
        var summary = lines.LastOrDefault();
        Console.WriteLine($"bad-input sweep: FUSE calls {summary}");
        Assert.True(code == 0 && failed.Count == 0, string.Join('\n', failed) + stderr);
        Assert.Equal(FuseCases, summary.GetProperty("cases").GetInt32());
        await fixture.AssertUnharmedAsync();
    }

    private static (FsStatus, string?) Outcome<T>(FsResult<T> result) => (result.Status, result.Message);

    private static string Show(string text) => JsonSerializer.Serialize(text);

    private static string[] Split(string args) => args.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    private async Task<Stream> ConnectAsync(ClusterTrust trust)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(System.Net.IPEndPoint.Parse(fixture.DataPort));
        var transport = new NetworkStream(socket, ownsSocket: true);
        var tls = new SslStream(transport, leaveInnerStreamOpen: true);
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "grainfs-data-port",
            EnabledSslProtocols = SslProtocols.Tls13,
            CertificateRevocationCheckMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
            LocalCertificateSelectionCallback = (_, _, _, _, _) => trust.Certificate,
            RemoteCertificateValidationCallback = trust.Callback(Accepts.Silos),
        });
        return await SealedStream.EstablishAsync(tls, transport, isClient: true, CancellationToken.None);
    }

    private static async Task<(DataPortStatus Status, string Message)> ReplyAsync(Stream stream, byte[] header)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await stream.ReadExactlyAsync(header, deadline.Token);
        var (status, _, length) = DataPortProtocol.ReadReplyHeader(header);
        var payload = new byte[length];
        await stream.ReadExactlyAsync(payload, deadline.Token);
        return (status, status == DataPortStatus.Ok ? string.Empty : Encoding.UTF8.GetString(payload));
    }
}
