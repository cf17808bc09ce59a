using System.Diagnostics;
using System.Text.Json;
using GrainFs.Tests.Infrastructure;
using Npgsql;

namespace GrainFs.Tests.Processes;

/// <summary>Three silo processes started separately find each other through PostgreSQL and survive the loss of one.</summary>
public sealed class PostgresClusterProcessTests
{
    private static async Task<int> ActiveSilos(string connection)
    {
        await using var db = new NpgsqlConnection(connection);
        await db.OpenAsync();
        await using var command = new NpgsqlCommand("select count(*) from orleansmembershiptable where status = 3", db);
        return Convert.ToInt32(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static int CountFiles(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.EnumerateArray().Count(e => e.GetProperty("kind").GetString() == "file");
    }

    [Fact]
    public async Task Three_silo_processes_form_a_cluster_and_serve_again_within_30_s_after_one_is_killed()
    {
        var pg = await PostgresServer.Shared;
        var connection = await pg.CreateDatabaseAsync("procs");
        var env = new Dictionary<string, string?> { ["GRAINFS_CLUSTER"] = connection };
        var silos = new List<SiloProcess>();
        try
        {
            for (var i = 1; i <= 3; i++)
            {
                silos.Add(await SiloProcess.StartAsync($"pg{i}", ["--host", $"host{i}", "--advertise", "127.0.0.1", "--roles", i == 1 ? "gpu,read" : "read,write"], env));
            }

            // A silo reports it started only after its own row in the membership table became Active (Orleans writes
            // it in the BecomeActive stage, before the host's start returns): nothing to wait for.
            Assert.Equal(3, await ActiveSilos(connection));
            var folder = TestProcess.NewFolder("pgdata");
            Directory.CreateDirectory(Path.Combine(folder, "a", "b"));
            for (var i = 1; i <= 40; i++)
            {
                await File.WriteAllBytesAsync(Path.Combine(folder, "a", "b", $"f{i}"), new byte[i * 100]);
            }

            var (code, _, err) = await Cli.RunAsync(["fs", "mount", "/data", $"file://{folder}"], env);
            Assert.True(code == 0, err);
            for (var attempt = 0; attempt < 3; attempt++)
            {
                var (lcode, json, lerr) = await Cli.RunAsync(["fs", "ls", "-R", "--json", "/data"], env);
                Assert.True(lcode == 0, lerr);
                Assert.Equal(40, CountFiles(json));
            }

            // Through any one of them: a client given only that silo's gateway.
            foreach (var silo in silos)
            {
                var (gcode, json, gerr) = await silo.CliAsync("fs", "ls", "-R", "--json", "/data");
                Assert.True(gcode == 0, gerr);
                Assert.Equal(40, CountFiles(json));
            }

            silos[1].Process.Kill();
            // The time to serve again is what this test measures, so it retries the listing on the wall clock.
            var clock = Stopwatch.StartNew();
            var served = false;
            while (clock.Elapsed < TimeSpan.FromSeconds(30) && !served)
            {
                var (lcode, json, _) = await Cli.RunAsync(["fs", "ls", "-R", "--json", "/data"], env);
                served = lcode == 0 && CountFiles(json) == 40;
            }

            Assert.True(served, $"listing did not work again within 30 s of SIGKILL ({clock.Elapsed})");
            // Every remaining silo keeps serving: the mount table and directories re-activate where they can.
            var (mcode, mounts, merr) = await Cli.RunAsync(["fs", "mounts"], env);
            Assert.True(mcode == 0, merr);
            Assert.Contains("/data", mounts, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var silo in silos)
            {
                await silo.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_silo_killed_during_reads_costs_the_reader_no_error()
    {
        var pg = await PostgresServer.Shared;
        var connection = await pg.CreateDatabaseAsync("kill");
        var env = new Dictionary<string, string?> { ["GRAINFS_CLUSTER"] = connection };
        var silos = new List<SiloProcess>();
        try
        {
            for (var i = 1; i <= 3; i++)
            {
                silos.Add(await SiloProcess.StartAsync($"kill{i}", ["--host", $"khost{i}", "--advertise", "127.0.0.1", "--name", $"kill-silo-{i}"], env));
            }

            // A silo reports it started only after its own row in the membership table became Active (Orleans writes
            // it in the BecomeActive stage, before the host's start returns): nothing to wait for.
            Assert.Equal(3, await ActiveSilos(connection));

            var folder = TestProcess.NewFolder("killdata");
            var data = new byte[24 << 20];
            new Random(5).NextBytes(data);
            await File.WriteAllBytesAsync(Path.Combine(folder, "big.bin"), data);
            await using var client = await Client.GrainFsClient.ConnectAsync(new Client.GrainFsClientOptions { Cluster = connection, Host = "reader-host" });
            Assert.True((await client.MountAsync("/k", $"file://{folder}", new Dictionary<string, string> { ["block-size"] = "1MiB" })).IsOk);
            Assert.True((await client.LoadAsync("/k")).IsOk);
            var file = (await client.OpenAsync("/k/big.bin")).GetValueOrThrow();
            var homes = new HashSet<string>();
            for (var i = 0; i < file.Version.BlockCount; i++)
            {
                homes.Add((await client.Grains.GetGrain<IBlockGrain>(file.Version.KeyOf(i).ToString()).GetStateAsync()).Home);
            }

            Assert.Contains("kill-silo-2", homes);
            var passes = 0;
            var afterKill = 0;
            var killed = false;
            var buffer = new byte[data.Length];
            var clock = Stopwatch.StartNew();
            while (afterKill < 3 && clock.Elapsed < TimeSpan.FromMinutes(2))
            {
                Array.Clear(buffer);
                for (long offset = 0; offset < data.Length; offset += 1 << 20)
                {
                    var read = await file.ReadAsync(offset, buffer.AsMemory((int)offset, 1 << 20));
                    Assert.True(read.IsOk, $"pass {passes}, offset {offset}: {read.Message}");
                    if (offset == 8L << 20 && passes == 1 && !killed)
                    {
                        // Mid-read: the silo holding a third of the blocks disappears.
                        silos[1].Process.Kill();
                        killed = true;
                    }
                }

                Assert.True(data.AsSpan().SequenceEqual(buffer), $"pass {passes} returned different bytes");
                passes++;
                afterKill += killed ? 1 : 0;
            }

            Assert.True(killed && afterKill >= 3, $"{passes} passes, {afterKill} after the kill");
        }
        finally
        {
            foreach (var silo in silos)
            {
                await silo.DisposeAsync();
            }
        }
    }
}
