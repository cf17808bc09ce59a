using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using GrainFs.DataPlane.Security;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Processes;

/// <summary>
/// The dashboard and metrics of a silo listening off loopback: refused at start without a password file (or with a weak
/// or exposed one); with one, HTTPS with the silo's certificate and HTTP Basic credentials on every request.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class WebCredentialsProcessTests
{
    private static async Task<string> PasswordFileAsync(string password, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite)
    {
        var file = Path.Combine(TestProcess.NewFolder("webpw"), "password");
        await File.WriteAllTextAsync(file, "# the dashboard and metrics password\n" + password + "\n");
        File.SetUnixFileMode(file, mode);
        return file;
    }

    [Fact]
    public async Task A_silo_listening_off_loopback_without_a_good_password_file_does_not_start()
    {
        var exposed = await PasswordFileAsync("a-long-enough-password", UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        var weak = await PasswordFileAsync("short");
        var cases = new (string[] Args, string Expected)[]
        {
            ([], "give --web-password-file FILE"),
            (["--web-password-file", exposed], "readable or writable by group or others"),
            (["--web-password-file", weak], "has 5 characters; give at least 12"),
        };
        foreach (var (extra, expected) in cases)
        {
            var data = TestProcess.NewFolder("web-refused");
            var (code, _, stderr) = await TestProcess.RunAsync("dotnet", [Repo.SiloDll, "--data", data, "--listen-address", "0.0.0.0", .. extra], timeout: TimeSpan.FromSeconds(60));
            Assert.Equal(2, code);
            Assert.Contains(expected, stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("a-long-enough-password", stderr, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Off_loopback_the_dashboard_and_metrics_need_https_and_the_password()
    {
        const string Password = "correct-horse-battery-staple";
        // Bound to every address (the case under test) on free ports, asked over loopback only; the embedded default's
        // credentials (made on first use in this user's ~/.grainfs) hold the silo certificate and its CA.
        await using var silo = await SiloProcess.StartAsync("web", ["--listen-address", "0.0.0.0", "--web-password-file", await PasswordFileAsync(Password)]);
        var ca = CredentialFolder.ReadTrustedCas(CredentialFolder.DefaultPath("grainfs"));
        using var handler = new HttpClientHandler
        {
            // The silo's certificate chains to the cluster's CA (it names the silo, not 127.0.0.1: the chain is what counts).
            ServerCertificateCustomValidationCallback = (_, certificate, _, _) =>
            {
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.AddRange(ca);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return certificate is not null && chain.Build(certificate);
            },
        };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
        var metrics = $"https://127.0.0.1:{silo.MetricsPort}/metrics";
        var dashboard = $"https://127.0.0.1:{silo.DashboardPort}/dashboard/";

        async Task<HttpResponseMessage> GetAsync(string url, string? password)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            if (password is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("grainfs:" + password)));
            }

            return await http.SendAsync(request);
        }

        foreach (var url in new[] { metrics, dashboard })
        {
            using var none = await GetAsync(url, null);
            Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
            Assert.Contains("Basic", none.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
            using var wrong = await GetAsync(url, "correct-horse-battery-stapler");
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
            using var right = await GetAsync(url, Password);
            Assert.Equal(HttpStatusCode.OK, right.StatusCode);
        }

        // Probes carry no password: the health paths answer without one, and say no more than alive or ready.
        foreach (var path in new[] { "/healthz", "/readyz" })
        {
            using var probe = await GetAsync($"https://127.0.0.1:{silo.DashboardPort}{path}", null);
            Assert.Equal(HttpStatusCode.OK, probe.StatusCode);
        }

        using (var scrape = await GetAsync(metrics, Password))
        {
            Assert.Contains("grainfs_security_denied", await scrape.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // Plain HTTP gets nothing: the port speaks TLS only.
        using var plain = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        await Assert.ThrowsAsync<HttpRequestException>(() => plain.GetAsync($"http://127.0.0.1:{silo.MetricsPort}/metrics"));
    }
}
