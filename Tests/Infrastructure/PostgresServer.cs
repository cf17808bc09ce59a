using Npgsql;

namespace GrainFs.Tests.Infrastructure;

/// <summary>
/// A real PostgreSQL 15 server (Debian's) on a free loopback port, in a folder of the test run. As root it
/// runs as the postgres user. Each test class asks for its own database, with the GrainFS schema applied
/// by infra/db/apply.sh, the same script operators run.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    private const string Bin = "/usr/lib/postgresql/15/bin";
    private readonly string _folder;
    private int _databases;

    private PostgresServer(string folder, int port, string? password)
    {
        _folder = folder;
        Port = port;
        Password = password;
    }

    /// <summary>The server's port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>The password of the postgres user on TCP connections, or null when the server trusts every local connection (the shared one).</summary>
    public string? Password { get; }

    /// <summary>The one server of this test run, started on first use.</summary>
    public static Task<PostgresServer> Shared => LazyShared.Value;

    private static readonly Lazy<Task<PostgresServer>> LazyShared = new(StartAsync);

    static PostgresServer()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            if (LazyShared.IsValueCreated && LazyShared.Value.IsCompletedSuccessfully)
            {
                LazyShared.Value.Result.Stop();
            }
        };
    }

    private static bool IsRoot => Environment.UserName == "root";

    private static Task<PostgresServer> StartAsync() => StartAsync(null);

    /// <summary>A server of the caller's own (stop it with <see cref="DisposeAsync"/>), trusting local connections: the fault suite kills and stops it.</summary>
    public static Task<PostgresServer> StartNewAsync() => StartAsync(null);

    /// <summary>
    /// A server of the caller's own (stop it with <see cref="DisposeAsync"/>) whose TCP connections must give
    /// <paramref name="password"/> for the postgres user (scram-sha-256), as a production server would.
    /// </summary>
    public static Task<PostgresServer> StartWithPasswordAsync(string password) => StartAsync(password);

    private static async Task<PostgresServer> StartAsync(string? password)
    {
        if (!File.Exists(Path.Combine(Bin, "initdb")))
        {
            throw new InvalidOperationException($"PostgreSQL 15 is not installed ({Bin}/initdb missing): apt-get install postgresql-15");
        }

        var folder = TestProcess.NewFolder("pg");
        var port = Ports.Free();
        if (IsRoot)
        {
            await RunAsync("chown", ["-R", "postgres:postgres", folder]).ConfigureAwait(false);
            await RunAsync("chmod", ["755", TestProcess.RunRoot]).ConfigureAwait(false);
        }

        var auth = "--auth=trust";
        if (password is not null)
        {
            // The socket stays trusted (pg_ctl waits on it); TCP, which GrainFS uses, asks for the password.
            var passwordFile = Path.Combine(folder, "initdb-password");
            await File.WriteAllTextAsync(passwordFile, password + "\n").ConfigureAwait(false);
            if (IsRoot)
            {
                await RunAsync("chown", ["postgres:postgres", passwordFile]).ConfigureAwait(false);
            }

            auth = $"--auth-local=trust --auth-host=scram-sha-256 --pwfile={passwordFile}";
        }

        await AsPostgresAsync($"{Bin}/initdb -D {folder}/data -U postgres {auth} -E UTF8 --no-sync").ConfigureAwait(false);
        File.Delete(Path.Combine(folder, "initdb-password"));
        await StartServerAsync(folder, port).ConfigureAwait(false);
        return new PostgresServer(folder, port, password);
    }

    private static Task StartServerAsync(string folder, int port) =>
        AsPostgresAsync($"{Bin}/pg_ctl -D {folder}/data -l {folder}/pg.log -o \"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300\" -w start");

    /// <summary>The postmaster's process id (from postmaster.pid), or 0 when the server is not running.</summary>
    public int ServerPid
    {
        get
        {
            try
            {
                var first = File.ReadLines(Path.Combine(_folder, "data", "postmaster.pid")).FirstOrDefault();
                return int.TryParse(first, System.Globalization.CultureInfo.InvariantCulture, out var pid) && Directory.Exists($"/proc/{pid}") ? pid : 0;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return 0;
            }
        }
    }

    /// <summary>The postmaster and every process it started (its backends and workers), for signals that must reach them all.</summary>
    public IReadOnlyList<int> ServerProcesses()
    {
        var root = ServerPid;
        if (root == 0)
        {
            return [];
        }

        var all = new List<int> { root };
        foreach (var folder in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(folder), System.Globalization.CultureInfo.InvariantCulture, out var pid) && ParentOf(pid) == root)
            {
                all.Add(pid);
            }
        }

        return all;
    }

    private static int ParentOf(int pid)
    {
        try
        {
            // /proc/PID/stat: "pid (comm) state ppid …"; comm may hold spaces, so read after its closing parenthesis.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or ArgumentOutOfRangeException)
        {
            return 0;
        }
    }

    /// <summary>
    /// Starts the server again on its port after it was killed: waits (≤ 30 s) until the killed backends are gone, which
    /// hold the shared memory a new postmaster refuses to share, then starts it (crash recovery runs as in production).
    /// </summary>
    public async Task StartAgainAsync()
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                await StartServerAsync(_folder, Port).ConfigureAwait(false);
                return;
            }
            catch (InvalidOperationException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(500).ConfigureAwait(false);
            }
        }
    }

    private static Task AsPostgresAsync(string command) =>
        IsRoot ? RunAsync("su", ["postgres", "-s", "/bin/bash", "-c", command]) : RunAsync("/bin/bash", ["-c", command]);

    private static async Task RunAsync(string file, string[] args)
    {
        var (code, stdout, stderr) = await TestProcess.RunAsync(file, args, timeout: TimeSpan.FromMinutes(2)).ConfigureAwait(false);
        if (code != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({code}): {stdout}{stderr}");
        }
    }

    /// <summary>The connection string of a database on this server.</summary>
    public string ConnectionString(string database) =>
        $"Host=127.0.0.1;Port={Port};Username=postgres;Database={database};Pooling=true;Maximum Pool Size=50" + (Password is null ? string.Empty : $";Password={Password}");

    /// <summary>A new database with the whole GrainFS schema (Orleans membership and metadata) applied by infra/db/apply.sh.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix)
    {
        var name = $"{prefix}_{Interlocked.Increment(ref _databases)}_{Guid.NewGuid().ToString("N")[..6]}".ToLowerInvariant();
        var connection = new NpgsqlConnection(ConnectionString("postgres"));
        await using (connection.ConfigureAwait(false))
        {
            await connection.OpenAsync().ConfigureAwait(false);
            var command = new NpgsqlCommand($"create database {name}", connection);
            await using (command.ConfigureAwait(false))
            {
                await command.ExecuteNonQueryAsync().ConfigureAwait(false);
            }
        }

        var connectionString = ConnectionString(name);
        var (code, stdout, stderr) = await TestProcess.RunAsync("bash", [Path.Combine(Repo.Root, "infra", "db", "apply.sh"), connectionString]).ConfigureAwait(false);
        if (code != 0)
        {
            throw new InvalidOperationException($"infra/db/apply.sh failed ({code}): {stdout}{stderr}");
        }

        return connectionString;
    }

    private void Stop()
    {
        var command = $"{Bin}/pg_ctl -D {_folder}/data -m immediate stop";
        var info = IsRoot
            ? new System.Diagnostics.ProcessStartInfo("su", ["postgres", "-s", "/bin/bash", "-c", command])
            : new System.Diagnostics.ProcessStartInfo("/bin/bash", ["-c", command]);
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        using var process = System.Diagnostics.Process.Start(info);
        process?.WaitForExit(15000);
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        Stop();
        return ValueTask.CompletedTask;
    }
}
