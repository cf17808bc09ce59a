using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using GrainFs.Client;
using GrainFs.DataPlane.Blocks;
using GrainFs.DataPlane.Security;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Security;

/// <summary>
/// A silo process of its own cluster with credentials made by <c>grainfs certs</c> as an operator would: a CA, a silo
/// folder, an admin, a reader (alice) and an identity with no rights (bob); and, made by a different CA with the same
/// names, a forged admin; and an admin certificate that has expired.
/// </summary>
public sealed class TrustModelFixture : IAsyncLifetime
{
    public SiloProcess Silo { get; private set; } = null!;

    public string ClusterId { get; } = "sec-" + Guid.NewGuid().ToString("N")[..8];

    public string Root { get; } = TestProcess.NewFolder("trust");

    public string Dataset { get; private set; } = null!;

    /// <summary>A file of the dataset whose bytes are a marker found nowhere else.</summary>
    public string WireFile { get; } = "wire-" + Guid.NewGuid().ToString("N")[..12] + ".bin";

    /// <summary>The marker the wire file repeats.</summary>
    public string WireMarker { get; } = "WIRE-MARKER-" + Guid.NewGuid().ToString("N");

    public string Folder(string name) => Path.Combine(Root, name);

    public async Task InitializeAsync()
    {
        await CertsAsync("init", Folder("ca"), "--cluster-id", ClusterId);
        await CertsAsync("issue", Folder("ca"), "--silo", "silo-1", "--out", Folder("silo"));
        await CertsAsync("issue", Folder("ca"), "--client", "ops", "--admin", "--out", Folder("admin"));
        await CertsAsync("issue", Folder("ca"), "--client", "alice", "--out", Folder("alice"));
        await CertsAsync("issue", Folder("ca"), "--client", "bob", "--out", Folder("bob"));
        await CertsAsync("init", Folder("other-ca"), "--cluster-id", ClusterId);
        await CertsAsync("issue", Folder("other-ca"), "--client", "ops", "--admin", "--out", Folder("forged"));
        // An admin certificate of the right CA that expires two seconds from now (the CA itself is minutes old, and
        // validity is wall-clock time: the fixture waits those seconds out below).
        using (var ca = CertificateAuthority.Open(Folder("ca")))
        {
            CredentialFolder.CreatePrivateDirectory(Folder("expired"));
            var start = new DateTimeOffset(ca.Certificate.NotBefore.ToUniversalTime());
            ca.Issue(Folder("expired"), IdentityKind.Admin, "ops", DateTimeOffset.UtcNow.AddSeconds(2) - start, CredentialFolder.ReadTrustedCas(Folder("ca")), notBefore: start);
        }

        Dataset = TestProcess.NewFolder("trust-data");
        await File.WriteAllTextAsync(Path.Combine(Dataset, "secret.txt"), "the training set's bytes");
        // Read only through a data-port fill (its test asks for it cold).
        await File.WriteAllTextAsync(Path.Combine(Dataset, "fill.txt"), "bytes filled through the data port");
        // The file the wire test reads (made before the mount lists the folder, which it then keeps: sync-interval never).
        await File.WriteAllTextAsync(Path.Combine(Dataset, WireFile), string.Concat(Enumerable.Repeat(WireMarker + "\n", 2000)));
        Silo = await SiloProcess.StartAsync("trust", ["--cluster-id", ClusterId, "--credentials", Folder("silo")]);
        var (code, _, err) = await CliAsync("admin", "fs", "mount", "/m", $"file://{Dataset}", "--option", "readers=alice");
        Assert.True(code == 0, err);
        using var expired = CredentialFolder.ReadIdentity(Folder("expired"), IdentityKind.Admin)!;
        while (DateTime.UtcNow <= expired.NotAfter.ToUniversalTime())
        {
            await Task.Delay(250);
        }
    }

    private static async Task CertsAsync(params string[] args)
    {
        var (code, _, err) = await Cli.RunAsync(["certs", .. args]);
        Assert.True(code == 0, err);
    }

