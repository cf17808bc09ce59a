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

    [Fact]
    public async Task A_silo_killed_and_started_again_takes_its_worker_back_and_meanwhile_lookups_and_new_files_go_on()
    {
        var pg = await PostgresServer.Shared;
        var connection = await pg.CreateDatabaseAsync("restart");
        var env = new Dictionary<string, string?> { ["GRAINFS_CLUSTER"] = connection };
        var silos = new List<SiloProcess>();
        try
        {
            for (var i = 1; i <= 2; i++)
            {
                silos.Add(await SiloProcess.StartAsync($"restart{i}", ["--host", $"rhost{i}", "--advertise", "127.0.0.1", "--name", $"restart-silo-{i}", "--roles", "read,write"], env));
            }

            var folder = TestProcess.NewFolder("restartdata");
            Directory.CreateDirectory(folder);
            await using var client = await Client.GrainFsClient.ConnectAsync(new Client.GrainFsClientOptions { Cluster = connection, Host = "writer-host", MetadataCacheEntries = 0 });
            Assert.True((await client.MountAsync("/r", $"file://{folder}")).IsOk);
            Assert.True((await client.WriteFileAsync("/r/before", new MemoryStream(new byte[1000]))).IsOk);

            silos[1].Process.Kill();

            // While it is down: a lookup is asked again rather than left waiting for the dead silo (30 s, then an
            // error), and new files go to the live worker once the dead one failed one of them.
            var written = 0;
            var failed = new List<string>();
            for (var i = 0; i < 12; i++)
            {
                var stat = await client.StatAsync("/r/before");
                Assert.True(stat.IsOk, $"stat while a silo is down: {stat.Message}");
                var write = await client.WriteFileAsync($"/r/during-{i}", new MemoryStream(new byte[2000 + i]));
                if (write.IsOk)
                {
                    written++;
                }
                else
                {
                    failed.Add(write.Message!);
                }
            }

            Assert.True(failed.Count <= 1, $"{failed.Count} writes failed while a silo was down: {string.Join("; ", failed)}");

            // Its worker, called while it is down, answers from the other silo that it is gone (once the silo is
            // declared dead; until then the call is refused).
            var worker = client.Grains.GetGrain<IWorkerGrain>("restart-silo-2");
            WorkerReport? report = null;
            var waited = Stopwatch.StartNew();
            while (report is null && waited.Elapsed < TimeSpan.FromSeconds(30))
            {
                try
                {
                    report = await worker.GetReportAsync();
                }
                catch (OrleansException)
                {
                    await Task.Delay(250);
                }
            }

            Assert.NotNull(report);
            Assert.Contains("gone", report.Silo, StringComparison.Ordinal);

            silos[1] = await silos[1].StartAgainAsync();

            // Back on its name: its worker is its own again within seconds (a stand-in that stayed would refuse every seal
            // for good; one placed while the other silo has not fetched the restarted silo's grain manifest, for minutes
            // under load: placement by name follows the membership table, which knows the silo first).
            var clock = Stopwatch.StartNew();
            while ((report = await worker.GetReportAsync()).Silo != "restart-silo-2" && clock.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(250);
            }

            Assert.True(report.Silo == "restart-silo-2", report.Silo + "\n" + silos[0].Process.Output[^Math.Min(6000, silos[0].Process.Output.Length)..]);

            // And stays its own: a call that reaches the other silo by a stale directory entry (Orleans activates a grain
            // where its message lands) finds no stand-in answering "gone" there, but is placed again on its silo.
            for (var i = 0; i < 40; i++)
            {
                Assert.Equal("restart-silo-2", (await worker.GetReportAsync()).Silo);
                await Task.Delay(50);
            }

            Assert.Equal(2, await ActiveSilos(connection));

            // And the clients' cluster view lists it with its data port again (its metadata learned, whatever became of
            // Orleans' one fetch of it while it was joining).
            SiloInfo[] view = [];
            clock.Restart();
            while ((view = await client.Grains.GetGrain<IClusterGrain>(0).GetSilosAsync()).Length < 2 && clock.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(250);
            }

            Assert.Contains(view, s => s.Name == "restart-silo-2" && s.DataEndpoint.Length > 0 && s.Host == "rhost2");
            for (var i = 0; i < 6; i++)
            {
                var write = await client.WriteFileAsync($"/r/after-{i}", new MemoryStream(new byte[3000 + i]));
                Assert.True(write.IsOk, $"write after the restart: {write.Message}");
            }

            for (var i = 0; i < 6; i++)
            {
                Assert.True((await client.PersistAsync($"/r/after-{i}", TimeSpan.FromSeconds(60))).IsOk);
                Assert.Equal(3000 + i, new FileInfo(Path.Combine(folder, $"after-{i}")).Length);
            }
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
