using System.Globalization;
using System.Text.Json;
using GrainFs.Client;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Processes;

/// <summary>
/// Debian's Prometheus scraping a silo as a deployment would: over HTTPS, verifying the silo's certificate against the
/// cluster CA by the silo's name, with the metrics password; the alert rules of infra/monitoring loaded; and every query
/// of the Grafana dashboard (infra/monitoring/dashboard.json) asked of it while readers and a writer run.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class PrometheusProcessTests
{
    private const string ClusterId = "prometheus-test";
    private const string Password = "scrape-me-with-a-long-password";
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    [Fact]
    public async Task Prometheus_scrapes_a_silo_over_verified_https_loads_the_alert_rules_and_every_dashboard_query_returns_data()
    {
        var prometheusBinary = "/usr/bin/prometheus";
        Assert.True(File.Exists(prometheusBinary), "Debian's prometheus is not installed (.ci/run installs it)");
        var root = TestProcess.NewFolder("prometheus");
        string Folder(string name) => Path.Combine(root, name);
        foreach (var args in new[]
        {
            new[] { "init", Folder("ca"), "--cluster-id", ClusterId },
            ["issue", Folder("ca"), "--silo", "prom-silo", "--out", Folder("silo")],
            ["issue", Folder("ca"), "--client", "ops", "--admin", "--out", Folder("admin")],
        })
        {
            var (code, _, err) = await Cli.RunAsync(["certs", .. args]);
            Assert.True(code == 0, err);
        }

        var passwordFile = Folder("web-password");
        await File.WriteAllTextAsync(passwordFile, Password + "\n");
        File.SetUnixFileMode(passwordFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var dataset = Directory.CreateDirectory(Folder("dataset")).FullName;
        var random = new Random(5);
        for (var i = 0; i < 24; i++)
        {
            var bytes = new byte[200_000 + i];
            random.NextBytes(bytes);
            await File.WriteAllBytesAsync(Path.Combine(dataset, $"f{i:D2}.bin"), bytes);
        }

        var written = Directory.CreateDirectory(Folder("written")).FullName;

        // Off loopback (bound to every address, asked over loopback): /metrics is HTTPS with the password.
        await using var silo = await SiloProcess.StartAsync("prom", new SiloProcessOptions
        {
            ExtraArgs = ["--cluster-id", ClusterId, "--credentials", Folder("silo"), "--listen-address", "0.0.0.0", "--advertise", "127.0.0.1",
                "--web-password-file", passwordFile, "--host", "prom-host", "--roles", "read,write"],
        });
        await using var client = await GrainFsClient.ConnectAsync(new GrainFsClientOptions
        {
            GatewayPort = silo.GatewayPort,
            ClusterId = ClusterId,
            Credentials = Folder("admin"),
            // Another host than the silo's, so that reads go through the data port (its latency is on the dashboard).
            Host = "reader-host",
            ShortCircuit = false,
        });
        Assert.True((await client.MountAsync("/d", $"file://{dataset}")).IsOk);
        Assert.True((await client.MountAsync("/w", $"file://{written}")).IsOk);

        var prometheusPort = Ports.Free();
        var config = Folder("prometheus.yml");
        await File.WriteAllTextAsync(config, $"""
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            rule_files:
              - {Path.Combine(Repo.Root, "infra", "monitoring", "alerts.yml")}
            scrape_configs:
              - job_name: grainfs
                scheme: https
                basic_auth:
                  username: grainfs
                  password_file: {passwordFile}
                tls_config:
                  ca_file: {Path.Combine(Folder("silo"), "ca.crt")}
                  server_name: prom-silo
                static_configs:
                  - targets: ["127.0.0.1:{silo.MetricsPort}"]
            """);
        await using var prometheus = TestProcess.Start(prometheusBinary,
        [
            $"--config.file={config}",
            $"--storage.tsdb.path={Folder("tsdb")}",
            $"--web.listen-address=127.0.0.1:{prometheusPort}",
        ]);
        var api = $"http://127.0.0.1:{prometheusPort}/api/v1";

        // Load while Prometheus scrapes every second: cold reads (misses, fills from the folder), warm reads (hits through
        // the data port), the cache freed and filled again, and written files persisted.
        using var stop = new CancellationTokenSource();
        var load = Task.Run(async () =>
        {
            var buffer = new byte[64 * 1024];
            var round = 0;
            while (!stop.IsCancellationRequested)
            {
                for (var i = 0; i < 24; i++)
                {
                    var read = await client.ReadAsync($"/d/f{i:D2}.bin", 0, buffer);
                    Assert.True(read.IsOk, read.Message);
                }

                if (++round % 5 == 0)
                {
                    Assert.True((await client.FreeAsync("/d")).IsOk);
                    var write = await client.WriteFileAsync($"/w/out-{round}", new MemoryStream(new byte[150_000 + round]));
                    Assert.True(write.IsOk, write.Message);
                }

                await Task.Delay(20);
            }
        });

        try
        {
            // The target is up: the certificate verified by its name (a subjectAltName) and the password taken.
            var upSince = DateTime.UtcNow;
            JsonElement target = default;
            while (DateTime.UtcNow - upSince < TimeSpan.FromSeconds(60))
            {
                try
                {
                    var targets = await GetAsync($"{api}/targets");
                    var active = targets.GetProperty("activeTargets");
                    if (active.GetArrayLength() > 0)
                    {
                        target = active[0];
                        if (target.GetProperty("health").GetString() == "up")
                        {
                            break;
                        }
                    }
                }
                catch (HttpRequestException)
                {
                    // Prometheus still starting.
                }

                await Task.Delay(500);
            }

            Assert.True(target.ValueKind == JsonValueKind.Object && target.GetProperty("health").GetString() == "up",
                $"the silo's target is not up: {(target.ValueKind == JsonValueKind.Object ? target.GetProperty("lastError").GetString() : "no target")}\n{prometheus.Output}");

            // Enough scrapes under load for every rate() window of the queries below.
            await Task.Delay(TimeSpan.FromSeconds(15));
            Assert.False(load.IsFaulted, load.Exception?.ToString());

            var dashboard = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(Repo.Root, "infra", "monitoring", "dashboard.json"))).RootElement;
            var queries = dashboard.GetProperty("panels").EnumerateArray()
                .Where(p => p.TryGetProperty("targets", out _))
                .SelectMany(p => p.GetProperty("targets").EnumerateArray().Select(t => (Panel: p.GetProperty("title").GetString()!, Expr: t.GetProperty("expr").GetString()!)))
                .ToList();
            Assert.True(queries.Count >= 20, $"{queries.Count} dashboard queries");
            var empty = new List<string>();
            foreach (var (panel, expr) in queries)
            {
                // Grafana's variables as a dashboard showing every silo over the last scrapes would fill them.
                var query = expr.Replace("$__rate_interval", "10s", StringComparison.Ordinal).Replace("$instance", ".*", StringComparison.Ordinal);
                var data = await GetAsync($"{api}/query?query={Uri.EscapeDataString(query)}");
                if (data.GetProperty("result").GetArrayLength() == 0)
                {
                    empty.Add($"{panel}: {query}");
                }
            }

            Assert.True(empty.Count == 0, $"{empty.Count} of {queries.Count} dashboard queries returned no data:\n{string.Join('\n', empty)}");

            // The GrainFS series are there with their labels.
            var hits = await GetAsync($"{api}/query?query={Uri.EscapeDataString("sum by (host, tier) (grainfs_cache_hits_total)")}");
            Assert.Contains(hits.GetProperty("result").EnumerateArray(), r => r.GetProperty("metric").GetProperty("host").GetString() == "prom-host" && double.Parse(r.GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture) > 0);

            // The alert rules are loaded and evaluate without error; none fires on a healthy silo.
            var rules = await GetAsync($"{api}/rules");
            var loaded = rules.GetProperty("groups").EnumerateArray().SelectMany(g => g.GetProperty("rules").EnumerateArray()).ToList();
            Assert.True(loaded.Count >= 10, $"{loaded.Count} rules loaded");
            Assert.All(loaded, r => Assert.True(r.GetProperty("health").GetString() == "ok", r.ToString()));
            Assert.DoesNotContain(loaded, r => r.GetProperty("state").GetString() == "firing");
        }
        finally
        {
            await stop.CancelAsync();
            await load;
        }
    }

    private static async Task<JsonElement> GetAsync(string url)
    {
        var text = await Http.GetStringAsync(new Uri(url));
        var body = JsonDocument.Parse(text).RootElement;
        Assert.True(body.GetProperty("status").GetString() == "success", text);
        return body.GetProperty("data").Clone();
    }
}