    /// <summary>Runs the CLI as the holder of credentials folder <paramref name="who"/>.</summary>
    public Task<(int ExitCode, string Stdout, string Stderr)> CliAsync(string who, params string[] args) =>
        Cli.RunAsync(["--gateway-port", Silo.GatewayPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "--cluster-id", ClusterId, "--credentials", Folder(who), .. args]);

    /// <summary>An SDK client holding credentials folder <paramref name="who"/>.</summary>
    public Task<GrainFsClient> ClientAsync(string who) =>
        GrainFsClient.ConnectAsync(new GrainFsClientOptions { GatewayPort = Silo.GatewayPort, ClusterId = ClusterId, Credentials = Folder(who), MountTableRefresh = TimeSpan.Zero, ShortCircuit = false });

    public async Task DisposeAsync() => await Silo.DisposeAsync();
}

public sealed class TrustModelTests(TrustModelFixture fixture) : IClassFixture<TrustModelFixture>
{
    [Theory]
    [InlineData("forged", "not valid for this cluster")]
    [InlineData("expired", "refused")]
    public async Task A_forged_or_expired_credential_cannot_connect(string who, string named)
    {
        var (code, _, err) = await fixture.CliAsync(who, "fs", "ls", "/m");
        Assert.Equal(3, code);
        Assert.Contains("refused", err, StringComparison.Ordinal);
        Assert.Contains(named, err, StringComparison.Ordinal);
        Assert.DoesNotContain("secret.txt", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_client_without_credentials_of_the_cluster_cannot_connect()
    {
        // A user with no folder given gets a default one of its own: a CA the cluster does not trust.
        var home = TestProcess.NewFolder("stranger-home");
        var (code, _, err) = await Cli.RunAsync(
            ["--gateway-port", fixture.Silo.GatewayPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "--cluster-id", fixture.ClusterId, "fs", "ls", "/m"],
            new Dictionary<string, string?> { ["HOME"] = home, ["GRAINFS_CREDENTIALS"] = null });
        Assert.Equal(3, code);
        Assert.Contains("refused", err, StringComparison.Ordinal);

        // Speaking Orleans without TLS gets no answer: the gateway closes the connection.
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, fixture.Silo.GatewayPort);
        await socket.SendAsync(new byte[64]);
        var buffer = new byte[256];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
        Assert.True(read == 0 || buffer[0] == 0x15, $"the gateway answered {read} bytes to a client without TLS");
    }

    [Fact]
    public async Task A_reader_reads_but_cannot_mount_free_pin_or_write_and_others_cannot_read()
    {
        var (code, stdout, err) = await fixture.CliAsync("alice", "fs", "cat", "/m/secret.txt");
        Assert.True(code == 0, err);
        Assert.Equal("the training set's bytes", stdout);

        foreach (var args in new[]
                 {
                     new[] { "fs", "mount", "/alice", $"file://{fixture.Dataset}" },
                     ["fs", "unmount", "/m"],
                     ["fs", "free", "/m"],
                     ["fs", "pin", "/m"],
                     ["fs", "ttl", "/m", "1h"],
                     ["fs", "load", "/m"],
                     ["fs", "acl", "/m", "--readers", "alice:bob"],
                     ["fs", "mkdir", "/m/new"],
                     ["fs", "rm", "/m/secret.txt"],
                     ["report"],
                 })
        {
            (code, _, err) = await fixture.CliAsync("alice", args);
            Assert.True(code != 0, $"alice ran {string.Join(' ', args)}");
            Assert.Contains("EACCES", err, StringComparison.Ordinal);
        }

        var put = Path.Combine(fixture.Root, "upload.txt");
        await File.WriteAllTextAsync(put, "not allowed");
        (code, _, err) = await fixture.CliAsync("alice", "fs", "put", put, "/m/upload.txt");
        Assert.NotEqual(0, code);
        Assert.Contains("EACCES", err, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(fixture.Dataset, "upload.txt")));

        (code, stdout, err) = await fixture.CliAsync("bob", "fs", "cat", "/m/secret.txt");
        Assert.NotEqual(0, code);
        Assert.Contains("EACCES", err, StringComparison.Ordinal);
        Assert.Contains("/m", err, StringComparison.Ordinal);
        Assert.DoesNotContain("training", stdout, StringComparison.Ordinal);

        // Granting bob the reader role lets him read at once.
        (code, _, err) = await fixture.CliAsync("admin", "fs", "acl", "/m", "--readers", "alice:bob");
        Assert.True(code == 0, err);
        (code, stdout, err) = await fixture.CliAsync("bob", "fs", "cat", "/m/secret.txt");
        Assert.True(code == 0, err);
        Assert.Equal("the training set's bytes", stdout);
        (code, _, err) = await fixture.CliAsync("admin", "fs", "acl", "/m", "--readers", "alice");
        Assert.True(code == 0, err);

        // Admin actions and denials are in the audit log, with who did them.
        var audit = await File.ReadAllTextAsync(Path.Combine(fixture.Silo.Data, "audit.log"));
        Assert.Contains("\"who\":\"ops\"", audit, StringComparison.Ordinal);
        Assert.Contains("MountAsync", audit, StringComparison.Ordinal);
        Assert.Contains("\"who\":\"alice\"", audit, StringComparison.Ordinal);
        Assert.Contains("denied", audit, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Silo_only_methods_refuse_clients_even_admins_and_a_forged_mark_or_token()
    {
        await using var admin = await fixture.ClientAsync("admin");
        var mounts = await admin.GetMountsAsync(refresh: true);
        var mount = mounts.Value!.Mounts.Single(m => m.Path == "/m");

        var resolve = await Assert.ThrowsAsync<GrainFsAccessDeniedException>(async () => await admin.Grains.GetGrain<IMountTableGrain>(IMountTableGrain.Key).ResolveAsync(mount.Id));
        Assert.Contains("silos only", resolve.Message, StringComparison.Ordinal);

        var silo = (await admin.Grains.GetGrain<IClusterGrain>(0).GetSilosAsync()).Single();
        var copy = await Assert.ThrowsAsync<GrainFsAccessDeniedException>(async () =>
            await admin.Grains.GetGrain<IWorkerGrain>(silo.Name).CopyBlockAsync(new BlockKey(1, 2, 0), 4096, "127.0.0.1:9", [0UL]));
        Assert.Contains("silos only", copy.Message, StringComparison.Ordinal);

        // Marks and tokens a client makes up are not a silo's.
        RequestContext.Set(SecurityContextKeys.SiloMark, new string('A', 43));
        try
        {
            await Assert.ThrowsAsync<GrainFsAccessDeniedException>(async () => await admin.Grains.GetGrain<IMountTableGrain>(IMountTableGrain.Key).ResolveAsync(mount.Id));
        }
        finally
        {
            RequestContext.Remove(SecurityContextKeys.SiloMark);
        }

        // The mount table a client sees has no secret, and the block-name key only for a mount it may read.
        await using var bob = await fixture.ClientAsync("bob");
        var bobs = (await bob.GetMountsAsync(refresh: true)).Value!.Mounts.Single(m => m.Path == "/m");
        Assert.Equal(MountOptions.Redaction, bobs.Options.Properties[MountOptions.NAME_KEY]);
        await using var alice = await fixture.ClientAsync("alice");
        var alices = (await alice.GetMountsAsync(refresh: true)).Value!.Mounts.Single(m => m.Path == "/m");
        Assert.NotEqual(MountOptions.Redaction, alices.Options.Properties[MountOptions.NAME_KEY]);
    }

    [Fact]
    public async Task The_data_port_serves_only_authenticated_peers_and_only_blocks_named_with_the_mount_key()
    {
        await using var alice = await fixture.ClientAsync("alice");
        var read = await alice.ReadAsync("/m/secret.txt", 0, new byte[4096]);
        Assert.True(read.IsOk, read.Message);
        var entry = (await alice.StatAsync("/m/secret.txt")).Value!;
        var mount = (await alice.GetMountsAsync(refresh: true)).Value!.Mounts.Single(m => m.Path == "/m");
        var silo = (await alice.Grains.GetGrain<IClusterGrain>(0).GetSilosAsync()).Single();
        var realKey = BlockKey.For(WriteTag.FileId(mount.BlockNamespace, "secret.txt", entry.ETag, entry.Size, mount.Options.BlockSize), 0);
        // What anyone could compute from public facts (the old, unkeyed name).
        var guessedKey = BlockKey.For(WriteTag.FileId(mount.Uri, "secret.txt", entry.ETag, entry.Size, mount.Options.BlockSize), 0);
        var buffer = new byte[4096];

        using (var reader = new DataPortClient(ClusterTrust.Open(fixture.Folder("alice"), fixture.ClusterId, IdentityKind.Client)))
        {
            var ok = await reader.ReadAsync(silo.DataEndpoint, realKey, 0, buffer, waitForFill: false, TimeSpan.FromSeconds(10));
            Assert.Equal(DataPortStatus.Ok, ok.Status);
            Assert.Equal("the training set's bytes", System.Text.Encoding.UTF8.GetString(buffer, 0, ok.Read));
            var guessed = await reader.ReadAsync(silo.DataEndpoint, guessedKey, 0, buffer, waitForFill: false, TimeSpan.FromSeconds(10));
            Assert.Equal(DataPortStatus.Miss, guessed.Status);
        }

        // Without TLS, or with a certificate of another CA, no request is served.
        using (var plain = new DataPortClient(null))
        {
            await Assert.ThrowsAnyAsync<IOException>(async () => await plain.ReadAsync(silo.DataEndpoint, realKey, 0, buffer, waitForFill: false, TimeSpan.FromSeconds(10)));
        }

        using (var forged = new DataPortClient(ClusterTrust.Open(fixture.Folder("forged"), fixture.ClusterId, IdentityKind.Client)))
        {
            var refused = await Assert.ThrowsAnyAsync<IOException>(async () => await forged.ReadAsync(silo.DataEndpoint, realKey, 0, buffer, waitForFill: false, TimeSpan.FromSeconds(10)));
            Assert.Contains("refused", refused.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_data_port_fill_starts_only_from_a_source_that_names_the_block_under_the_mount_key()
    {
        await using var alice = await fixture.ClientAsync("alice");
        var entry = (await alice.StatAsync("/m/fill.txt")).Value!;
        var mount = (await alice.GetMountsAsync(refresh: true)).Value!.Mounts.Single(m => m.Path == "/m");
        var silo = (await alice.Grains.GetGrain<IClusterGrain>(0).GetSilosAsync()).Single();
        var source = new FillSource(mount.Id, "fill.txt", entry.ETag, entry.Size, mount.Options.BlockSize, 0);
        var realKey = BlockKey.For(WriteTag.FileId(mount.BlockNamespace, "fill.txt", entry.ETag, entry.Size, mount.Options.BlockSize), 0);
        var guessedKey = BlockKey.For(WriteTag.FileId(mount.Uri, "fill.txt", entry.ETag, entry.Size, mount.Options.BlockSize), 0);
        var buffer = new byte[4096];
        using var reader = new DataPortClient(ClusterTrust.Open(fixture.Folder("alice"), fixture.ClusterId, IdentityKind.Client));

        // A key computed from public facts does not match the source: nothing is filled under it.
        var guessed = await reader.FillAsync(silo.DataEndpoint, guessedKey, source, 0, buffer, awaitHeld: false, TimeSpan.FromSeconds(10));
        Assert.Equal(DataPortStatus.NotFilled, guessed.Status);
        Assert.Contains("does not match", guessed.Message, StringComparison.Ordinal);
        Assert.Equal(DataPortStatus.Miss, (await reader.ReadAsync(silo.DataEndpoint, guessedKey, 0, buffer, waitForFill: false, TimeSpan.FromSeconds(10))).Status);

        // A source that climbs out of the mount is refused before the mount is looked at.
        var climbing = await reader.FillAsync(silo.DataEndpoint, realKey, source with { Path = "../trust/secret.txt" }, 0, buffer, awaitHeld: false, TimeSpan.FromSeconds(10));
        Assert.Equal(DataPortStatus.NotFilled, climbing.Status);
        Assert.Contains("..", climbing.Message, StringComparison.Ordinal);

        // The real key with its source: filled and served in one request.
        Assert.Equal(DataPortStatus.Miss, (await reader.ReadAsync(silo.DataEndpoint, realKey, 0, buffer, waitForFill: false, TimeSpan.FromSeconds(10))).Status);
        var filled = await reader.FillAsync(silo.DataEndpoint, realKey, source, 0, buffer, awaitHeld: false, TimeSpan.FromSeconds(10));
        Assert.Equal(DataPortStatus.Ok, filled.Status);
        Assert.Equal("bytes filled through the data port", System.Text.Encoding.UTF8.GetString(buffer, 0, filled.Read));
    }

    [Fact]
    public async Task A_data_port_write_needs_a_capability_that_only_writers_of_the_mount_get()
    {
        await using var alice = await fixture.ClientAsync("alice");
        await using var admin = await fixture.ClientAsync("admin");
        var mount = (await admin.GetMountsAsync(refresh: true)).Value!.Mounts.Single(m => m.Path == "/m");
        var silo = (await admin.Grains.GetGrain<IClusterGrain>(0).GetSilosAsync()).Single();
        var key = new BlockKey(0x5eed, 0xb10c, 0);
        var data = System.Text.Encoding.UTF8.GetBytes("bytes a reader tries to plant on the write tier");

        // alice reads /m but may not write it: the cluster grants her no capability.
        var grant = await Assert.ThrowsAsync<GrainFsAccessDeniedException>(async () => await alice.Grains.GetGrain<IAuthGrain>(0).GrantWritesAsync(mount.Id));
        Assert.Contains("alice may not write /m", grant.Message, StringComparison.Ordinal);

        // A write without a capability, or with one made up, is refused and nothing is stored.
        using var aliceData = new DataPortClient(ClusterTrust.Open(fixture.Folder("alice"), fixture.ClusterId, IdentityKind.Client));
        var none = await aliceData.WriteAsync(silo.DataEndpoint, key, data, ReadOnlyMemory<byte>.Empty, TimeSpan.FromSeconds(10));
        Assert.Equal(DataPortStatus.Denied, none.Status);
        Assert.Contains("without a capability", none.Message, StringComparison.Ordinal);
        var madeUp = new byte[WriteCapability.Size];
        new WriteCapability(mount.Id, DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeSeconds(), System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)).Write(madeUp);
        var forged = await aliceData.WriteAsync(silo.DataEndpoint, key, data, madeUp, TimeSpan.FromSeconds(10));
        Assert.Equal(DataPortStatus.Denied, forged.Status);
        Assert.Contains("the cluster did not issue", forged.Message, StringComparison.Ordinal);
        var missed = await aliceData.ReadAsync(silo.DataEndpoint, key, 0, new byte[256], waitForFill: false, TimeSpan.FromSeconds(10));
        Assert.Equal(DataPortStatus.Miss, missed.Status);

        // A writer's (here an admin's) capability takes the block; a capability is bound to its mount id and expiry.
        var capability = await admin.Grains.GetGrain<IAuthGrain>(0).GrantWritesAsync(mount.Id);
        var wire = new byte[WriteCapability.Size];
        capability.Write(wire);
        using var adminData = new DataPortClient(ClusterTrust.Open(fixture.Folder("admin"), fixture.ClusterId, IdentityKind.Client));
        var stored = await adminData.WriteAsync(silo.DataEndpoint, key, data, wire, TimeSpan.FromSeconds(10));
        Assert.Equal(DataPortStatus.Ok, stored.Status);
        (capability with { MountId = mount.Id + 1 }).Write(wire);
        var moved = await adminData.WriteAsync(silo.DataEndpoint, key with { Index = 1 }, data, wire, TimeSpan.FromSeconds(10));
        Assert.Equal(DataPortStatus.Denied, moved.Status);

        // Written bytes travel the data port and are dropped again (never sealed into a file).
        await admin.Grains.GetGrain<IWorkerGrain>(silo.Name).DropWrittenAsync(mount.Id, "test-write", [key], deleteObject: false);
    }

    [Fact]
    public async Task A_seal_is_refused_when_the_blocks_a_worker_holds_differ_from_what_the_writer_sent()
    {
        await using var admin = await fixture.ClientAsync("admin");
        var mount = (await admin.GetMountsAsync(refresh: true)).Value!.Mounts.Single(m => m.Path == "/m");
        var silo = (await admin.Grains.GetGrain<IClusterGrain>(0).GetSilosAsync()).Single();
        var tag = WriteTag.New();
        var data = System.Security.Cryptography.RandomNumberGenerator.GetBytes(100_000);
        var key = WriteTag.Keys(mount.BlockNamespace, tag, data.Length, mount.Options.BlockSize).Single();
        var wire = new byte[WriteCapability.Size];
        (await admin.Grains.GetGrain<IAuthGrain>(0).GrantWritesAsync(mount.Id)).Write(wire);
        using (var dataPort = new DataPortClient(ClusterTrust.Open(fixture.Folder("admin"), fixture.ClusterId, IdentityKind.Client)))
        {
            Assert.Equal(DataPortStatus.Ok, (await dataPort.WriteAsync(silo.DataEndpoint, key, data, wire, TimeSpan.FromSeconds(10))).Status);
        }

        // The writer's record says other bytes than the worker received (a copy altered on the way or on the worker).
        var worker = admin.Grains.GetGrain<IWorkerGrain>(silo.Name);
        var altered = data.ToArray();
        altered[70_000] ^= 1;
        var other = BlockFile.Digest(new ulong[] { BlockFile.Digest(altered.AsSpan()) });
        var refused = await worker.SealAsync(new WriteSeal(tag, mount.Id, "sealed-check.bin", data.Length, mount.Options.BlockSize, WriteType.MustCache, Digest: other));
        Assert.Equal(FsStatus.IoError, refused.Status);
        Assert.Contains("do not match the checksums the writer sent", refused.Message, StringComparison.Ordinal);

        var same = BlockFile.Digest(new ulong[] { BlockFile.Digest(data.AsSpan()) });
        var taken = await worker.SealAsync(new WriteSeal(tag, mount.Id, "sealed-check.bin", data.Length, mount.Options.BlockSize, WriteType.MustCache, Digest: same));
        Assert.True(taken.Status == FsStatus.Ok, taken.Message);
        await worker.DropWrittenAsync(mount.Id, tag, [key], deleteObject: false);
    }

    [Fact]
    public async Task A_silo_takes_replica_bytes_only_from_a_silo_of_its_cluster()
    {
        // A fake data port presenting a client certificate of the right CA (an authenticated non-silo).
        var fake = new TcpListener(IPAddress.Loopback, 0);
        fake.Start();
        var endpoint = $"127.0.0.1:{((IPEndPoint)fake.LocalEndpoint).Port}";
        var serverTrust = ClusterTrust.Open(fixture.Folder("bob"), fixture.ClusterId, IdentityKind.Client);
        var serve = Task.Run(async () =>
        {
            using var socket = await fake.AcceptSocketAsync();
            await using var tls = new SslStream(new NetworkStream(socket, ownsSocket: false));
            try
            {
                await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = serverTrust.Certificate, ClientCertificateRequired = true, RemoteCertificateValidationCallback = (_, _, _, _) => true });
                var request = new byte[DataPortProtocol.RequestSize];
                await tls.ReadExactlyAsync(request);
                var reply = new byte[DataPortProtocol.ReplyHeaderSize + 16];
                DataPortProtocol.WriteReplyHeader(reply, DataPortStatus.Ok, DataSource.Mem, 16);
                await tls.WriteAsync(reply);
            }
            catch (Exception e) when (e is IOException or System.Security.Authentication.AuthenticationException)
            {
                // The silo's client hung up on the fake: what the test wants.
            }
        });

        using var siloClient = new DataPortClient(ClusterTrust.Open(fixture.Folder("silo"), fixture.ClusterId, IdentityKind.Silo));
        var refused = await Assert.ThrowsAnyAsync<IOException>(async () => await siloClient.ReadAsync(endpoint, new BlockKey(1, 2, 0), 0, new byte[16], waitForFill: false, TimeSpan.FromSeconds(10)));
        Assert.Contains("grainfs-client", refused.Message, StringComparison.Ordinal);
        await serve.WaitAsync(TimeSpan.FromSeconds(15));
        fake.Stop();
    }

    [Fact]
    public async Task Loopback_traffic_of_a_read_through_the_gateway_and_the_data_port_shows_no_file_bytes_paths_or_keys()
    {
        var marker = fixture.WireMarker;
        var name = fixture.WireFile;
        await using var alice = await fixture.ClientAsync("alice");
        var silo = (await alice.Grains.GetGrain<IClusterGrain>(0).GetSilosAsync()).Single();
        var capture = Path.Combine(fixture.Root, $"lo-{Guid.NewGuid():N}.pcap");
        // All TCP on lo while the read runs (the silo's gateway and data port among it): nothing may carry the secrets.
        var tcpdump = TestProcess.Start("tcpdump", ["-i", "lo", "-U", "-s", "0", "-Z", "root", "-w", capture, "tcp"]);
        await tcpdump.WaitForOutputAsync("listening on", TimeSpan.FromSeconds(20));
        // tcpdump says it listens a moment before its capture ring takes packets.
        await Task.Delay(1000);

        // A reader that is not the silo's host reads over the gateway (lookups) and the data port (bytes).
        var buffer = new byte[256 * 1024];
        var entry = (await alice.StatAsync("/m/" + name)).Value!;
        var read = await alice.ReadAsync("/m/" + name, 0, buffer);
        Assert.True(read.IsOk, read.Message);
        Assert.Equal(entry.Size, read.Value);
        Assert.StartsWith(marker, System.Text.Encoding.UTF8.GetString(buffer, 0, 100), StringComparison.Ordinal);
        // tcpdump writes what it took from the kernel as it gets CPU; a SIGTERM drops what it has not written yet. Let it
        // catch up with the read (the file's bytes at least went by) before stopping it.
        var caughtUp = Stopwatch.StartNew();
        while (new FileInfo(capture).Length < entry.Size && caughtUp.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(200);
        }

        await Task.Delay(500);
        tcpdump.Terminate();
        await tcpdump.WaitForExitAsync(TimeSpan.FromSeconds(20));

        var wire = await File.ReadAllBytesAsync(capture);
        var mount = (await alice.GetMountsAsync(refresh: true)).Value!.Mounts.Single(m => m.Path == "/m");
        var key = BlockKey.For(WriteTag.FileId(mount.BlockNamespace, name, entry.ETag, entry.Size, mount.Options.BlockSize), 0);
        Assert.True(wire.Length > entry.Size, $"the capture holds {wire.Length} bytes, less than the file's {entry.Size}: it did not see the read (tcpdump: {tcpdump.Output}; data port {silo.DataEndpoint}, gateway {fixture.Silo.GatewayPort})");
        foreach (var secret in new[] { marker, name, fixture.Dataset, mount.Options.Properties[MountOptions.NAME_KEY], key.ToString() })
        {
            Assert.True(IndexOf(wire, System.Text.Encoding.UTF8.GetBytes(secret)) < 0, $"'{secret}' is in the loopback capture in clear");
            Assert.True(IndexOf(wire, System.Text.Encoding.Unicode.GetBytes(secret)) < 0, $"'{secret}' (UTF-16) is in the loopback capture in clear");
        }

        var keyBytes = new byte[BlockKey.Size];
        key.Write(keyBytes);
        Assert.True(IndexOf(wire, keyBytes) < 0, "the block key's bytes are in the loopback capture in clear");
    }

    private static int IndexOf(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle);
}
