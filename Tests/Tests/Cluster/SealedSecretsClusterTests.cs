using System.Text.Json;
using GrainFs.Client;
using GrainFs.DataPlane.Security;
using GrainFs.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Orleans.TestingHost;

namespace GrainFs.Tests.Cluster;

/// <summary>
/// Mount credentials in PostgreSQL are sealed under the cluster key: what the database holds, what the silos open
/// after a restart, a table written in clear before sealing, and a cluster whose key does not match.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class SealedSecretsClusterTests
{
    private const string AccessKey = "AKIDSEALEDTEST0001";

    private static byte[] Bytes(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    private static string NewSecret() => $"sealed-secret-{Guid.NewGuid():N}";

    private static Dictionary<string, string> Credentials(MotoServer moto, string secret) => new()
    {
        ["endpoint"] = moto.Endpoint,
        ["access-key"] = AccessKey,
        ["secret-key"] = secret,
    };

    /// <summary>The options column of a mount as PostgreSQL holds it.</summary>
    private static async Task<string> StoredOptionsAsync(string connection, string path)
    {
        await using var db = new NpgsqlConnection(connection);
        await db.OpenAsync();
        await using var command = new NpgsqlCommand("select options from grainfs_mounts where path = @path", db);
        command.Parameters.AddWithValue("path", path);
        return Convert.ToString(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture)
            ?? throw new InvalidOperationException($"no row for {path} in grainfs_mounts");
    }

    private static string StoredProperty(string options, string key)
    {
        using var document = JsonDocument.Parse(options);
        return document.RootElement.GetProperty("Properties").GetProperty(key).GetString()!;
    }

    /// <summary>The full mount record as the grains that use it get it (a silo-only call, made from inside a silo).</summary>
    private static async Task<MountInfo> ResolveOnSiloAsync(TestCluster cluster, long mountId)
    {
        var silo = cluster.Silos.OfType<InProcessSiloHandle>().First();
        var table = silo.ServiceProvider.GetRequiredService<IGrainFactory>().GetGrain<IMountTableGrain>(IMountTableGrain.Key);
        return await table.ResolveAsync(mountId) ?? throw new InvalidOperationException($"mount {mountId} not found");
    }

    private static IEnumerable<SiloLogEvent> Events(TestCluster cluster) =>
        cluster.Silos.OfType<InProcessSiloHandle>().SelectMany(s => s.ServiceProvider.GetRequiredService<SiloLog>().Snapshot());

    private static async Task<byte[]> ReadAllAsync(GrainFsClient client, string path)
    {
        var file = (await client.OpenAsync(path)).GetValueOrThrow();
        var data = new byte[file.Length];
        var read = await file.ReadAsync(0, data);
        Assert.True(read.IsOk, read.Message);
        return data;
    }

    /// <summary>A credentials folder with the test's CA and identities (so the test's client still connects) and the cluster keys given.</summary>
    private static string CredentialsWithKeys(string name, params byte[][] keys)
    {
        var own = CredentialFolder.Resolve(null, GrainFsClientOptions.DEFAULT_CLUSTER_ID);
        var folder = TestProcess.NewFolder(name);
        foreach (var file in Directory.EnumerateFiles(own))
        {
            if (Path.GetFileName(file) != CredentialFolder.CLUSTER_KEY)
            {
                File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
                File.SetUnixFileMode(Path.Combine(folder, Path.GetFileName(file)), UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
        }

        CredentialFolder.WriteClusterKeys(folder, keys);
        return folder;
    }

    private static string KeyIdOf(byte[] clusterKey) => new SecretBox([clusterKey]).CurrentKeyId;

    private static async Task StopAsync(TestCluster cluster)
    {
        await cluster.StopAllSilosAsync();
        await cluster.DisposeAsync();
    }

    [Fact]
    public async Task A_mount_whose_commit_acknowledgement_was_lost_is_mounted_and_later_mounts_still_work()
    {
        var connection = await (await PostgresServer.Shared).CreateDatabaseAsync("lostack");
        var name = Guid.NewGuid().ToString("N");
        var cluster = await ClusterFixture.StartClusterAsync(connection, silos: 1, settings: new Dictionary<string, string> { [GrainFsTestSiloConfigurator.LostAcksProperty] = name });
        try
        {
            var client = GrainFsClient.Create(cluster.Client);
            var folder = TestProcess.NewFolder("lostack");
            await File.WriteAllTextAsync(Path.Combine(folder, "f.txt"), "x");

            // The store commits the first mount, then its acknowledgement is lost: the table is read again, holds it,
            // and the mount is answered as done (before: an error, and every later mount conflicted with a version the
            // grain had missed).
            LostAckStore.Arm(name, 1);
            var first = await client.MountAsync("/lost-ack", $"file://{folder}");
            Assert.True(first.IsOk, first.Message);
            var second = await client.MountAsync("/after", $"file://{folder}", new Dictionary<string, string> { ["readonly"] = "true" });
            Assert.False(second.IsOk); // the same folder twice, one of them writable: refused for that, not for a stale version
            Assert.DoesNotContain("version", second.Message, StringComparison.OrdinalIgnoreCase);
            var other = TestProcess.NewFolder("lostack-other");
            var third = await client.MountAsync("/other", $"file://{other}");
            Assert.True(third.IsOk, third.Message);
            Assert.Equal(["/lost-ack", "/other"], (await client.GetMountsAsync(refresh: true)).Value!.Mounts.Select(m => m.Path).Order(StringComparer.Ordinal));
        }
        finally
        {
            await cluster.StopAllSilosAsync();
            await cluster.DisposeAsync();
        }
    }

    [Fact]
    public async Task Mount_secrets_are_sealed_in_postgres_opened_after_a_restart_and_sealed_when_found_in_clear()
    {
        var moto = await MotoServer.Shared;
        var connection = await (await PostgresServer.Shared).CreateDatabaseAsync("sealed");
        var bucket = await moto.CreateBucketAsync("sealed");
        var first = Bytes(70_000, 1);
        var second = Bytes(50_000, 2);
        await moto.PutAsync(bucket, "a.bin", first);
        await moto.PutAsync(bucket, "b.bin", second);
        var secret = NewSecret();
        var oldSecret = NewSecret();
        long sealedId, oldId;
        string sealedOptions;

        var cluster = await ClusterFixture.StartClusterAsync(connection, silos: 2);
        try
        {
            var client = GrainFsClient.Create(cluster.Client);
            // Two views of one bucket: both read-only.
            var readOnly = Credentials(moto, secret);
            readOnly["readonly"] = "true";
            var mounted = await client.MountAsync("/sealed", $"s3://{bucket}", readOnly);
            Assert.True(mounted.IsOk, mounted.Message);
            sealedId = mounted.Value!.Id;
            var oldOptions = Credentials(moto, oldSecret);
            oldOptions["readonly"] = "true";
            var old = await client.MountAsync("/old", $"s3://{bucket}", oldOptions);
            Assert.True(old.IsOk, old.Message);
            oldId = old.Value!.Id;
            Assert.Equal(first, await ReadAllAsync(client, "/sealed/a.bin"));

            sealedOptions = await StoredOptionsAsync(connection, "/sealed");
            Assert.DoesNotContain(secret, sealedOptions, StringComparison.Ordinal);
            Assert.DoesNotContain(AccessKey, sealedOptions, StringComparison.Ordinal);
            Assert.StartsWith(SecretBox.PREFIX, StoredProperty(sealedOptions, "secret-key"), StringComparison.Ordinal);
            Assert.StartsWith(SecretBox.PREFIX, StoredProperty(sealedOptions, "access-key"), StringComparison.Ordinal);
            Assert.Equal(moto.Endpoint, StoredProperty(sealedOptions, "endpoint"));
            Assert.DoesNotContain(Events(cluster), e => e.Message.Contains(secret, StringComparison.Ordinal) || e.Message.Contains(AccessKey, StringComparison.Ordinal));
        }
        finally
        {
            await StopAsync(cluster);
        }

        // A table as a build before sealing wrote it: /old's credentials in clear.
        await using (var db = new NpgsqlConnection(connection))
        {
            await db.OpenAsync();
            await using var command = new NpgsqlCommand(
                "update grainfs_mounts set options = jsonb_set(jsonb_set(options, '{Properties,secret-key}', to_jsonb(@secret::text)), '{Properties,access-key}', to_jsonb(@access::text)) where path = '/old'", db);
            command.Parameters.AddWithValue("secret", oldSecret);
            command.Parameters.AddWithValue("access", AccessKey);
            Assert.Equal(1, await command.ExecuteNonQueryAsync());
        }

        Assert.Contains(oldSecret, await StoredOptionsAsync(connection, "/old"), StringComparison.Ordinal);
        var restarted = await ClusterFixture.StartClusterAsync(connection, silos: 2);
        try
        {
            var client = GrainFsClient.Create(restarted.Client);
            Assert.Equal(2, (await client.GetMountsAsync(refresh: true)).GetValueOrThrow().Mounts.Length);

            // The sealed values open again under the same cluster key; the clear ones are read as they are.
            var resolved = await ResolveOnSiloAsync(restarted, sealedId);
            Assert.Equal((AccessKey, secret), (resolved.Options.Properties["access-key"], resolved.Options.Properties["secret-key"]));
            var resolvedOld = await ResolveOnSiloAsync(restarted, oldId);
            Assert.Equal((AccessKey, oldSecret), (resolvedOld.Options.Properties["access-key"], resolvedOld.Options.Properties["secret-key"]));
            Assert.Equal(second, await ReadAllAsync(client, "/sealed/b.bin"));
            Assert.Equal(second, await ReadAllAsync(client, "/old/b.bin"));

            // Loading the table sealed what it found in clear (each save seals every secret again, under the current key).
            var oldOptions = await StoredOptionsAsync(connection, "/old");
            Assert.DoesNotContain(oldSecret, oldOptions, StringComparison.Ordinal);
            Assert.DoesNotContain(AccessKey, oldOptions, StringComparison.Ordinal);
            Assert.StartsWith(SecretBox.PREFIX, StoredProperty(oldOptions, "secret-key"), StringComparison.Ordinal);
            var resealed = await StoredOptionsAsync(connection, "/sealed");
            Assert.DoesNotContain(secret, resealed, StringComparison.Ordinal);
            Assert.StartsWith(SecretBox.PREFIX, StoredProperty(resealed, "secret-key"), StringComparison.Ordinal);
            Assert.Contains(Events(restarted), e => e.Name == "LogResealed");
        }
        finally
        {
            await StopAsync(restarted);
        }
    }

    [Fact]
    public async Task A_cluster_with_another_cluster_key_keeps_serving_and_says_the_key_does_not_match()
    {
        var moto = await MotoServer.Shared;
        var connection = await (await PostgresServer.Shared).CreateDatabaseAsync("wrongkey");
        var bucket = await moto.CreateBucketAsync("wrongkey");
        await moto.PutAsync(bucket, "a.bin", Bytes(10_000, 3));
        var secret = NewSecret();
        long id;
        var cluster = await ClusterFixture.StartClusterAsync(connection, silos: 2);
        try
        {
            var mounted = await GrainFsClient.Create(cluster.Client).MountAsync("/locked", $"s3://{bucket}", Credentials(moto, secret));
            Assert.True(mounted.IsOk, mounted.Message);
            id = mounted.Value!.Id;
        }
        finally
        {
            await StopAsync(cluster);
        }

        var stored = await StoredOptionsAsync(connection, "/locked");

        var other = CredentialsWithKeys("creds-otherkey", CredentialFolder.NewClusterKey());
        var wrong = await ClusterFixture.StartClusterAsync(connection, silos: 2, settings: new Dictionary<string, string> { ["GrainFs:Credentials"] = other });
        try
        {
            var client = GrainFsClient.Create(wrong.Client, new GrainFsClientOptions { MetadataCacheEntries = 0 });
            var mounts = (await client.GetMountsAsync(refresh: true)).GetValueOrThrow();
            Assert.Equal("***", Assert.Single(mounts.Mounts).Options.Properties["secret-key"]);

            var listed = await client.ListPageAsync("/locked");
            Assert.Equal(FsStatus.IoError, listed.Status);
            Assert.Contains("mount /locked: its ", listed.Message, StringComparison.Ordinal);
            Assert.Contains("the cluster key does not match", listed.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, listed.Message, StringComparison.Ordinal);
            var logged = Assert.Single(Events(wrong), e => e.Name == "LogNotUnsealed");
            Assert.Contains("mount /locked (s3://", logged.Message, StringComparison.Ordinal);
            Assert.Contains("the cluster key does not match", logged.Message, StringComparison.Ordinal);

            // The silos keep serving, and saving the table for another mount keeps the value it could not open.
            var folder = TestProcess.NewFolder("wrongkey-local");
            Assert.True((await client.MountAsync("/local", $"file://{folder}")).IsOk);
            Assert.Equal(StoredProperty(stored, "secret-key"), StoredProperty(await StoredOptionsAsync(connection, "/locked"), "secret-key"));
            Assert.DoesNotContain(Events(wrong), e => e.Message.Contains(secret, StringComparison.Ordinal));
        }
        finally
        {
            await StopAsync(wrong);
        }

        var right = await ClusterFixture.StartClusterAsync(connection, silos: 2);
        try
        {
            Assert.Equal(secret, (await ResolveOnSiloAsync(right, id)).Options.Properties["secret-key"]);
        }
        finally
        {
            await StopAsync(right);
        }
    }

    [Fact]
    public async Task A_rotated_cluster_key_seals_the_secrets_again_so_the_old_key_can_be_retired()
    {
        var moto = await MotoServer.Shared;
        var connection = await (await PostgresServer.Shared).CreateDatabaseAsync("rotate");
        var bucket = await moto.CreateBucketAsync("rotate");
        var secret = NewSecret();
        var (first, second, third) = (CredentialFolder.NewClusterKey(), CredentialFolder.NewClusterKey(), CredentialFolder.NewClusterKey());
        var folder = CredentialsWithKeys("creds-rotate", first);
        var settings = new Dictionary<string, string> { ["GrainFs:Credentials"] = folder };
        long id;
        var cluster = await ClusterFixture.StartClusterAsync(connection, silos: 2, settings: settings);
        try
        {
            var mounted = await GrainFsClient.Create(cluster.Client).MountAsync("/rot", $"s3://{bucket}", Credentials(moto, secret));
            Assert.True(mounted.IsOk, mounted.Message);
            id = mounted.Value!.Id;
            Assert.Equal(KeyIdOf(first), SecretBox.KeyIdOf(StoredProperty(await StoredOptionsAsync(connection, "/rot"), "secret-key")));

            // grainfs certs rotate: a new current key, the old one still accepted. The running mount table notices.
            CredentialFolder.WriteClusterKeys(folder, [second, first]);
            var silos = cluster.Silos.OfType<InProcessSiloHandle>().Select(h => h.ServiceProvider.GetRequiredService<SiloLog>());
            await await Task.WhenAny(silos.Select(log => log.WaitForAsync("LogResealed", e => e["KeyId"] == KeyIdOf(second), TimeSpan.FromSeconds(45))));
            var options = await StoredOptionsAsync(connection, "/rot");
            Assert.Equal(KeyIdOf(second), SecretBox.KeyIdOf(StoredProperty(options, "secret-key")));
            Assert.Equal(KeyIdOf(second), SecretBox.KeyIdOf(StoredProperty(options, "access-key")));
        }
        finally
        {
            await StopAsync(cluster);
        }

        // grainfs certs retire: the old key gone, the mount still opens.
        CredentialFolder.WriteClusterKeys(folder, [second]);
        var retired = await ClusterFixture.StartClusterAsync(connection, silos: 2, settings: settings);
        try
        {
            Assert.Equal(secret, (await ResolveOnSiloAsync(retired, id)).Options.Properties["secret-key"]);
            Assert.DoesNotContain(Events(retired), e => e.Name == "LogNotUnsealed");
        }
        finally
        {
            await StopAsync(retired);
        }

        // Rotated while the cluster was down: the mount table seals again under the new key as it loads.
        CredentialFolder.WriteClusterKeys(folder, [third, second]);
        var restarted = await ClusterFixture.StartClusterAsync(connection, silos: 2, settings: settings);
        try
        {
            Assert.Equal(secret, (await ResolveOnSiloAsync(restarted, id)).Options.Properties["secret-key"]);
            Assert.Equal(KeyIdOf(third), SecretBox.KeyIdOf(StoredProperty(await StoredOptionsAsync(connection, "/rot"), "secret-key")));
        }
        finally
        {
            await StopAsync(restarted);
        }
    }
}
