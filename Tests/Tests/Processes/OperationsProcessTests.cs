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

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Signal(int pid, int signal);
}
