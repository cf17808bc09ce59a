using System.Diagnostics;
using System.Net;
using System.Text.Json;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Processes;

/// <summary>What operators and their probes ask a running cluster: /healthz and /readyz, `grainfs status`, `grainfs worker list`.</summary>
public sealed class OperationsProcessTests
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    private static async Task<(HttpStatusCode Status, JsonElement Body)> GetJsonAsync(string url)
    {
        using var response = await Http.GetAsync(url);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    private static JsonElement CheckOf(JsonElement body, string name) =>
        body.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == name);

    [Fact]
    public async Task Health_is_served_on_its_own_port_and_the_dashboards_and_readyz_names_what_is_not_ready()
    {
        await using var postgres = await PostgresServer.StartNewAsync();
        var connection = await postgres.CreateDatabaseAsync("health");
        var healthPort = Ports.Free();
        await using var silo = await SiloProcess.StartAsync("health", ["--advertise", "127.0.0.1", "--health-port", healthPort.ToString(System.Globalization.CultureInfo.InvariantCulture)],
            new Dictionary<string, string?> { ["GRAINFS_CLUSTER"] = connection });

        var (alive, aliveBody) = await GetJsonAsync($"http://127.0.0.1:{healthPort}/healthz");
        Assert.Equal(HttpStatusCode.OK, alive);
        Assert.Equal("alive", aliveBody.GetProperty("status").GetString());
        foreach (var port in new[] { healthPort, silo.DashboardPort })
        {
            var (ready, body) = await GetJsonAsync($"http://127.0.0.1:{port}/readyz");
            Assert.True(ready == HttpStatusCode.OK, body.ToString());
            Assert.Equal("ready", body.GetProperty("status").GetString());
            Assert.All(body.GetProperty("checks").EnumerateArray(), c => Assert.True(c.GetProperty("ok").GetBoolean(), c.ToString()));
            Assert.Contains("postgres", CheckOf(body, "metadata").GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        // The health port serves the two health paths and nothing else.
        using (var metrics = await Http.GetAsync($"http://127.0.0.1:{healthPort}/metrics"))
        {
            Assert.Equal(HttpStatusCode.NotFound, metrics.StatusCode);
        }

        // PostgreSQL stopped: not ready, naming the metadata store; still alive.
        var stopped = postgres.ServerProcesses();
        foreach (var pid in stopped)
        {
            Assert.Equal(0, Signal(pid, 19));
        }

        try
        {
            var (notReady, body) = await GetJsonAsync($"http://127.0.0.1:{healthPort}/readyz");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, notReady);
            Assert.Equal("not ready", body.GetProperty("status").GetString());
            var metadata = CheckOf(body, "metadata");
            Assert.False(metadata.GetProperty("ok").GetBoolean());
            Assert.Contains("does not answer", metadata.GetProperty("detail").GetString(), StringComparison.Ordinal);
            Assert.True(CheckOf(body, "cluster").GetProperty("ok").GetBoolean());
            Assert.Equal(HttpStatusCode.OK, (await GetJsonAsync($"http://127.0.0.1:{healthPort}/healthz")).Status);
        }
        finally
        {
            foreach (var pid in stopped)
            {
                Signal(pid, 18);
            }
        }

        var clock = Stopwatch.StartNew();
        HttpStatusCode again;
        while ((again = (await GetJsonAsync($"http://127.0.0.1:{healthPort}/readyz")).Status) != HttpStatusCode.OK && clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(250);
        }

        Assert.Equal(HttpStatusCode.OK, again);
    }

    [Fact]
    public async Task Status_lists_every_member_with_its_state_and_worker_list_the_active_workers_with_their_tiers()
    {
        var pg = await PostgresServer.Shared;
        var connection = await pg.CreateDatabaseAsync("status");
        var env = new Dictionary<string, string?> { ["GRAINFS_CLUSTER"] = connection };
        var silos = new List<SiloProcess>();
        try
        {
            for (var i = 1; i <= 2; i++)
            {
                silos.Add(await SiloProcess.StartAsync($"status{i}", ["--host", $"shost{i}", "--advertise", "127.0.0.1", "--name", $"status-silo-{i}", "--roles", i == 1 ? "gpu,read" : "read,write"], env));
            }

            var (code, json, err) = await Cli.RunAsync(["status", "--json"], env);
            Assert.True(code == 0, err);
            var members = JsonDocument.Parse(json).RootElement.GetProperty("silos").EnumerateArray().ToList();
            Assert.Equal(["status-silo-1", "status-silo-2"], members.Select(m => m.GetProperty("name").GetString()));
            Assert.All(members, m => Assert.Equal("active", m.GetProperty("state").GetString()));
            var second = members[1];
            Assert.Equal("shost2", second.GetProperty("host").GetString());

            // The version each silo runs and the formats it speaks: a rolling upgrade shows which silo is where.
            Assert.Matches(@"^\d+\.\d+\.\d+\S* dataport/1 tier/1 schema/\d+$", second.GetProperty("version").GetString());
            Assert.Equal(["read", "write"], second.GetProperty("roles").EnumerateArray().Select(r => r.GetString()));
            Assert.Equal(["MEM", "SSD"], second.GetProperty("tiers").EnumerateArray().Select(t => t.GetProperty("tier").GetString()));
            Assert.All(second.GetProperty("tiers").EnumerateArray(), t => Assert.True(t.GetProperty("inService").GetBoolean()));

            // One killed: status says it is dead once the cluster declared it; worker list shows only the live one.
            silos[1].Process.Kill();
            var clock = Stopwatch.StartNew();
            string state;
            do
            {
                await Task.Delay(500);
                (code, json, err) = await Cli.RunAsync(["status", "--json"], env);
                Assert.True(code == 0, err);
                state = JsonDocument.Parse(json).RootElement.GetProperty("silos").EnumerateArray().Single(m => m.GetProperty("name").GetString() == "status-silo-2").GetProperty("state").GetString()!;
            }
            while (state != "dead" && clock.Elapsed < TimeSpan.FromSeconds(60));

            Assert.Equal("dead", state);
            var (textCode, text, _) = await Cli.RunAsync(["status"], env);
            Assert.Equal(0, textCode);
            Assert.Matches(@"status-silo-2\s+dead", text);
            Assert.Matches(@"status-silo-1\s+active", text);

            (code, json, err) = await Cli.RunAsync(["worker", "list", "--json"], env);
            Assert.True(code == 0, err);
            var workers = JsonDocument.Parse(json).RootElement.GetProperty("workers").EnumerateArray().ToList();
            var worker = Assert.Single(workers);
            Assert.Equal("status-silo-1", worker.GetProperty("name").GetString());
            Assert.Equal("shost1", worker.GetProperty("host").GetString());
            Assert.NotEmpty(worker.GetProperty("dataEndpoint").GetString()!);
            Assert.Equal(2, worker.GetProperty("tiers").GetArrayLength());
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
    public async Task Locality_on_a_three_silo_cluster_equals_the_block_bytes_in_each_silos_tier_folders_and_affinity_weights_by_it()
    {
        var pg = await PostgresServer.Shared;
        var connection = await pg.CreateDatabaseAsync("locality");
        var env = new Dictionary<string, string?> { ["GRAINFS_CLUSTER"] = connection };
        var silos = new List<SiloProcess>();
        try
        {
            for (var i = 1; i <= 3; i++)
            {
                silos.Add(await SiloProcess.StartAsync($"locality{i}", ["--host", $"node-{i}", "--advertise", "127.0.0.1", "--name", $"locality-silo-{i}", "--roles", "gpu,read"], env));
            }

            var dataset = TestProcess.NewFolder("locality-data");
            Directory.CreateDirectory(Path.Combine(dataset, "train"));
            var random = new Random(3);
            long treeBytes = 0;
            for (var i = 0; i < 30; i++)
            {
                var bytes = new byte[(i % 3 == 0 ? 5_000_000 : 300_000) + i];
                random.NextBytes(bytes);
                treeBytes += bytes.Length;
                await File.WriteAllBytesAsync(Path.Combine(dataset, "train", $"s{i:D2}.bin"), bytes);
            }

            await File.WriteAllBytesAsync(Path.Combine(dataset, "other.bin"), new byte[3_000_000]);
            Assert.Equal(0, (await Cli.RunAsync(["fs", "mount", "/ds", $"file://{dataset}"], env)).ExitCode);

            // Before a load: nothing cached, and affinity says so (exit 1, ENOENT).
            var (code, json, err) = await Cli.RunAsync(["fs", "locality", "/ds/train", "--json"], env);
            Assert.True(code == 0, err);
            Assert.Equal(0, JsonDocument.Parse(json).RootElement.GetProperty("hosts").GetArrayLength());
            var (noneCode, _, noneErr) = await Cli.RunAsync(["k8s", "affinity", "/ds/train"], env);
            Assert.True(noneCode == 1, noneErr);
            Assert.Contains("grainfs fs load /ds/train", noneErr, StringComparison.Ordinal);

            // Load the whole mount; locality per host is what each silo's tier folders hold (every block there is of /ds),
            // and the tree's part of it adds up to the tree.
            Assert.Equal(0, (await Cli.RunAsync(["fs", "load", "/ds"], env)).ExitCode);
            (code, json, err) = await Cli.RunAsync(["fs", "locality", "/ds", "--json"], env);
            Assert.True(code == 0, err);
            var all = JsonDocument.Parse(json).RootElement.GetProperty("hosts").EnumerateArray()
                .ToDictionary(h => h.GetProperty("host").GetString()!, h => h.GetProperty("bytes").GetInt64());
            var onDisk = Enumerable.Range(0, 3).ToDictionary(i => $"node-{i + 1}", i => BlockBytesInTierFolders(silos[i].Data));
            Assert.Equal(onDisk.Where(h => h.Value > 0).OrderBy(h => h.Key).ToList(), all.OrderBy(h => h.Key).ToList());
            Assert.Equal(treeBytes + 3_000_000, all.Values.Sum());

            (code, json, err) = await Cli.RunAsync(["fs", "locality", "/ds/train", "--json"], env);
            Assert.True(code == 0, err);
            var tree = JsonDocument.Parse(json).RootElement;
            Assert.Equal(30, tree.GetProperty("files").GetInt64());
            Assert.Equal(treeBytes, tree.GetProperty("bytes").GetInt64());
            var reported = tree.GetProperty("hosts").EnumerateArray().ToDictionary(h => h.GetProperty("host").GetString()!, h => h.GetProperty("bytes").GetInt64());
            Assert.Equal(treeBytes, reported.Values.Sum());
            Assert.All(reported, h => Assert.True(h.Value <= all[h.Key], $"{h.Key}: the tree's {h.Value} bytes, all of /ds {all[h.Key]}"));
            Assert.True(reported.Count >= 2, $"the tree's blocks are spread over {reported.Count} host(s)");
            Assert.All(tree.GetProperty("hosts").EnumerateArray(), h => Assert.Equal(Math.Round((double)h.GetProperty("bytes").GetInt64() / treeBytes, 4), h.GetProperty("share").GetDouble(), 4));

            var (textCode, text, _) = await Cli.RunAsync(["fs", "locality", "/ds/train"], env);
            Assert.Equal(0, textCode);
            Assert.All(reported.Keys, host => Assert.Contains(host, text, StringComparison.Ordinal));

            // The affinity snippet: one preferred term per host, weighted by its share, keyed by the node label.
            var (affinityCode, yaml, affinityErr) = await Cli.RunAsync(["k8s", "affinity", "/ds/train", "--label", "grainfs.io/host"], env);
            Assert.True(affinityCode == 0, affinityErr);
            Assert.Contains("preferredDuringSchedulingIgnoredDuringExecution:", yaml, StringComparison.Ordinal);
            foreach (var (host, bytes) in reported)
            {
                var weight = Math.Clamp((int)Math.Round(100.0 * bytes / treeBytes), 1, 100);
                Assert.Matches($@"- weight: {weight}\b[^\n]*\n\s+preference:\n\s+matchExpressions:\n\s+- key: grainfs.io/host\n\s+operator: In\n\s+values: \[{host}\]", yaml);
            }

            var (badCode, _, badErr) = await Cli.RunAsync(["k8s", "affinity", "/ds/train", "--min-share", "150"], env);
            Assert.Equal(2, badCode);
            Assert.Contains("--min-share '150'", badErr, StringComparison.Ordinal);
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
    public async Task Bench_writes_reads_and_stats_through_the_sdk_and_through_a_fuse_mount_and_leaves_nothing_behind()
    {
        await using var silo = await SiloProcess.StartAsync("bench");
        var folder = TestProcess.NewFolder("bench-data");
        Directory.CreateDirectory(folder);
        Assert.Equal(0, (await silo.CliAsync("fs", "mount", "/b", $"file://{folder}")).ExitCode);
        await using var fuse = await FuseProcess.StartAsync(silo);
        string[] sizes = ["--big-file-size", "6MiB", "--small-file-size", "10KiB", "--small-files", "15", "--threads", "2", "--block-size", "256KiB", "--json"];
        foreach (var (through, args) in new[]
        {
            ("the SDK", new[] { "bench", "/b" }),
            ("the FUSE mount", ["bench", "--fuse", Path.Combine(fuse.MountPoint, "b")]),
        })
        {
            var (code, json, err) = await silo.CliAsync([.. args, .. sizes]);
            Assert.True(code == 0, err);
            var result = JsonDocument.Parse(json).RootElement;
            Assert.Equal(through, result.GetProperty("through").GetString());
            var stages = result.GetProperty("stages").EnumerateArray().ToDictionary(s => s.GetProperty("stage").GetString()!);
            Assert.Equal(["Write big file", "Read big file", "Write small file", "Read small file", "Stat file"], stages.Keys);
            foreach (var stage in new[] { "Write big file", "Read big file" })
            {
                Assert.Equal(2, stages[stage].GetProperty("files").GetInt64());
                Assert.Equal(2 * 6L << 20, stages[stage].GetProperty("bytes").GetInt64());
                Assert.True(stages[stage].GetProperty("mibPerSecond").GetDouble() > 0);
            }

            foreach (var stage in new[] { "Write small file", "Read small file", "Stat file" })
            {
                Assert.Equal(30, stages[stage].GetProperty("files").GetInt64());
                Assert.True(stages[stage].GetProperty("filesPerSecond").GetDouble() > 0);
            }

            // The bench folder is gone from GrainFS and from under-storage.
            Assert.Empty(Directory.EnumerateFileSystemEntries(folder));
        }

        // The table, and bad sizes refused naming the option.
        var (tableCode, table, tableErr) = await silo.CliAsync("bench", "/b", "--big-file-size", "1MiB", "--small-files", "3");
        Assert.True(tableCode == 0, tableErr);
        Assert.Matches(@"\| Write big file\s+\|\s+[\d.]+ MiB/s \|\s+[\d.]+ s/file \|", table);
        Assert.Matches(@"\| Stat file\s+\|\s+[\d.]+ files/s \|\s+[\d.]+ ms/file \|", table);
        var (badCode, _, badErr) = await silo.CliAsync("bench", "/b", "--block-size", "12");
        Assert.Equal(2, badCode);
        Assert.Contains("--block-size '12'", badErr, StringComparison.Ordinal);
    }

    /// <summary>The data bytes of the block files in a silo's tier folders (every file's block header read; other files skipped).</summary>
    private static long BlockBytesInTierFolders(string siloData)
    {
        long bytes = 0;
        foreach (var file in Directory.EnumerateFiles(siloData, "*", SearchOption.AllDirectories))
        {
            using var handle = File.OpenHandle(file);
            if (GrainFs.DataPlane.Blocks.BlockFile.ReadHeader(handle) is { } header)
            {
                bytes += header.DataLength;
            }
        }

        return bytes;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Signal(int pid, int signal);
}
