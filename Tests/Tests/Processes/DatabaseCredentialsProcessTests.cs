using GrainFs.Tests.Infrastructure;
using Npgsql;

namespace GrainFs.Tests.Processes;

/// <summary>
/// No database password on a command line: silos and the CLI read the connection string from a private
/// <c>--cluster-file</c>, the password may stay in a pgpass file, and clients given <c>--gateways</c> need no database at all.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class DatabaseCredentialsProcessTests
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private static string WritePrivate(string folder, string name, string text, UnixFileMode mode = Private)
    {
        var path = Path.Combine(folder, name);
        File.WriteAllText(path, text);
        File.SetUnixFileMode(path, mode);
        return path;
    }

    private static string WithoutPassword(string connection) =>
        new NpgsqlConnectionStringBuilder(connection) { Password = null }.ConnectionString;

    [Fact]
    public async Task A_silo_and_the_cli_read_the_connection_from_a_private_file_and_never_print_its_password()
    {
        var pg = await PostgresServer.Shared;
        // The shared server trusts local connections, so any password gets in: what is checked is that none is shown.
        var password = $"pw-{Guid.NewGuid():N}";
        var connection = await pg.CreateDatabaseAsync("cfile") + $";Password={password}";
        var folder = TestProcess.NewFolder("cfile");
        var file = WritePrivate(folder, "cluster.conn", $"# the GrainFS cluster\n\n{connection}\n");
        var noCluster = new Dictionary<string, string?> { ["GRAINFS_CLUSTER"] = null, ["GRAINFS_CLUSTER_FILE"] = null };
        await using var silo = await SiloProcess.StartAsync("cfile", ["--cluster-file", file, "--host", "cfhost", "--advertise", "127.0.0.1"], noCluster);
        Assert.Contains($"cluster=Host=127.0.0.1;Port={pg.Port};Database=", silo.Process.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(password, silo.Process.Output, StringComparison.Ordinal);

        var data = TestProcess.NewFolder("cfile-data");
        await File.WriteAllTextAsync(Path.Combine(data, "hello.txt"), "hello");
        var (code, _, err) = await Cli.RunAsync(["--cluster-file", file, "fs", "mount", "/cf", $"file://{data}"], noCluster);
        Assert.True(code == 0, err);

        // Given the gateways, the CLI finds the cluster without the database.
        var (gcode, text, gerr) = await Cli.RunAsync(["--gateways", $"127.0.0.1:{silo.GatewayPort}", "fs", "cat", "/cf/hello.txt"], noCluster);
        Assert.True(gcode == 0, gerr);
        Assert.Equal("hello", text);
        var (vcode, listed, verr) = await Cli.RunAsync(["fs", "ls", "/cf"], new Dictionary<string, string?> { ["GRAINFS_GATEWAYS"] = $"localhost:{silo.GatewayPort}", ["GRAINFS_CLUSTER"] = null });
        Assert.True(vcode == 0, verr);
        Assert.Contains("hello.txt", listed, StringComparison.Ordinal);

        // A file others may read is refused before anything connects, naming it and its mode, and the password stays unsaid.
        File.SetUnixFileMode(file, Private | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var (rcode, rout, rerr) = await Cli.RunAsync(["--cluster-file", file, "fs", "mounts"], noCluster);
        Assert.Equal(2, rcode);
        Assert.Contains($"'{file}' is readable or writable by group or others (mode 0644)", rerr, StringComparison.Ordinal);
        Assert.Contains("--cluster-file", rerr, StringComparison.Ordinal);
        Assert.DoesNotContain(password, rout + rerr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bad_cluster_file_stops_the_silo_naming_the_file_and_why()
    {
        var folder = TestProcess.NewFolder("cfile-bad");
        var secret = $"pw-{Guid.NewGuid():N}";
        var open = WritePrivate(folder, "open.conn", $"Host=127.0.0.1;Port=1;Username=u;Password={secret};Database=d", Private | UnixFileMode.OtherRead);
        var empty = WritePrivate(folder, "empty.conn", "# nothing yet\n");
        var good = WritePrivate(folder, "good.conn", $"Host=127.0.0.1;Port=1;Username=u;Password={secret};Database=d");
        var foreign = WritePrivate(folder, "foreign.conn", $"Host=127.0.0.1;Port=1;Username=u;Password={secret};Database=d");
        var cases = new List<(string[] Args, string Words)>
        {
            (["--cluster-file", open], $"GrainFs:ClusterFile: '{open}' is readable or writable by group or others (mode 0604)"),
            (["--cluster-file", empty], $"GrainFs:ClusterFile: '{empty}' holds no value: it should hold a connection string"),
            (["--cluster-file", Path.Combine(folder, "missing.conn")], $"GrainFs:ClusterFile: '{Path.Combine(folder, "missing.conn")}' does not exist"),
            (["--cluster-file", good, "--cluster", "Host=elsewhere;Database=d"], "GrainFs:ClusterFile: give the connection string with --cluster or --cluster-file, not both"),
        };
        if (Environment.UserName == "root")
        {
            await TestProcess.RunAsync("chown", ["65534", foreign]);
            cases.Add((["--cluster-file", foreign], $"GrainFs:ClusterFile: '{foreign}' is owned by user 65534"));
        }

        foreach (var (args, words) in cases)
        {
            var (code, stdout, stderr) = await TestProcess.RunAsync("dotnet", [Repo.SiloDll, .. args], new Dictionary<string, string?> { ["GRAINFS_CLUSTER"] = null }, TimeSpan.FromSeconds(60));
            Assert.True(code == 2, $"{string.Join(' ', args)}: exit {code}: {stderr}");
            Assert.Contains($"grainfs-silo: configuration error: {words}", stderr, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, stdout + stderr, StringComparison.Ordinal);
        }

        // A usable file naming an unreachable database: the start-up error names the database, not the password.
        var (ucode, uout, uerr) = await TestProcess.RunAsync("dotnet", [Repo.SiloDll, "--cluster-file", good], new Dictionary<string, string?> { ["GRAINFS_CLUSTER"] = null }, TimeSpan.FromSeconds(90));
        Assert.Equal(1, ucode);
        Assert.Contains("Host=127.0.0.1;Port=1;Database=d;Username=u", uerr, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, uout + uerr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_password_can_stay_in_a_pgpass_file_for_silos_and_the_cli()
    {
        var password = $"pw-{Guid.NewGuid():N}";
        await using var server = await PostgresServer.StartWithPasswordAsync(password);
        var connection = WithoutPassword(await server.CreateDatabaseAsync("pgpass"));
        Assert.DoesNotContain(password, connection, StringComparison.Ordinal);

        // The server does ask for it: with an empty pgpass file the connection is refused for want of a password.
        var folder = TestProcess.NewFolder("pgpass");
        var none = WritePrivate(folder, "empty-pgpass", string.Empty);
        await using (var refused = new NpgsqlConnection(connection + $";Passfile={none}"))
        {
            var e = await Assert.ThrowsAnyAsync<NpgsqlException>(() => refused.OpenAsync());
            Assert.Contains("password", e.Message, StringComparison.OrdinalIgnoreCase);
        }

        var pgpass = WritePrivate(folder, "pgpass", $"# host:port:database:user:password\n127.0.0.1:{server.Port}:*:postgres:{password}\n");
        var file = WritePrivate(folder, "cluster.conn", connection);
        var env = new Dictionary<string, string?> { ["PGPASSFILE"] = pgpass, ["GRAINFS_CLUSTER"] = null };
        await using var silo = await SiloProcess.StartAsync("pgpass", ["--cluster-file", file, "--host", "pghost", "--advertise", "127.0.0.1"], env);
        Assert.DoesNotContain(password, silo.Process.Output, StringComparison.Ordinal);

        var data = TestProcess.NewFolder("pgpass-data");
        var (code, _, err) = await Cli.RunAsync(["--cluster-file", file, "fs", "mount", "/pg", $"file://{data}"], env);
        Assert.True(code == 0, err);

        // ~/.pgpass, the default: a home of its own holding only that file (the credentials folder named explicitly).
        var home = TestProcess.NewFolder("pgpass-home");
        File.Copy(pgpass, Path.Combine(home, ".pgpass"));
        var credentials = GrainFs.DataPlane.Security.CredentialFolder.Resolve(null, "grainfs");
        var (hcode, mounts, herr) = await Cli.RunAsync(["--credentials", credentials, "--cluster", connection, "fs", "mounts"], new Dictionary<string, string?> { ["HOME"] = home, ["GRAINFS_CLUSTER"] = null });
        Assert.True(hcode == 0, herr);
        Assert.Contains("/pg", mounts, StringComparison.Ordinal);

        // Without any pgpass file the CLI cannot read the gateways from the database; with --gateways it needs none.
        var bare = TestProcess.NewFolder("pgpass-bare");
        var (ncode, _, nerr) = await Cli.RunAsync(["--credentials", credentials, "--cluster", connection, "fs", "mounts"], new Dictionary<string, string?> { ["HOME"] = bare, ["GRAINFS_CLUSTER"] = null });
        Assert.Equal(3, ncode);
        Assert.Contains("password", nerr, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(password, nerr, StringComparison.Ordinal);
        var (gcode, gmounts, gerr) = await Cli.RunAsync(["--credentials", credentials, "--gateways", $"127.0.0.1:{silo.GatewayPort}", "fs", "mounts"], new Dictionary<string, string?> { ["HOME"] = bare, ["GRAINFS_CLUSTER"] = null });
        Assert.True(gcode == 0, gerr);
        Assert.Contains("/pg", gmounts, StringComparison.Ordinal);
    }
}
