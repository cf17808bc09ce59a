using System.Diagnostics;
using System.Text.Json;
using GrainFs.Tests.Infrastructure;
using Npgsql;

namespace GrainFs.Tests.Processes;

/// <summary>Three silo processes started separately find each other through PostgreSQL and survive the loss of one.</summary>
public sealed class PostgresClusterProcessTests(Xunit.Abstractions.ITestOutputHelper output)
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

    [Fact]
    public async Task A_rolling_restart_of_every_silo_of_a_three_silo_cluster_under_readers_gives_no_read_error()
    {
        var pg = await PostgresServer.Shared;
        var connection = await pg.CreateDatabaseAsync("rolling");
        var env = new Dictionary<string, string?> { ["GRAINFS_CLUSTER"] = connection };
        var silos = new List<SiloProcess>();
        try
        {
            for (var i = 1; i <= 3; i++)
            {
                silos.Add(await SiloProcess.StartAsync($"roll{i}", ["--host", $"roll-host-{i}", "--advertise", "127.0.0.1", "--name", $"roll-silo-{i}", "--roles", i < 3 ? "gpu,read" : "read,write"], env));
            }

            var folder = TestProcess.NewFolder("rolling-data");
            Directory.CreateDirectory(folder);
            var expected = new byte[40][];
            var random = new Random(11);
            for (var i = 0; i < expected.Length; i++)
            {
                expected[i] = new byte[150_000 + (i * 1000)];
                random.NextBytes(expected[i]);
                await File.WriteAllBytesAsync(Path.Combine(folder, $"f{i:D2}"), expected[i]);
            }

            // A reader on another host (reads go through the workers' data ports, not their files), finding the cluster in
            // PostgreSQL: every gateway it knows is restarted under it.
            await using var client = await Client.GrainFsClient.ConnectAsync(new Client.GrainFsClientOptions { Cluster = connection, Host = "reader-host", ShortCircuit = false });
            Assert.True((await client.MountAsync("/r", $"file://{folder}")).IsOk);
            Assert.True((await client.LoadAsync("/r")).IsOk);

            await using var readers = CheckedReaders.Start(client, expected.Select((bytes, i) => ($"/r/f{i:D2}", bytes)).ToDictionary());

            // One silo at a time: stopped as an upgrade stops it (SIGTERM: it leaves the cluster), started again on its
            // ports and folders, and the next one only once it is back.
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < 3; i++)
            {
                var before = readers.Reads;
                silos[i].Process.Terminate();
                Assert.True(await silos[i].Process.WaitForExitAsync(TimeSpan.FromSeconds(60)) >= 0);
                silos[i] = await silos[i].StartAgainAsync();
                var back = Stopwatch.StartNew();
                while (await ActiveSilos(connection) < 3 && back.Elapsed < TimeSpan.FromSeconds(30))
                {
                    await Task.Delay(250);
                }

                Assert.Equal(3, await ActiveSilos(connection));
                await Task.Delay(TimeSpan.FromSeconds(3));
                output.WriteLine($"roll-silo-{i + 1} restarted at {clock.Elapsed.TotalSeconds:F1} s; {readers.Reads - before} reads meanwhile, {readers.Errors.Count} errors so far");
            }

            await readers.StopAsync();
            output.WriteLine($"rolling restart of 3 silos in {clock.Elapsed.TotalSeconds:F1} s: {readers.Reads} reads, {readers.Errors.Count} errors");
            Assert.True(readers.Errors.IsEmpty, $"{readers.Errors.Count} read errors in {readers.Reads} reads during the rolling restart:\n{string.Join('\n', readers.Errors.Take(20))}");
            Assert.True(readers.Reads > 100, $"{readers.Reads} reads");
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
    public async Task Draining_a_silo_moves_its_blocks_pinned_first_to_their_new_homes_under_readers_and_then_stops_it()
    {
        var pg = await PostgresServer.Shared;
        var connection = await pg.CreateDatabaseAsync("drain");
        var env = new Dictionary<string, string?> { ["GRAINFS_CLUSTER"] = connection };
        var silos = new List<SiloProcess>();
        try
        {
            for (var i = 1; i <= 3; i++)
            {
                silos.Add(await SiloProcess.StartAsync($"drain{i}", ["--host", $"drain-host-{i}", "--advertise", "127.0.0.1", "--name", $"drain-silo-{i}", "--roles", "gpu,read,write"], env));
            }

            var folder = TestProcess.NewFolder("drain-data");
            var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
            var random = new Random(13);
            foreach (var (dir, count) in new[] { ("data", 40), ("pin", 8) })
            {
                Directory.CreateDirectory(Path.Combine(folder, dir));
                for (var i = 0; i < count; i++)
                {
                    var bytes = new byte[120_000 + (i * 500)];
                    random.NextBytes(bytes);
                    files[$"/d/{dir}/f{i:D2}"] = bytes;
                    await File.WriteAllBytesAsync(Path.Combine(folder, dir, $"f{i:D2}"), bytes);
                }
            }

            var written = TestProcess.NewFolder("drain-written");
            Directory.CreateDirectory(written);
            await using var client = await Client.GrainFsClient.ConnectAsync(new Client.GrainFsClientOptions { Cluster = connection, Host = "reader-host", ShortCircuit = false });
            Assert.True((await client.MountAsync("/d", $"file://{folder}")).IsOk);
            Assert.True((await client.MountAsync("/w", $"file://{written}")).IsOk);
            Assert.True((await client.LoadAsync("/d/data")).IsOk);
            Assert.True((await client.PinAsync("/d/pin")).IsOk);
            var totalBytes = files.Values.Sum(f => (long)f.Length);
            var before = (await client.LocalityAsync("/d")).Value!;
            Assert.Equal(totalBytes, before.Hosts.Sum(h => h.Bytes));
            var onDrained = before.Hosts.SingleOrDefault(h => h.Host == "drain-host-3")?.Bytes ?? 0;
            Assert.True(onDrained > 0, "silo 3 holds none of the blocks: nothing to drain");
            for (var i = 0; i < 6; i++)
            {
                Assert.True((await client.WriteFileAsync($"/w/out-{i}", new MemoryStream(new byte[50_000 + i]))).IsOk);
            }

            await using var readers = CheckedReaders.Start(client, files);

            // The drain, as an operator runs it: the CLI, which returns once the silo has left.
            var clock = Stopwatch.StartNew();
            var (code, json, err) = await Cli.RunAsync(["worker", "drain", "drain-silo-3", "--json"], env);
            Assert.True(code == 0, err);
            var drained = JsonDocument.Parse(json).RootElement;
            output.WriteLine($"drain in {clock.Elapsed.TotalSeconds:F1} s: {json.Trim()}");
            Assert.True(drained.GetProperty("stopped").GetBoolean());
            // Its blocks of /d, and of the written files it held (persisted, they stay cached).
            Assert.True(drained.GetProperty("bytes").GetInt64() >= onDrained, $"{drained.GetProperty("bytes").GetInt64()} bytes moved, {onDrained} of /d were on the silo");
            Assert.Equal(0, drained.GetProperty("failures").GetInt64());
            Assert.Equal(0, await silos[2].Process.WaitForExitAsync(TimeSpan.FromSeconds(30)));
            await Task.Delay(TimeSpan.FromSeconds(5));
            await readers.StopAsync();
            output.WriteLine($"readers: {readers.Reads} reads, {readers.Errors.Count} errors");
            Assert.True(readers.Errors.IsEmpty, $"{readers.Errors.Count} read errors in {readers.Reads} reads during the drain:\n{string.Join('\n', readers.Errors.Take(20))}");

            // Every block is still cached, on the two silos left; the pinned ones pinned there.
            var after = (await client.LocalityAsync("/d")).Value!;
            Assert.DoesNotContain(after.Hosts, h => h.Host == "drain-host-3");
            Assert.Equal(totalBytes, after.Hosts.Sum(h => h.Bytes));
            var pinned = 0;
            foreach (var name in new[] { "drain-silo-1", "drain-silo-2" })
            {
                pinned += (await client.Grains.GetGrain<IWorkerGrain>(name).ListBlocksAsync(true, null, 4096)).Length;
            }

            Assert.Equal(8, pinned);

            // The written files were uploaded before the silo left.
            for (var i = 0; i < 6; i++)
            {
                Assert.Equal(50_000 + i, new FileInfo(Path.Combine(written, $"out-{i}")).Length);
            }

            // A silo name that is not in the cluster is refused by name.
            var (unknownCode, _, unknownErr) = await Cli.RunAsync(["worker", "drain", "no-such-silo"], env);
            Assert.Equal(1, unknownCode);
            Assert.Contains("no active silo is named 'no-such-silo'", unknownErr, StringComparison.Ordinal);
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

/// <summary>Readers of known files through the SDK, each read checked byte for byte, until stopped: reads and errors counted.</summary>
internal sealed class CheckedReaders : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private Task[] _tasks = [];
    private long _reads;

    /// <summary>Every failed or wrong read, with its time.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string> Errors { get; } = new();

    /// <summary>Reads so far.</summary>
    public long Reads => Interlocked.Read(ref _reads);

    /// <summary>Starts <paramref name="count"/> readers of <paramref name="files"/> (path to content), each picking files at random.</summary>
    public static CheckedReaders Start(Client.GrainFsClient client, IReadOnlyDictionary<string, byte[]> files, int count = 2)
    {
        var readers = new CheckedReaders();
        var names = files.Keys.ToArray();
        readers._tasks = [.. Enumerable.Range(0, count).Select(r => Task.Run(async () =>
        {
            var buffer = new byte[files.Values.Max(f => f.Length)];
            var pick = new Random(r);
            while (!readers._stop.IsCancellationRequested)
            {
                var name = names[pick.Next(names.Length)];
                var read = await client.ReadAsync(name, 0, buffer.AsMemory(0, files[name].Length));
                if (!read.IsOk)
                {
                    readers.Errors.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {name}: {read.Message}");
                }
                else if (read.Value != files[name].Length || !buffer.AsSpan(0, read.Value).SequenceEqual(files[name]))
                {
                    readers.Errors.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {name}: wrong bytes");
                }

                Interlocked.Increment(ref readers._reads);
            }
        }))];
        return readers;
    }

    /// <summary>Stops the readers and waits for them (a reader that threw rethrows here).</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_tasks);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_tasks).ContinueWith(_ => { }, TaskScheduler.Default);
        }

        _stop.Dispose();
    }
}
