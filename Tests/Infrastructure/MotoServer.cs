using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;

namespace GrainFs.Tests.Infrastructure;

/// <summary>
/// moto's S3-compatible server (Python, on the machine) on a free loopback port: the slow object store
/// GrainFS sits in front of, and the closer copy of AWS's API. One is shared by a test run; a test that stops
/// the server starts its own; the cache benchmark starts one.
/// </summary>
public sealed class MotoServer : IAsyncDisposable
{
    /// <summary>The access key the tests use (moto accepts any).</summary>
    public const string AccessKey = "testing";

    /// <summary>The secret the tests use.</summary>
    public const string SecretKey = "testing-secret";

    private readonly TestProcess _process;

    private MotoServer(TestProcess process, int port)
    {
        _process = process;
        Port = port;
        Endpoint = $"http://127.0.0.1:{port}";
    }

    /// <summary>The port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>The endpoint URL.</summary>
    public string Endpoint { get; }

    /// <summary>The server's log (each request is a line).</summary>
    public string Log => _process.Output;

    /// <summary>The shared server of this run.</summary>
    public static Task<MotoServer> Shared => LazyShared.Value;

    private static readonly Lazy<Task<MotoServer>> LazyShared = new(() => StartAsync());

    /// <summary>A shared server that checks credentials from its first request on (moto's IAM emulation), so every key the tests know is refused.</summary>
    public static Task<MotoServer> Authenticating => LazyAuthenticating.Value;

    private static readonly Lazy<Task<MotoServer>> LazyAuthenticating = new(() => StartAsync(environment: new Dictionary<string, string?> { ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0" }));

    /// <summary>Starts a private server (on <paramref name="port"/> when given, to restart one).</summary>
    public static async Task<MotoServer> StartAsync(int? port = null, IReadOnlyDictionary<string, string?>? environment = null, CancellationToken cancellationToken = default)
    {
        var chosen = port ?? Ports.Free();
        var process = TestProcess.Start("python3", ["-m", "moto.server", "-H", "127.0.0.1", "-p", chosen.ToString(System.Globalization.CultureInfo.InvariantCulture)], environment);
        try
        {
            // Werkzeug prints this once the socket listens, before it serves the first request.
            await process.WaitForOutputAsync($"Running on http://127.0.0.1:{chosen}", TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await process.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return new MotoServer(process, chosen);
    }

    /// <summary>Stops the server (its data is lost: moto keeps it in memory).</summary>
    public async Task StopAsync() => await _process.DisposeAsync().ConfigureAwait(false);

    /// <summary>The environment a silo needs to reach this server with the standard AWS variables.</summary>
    public IReadOnlyDictionary<string, string?> Environment => new Dictionary<string, string?>
    {
        ["AWS_ACCESS_KEY_ID"] = AccessKey,
        ["AWS_SECRET_ACCESS_KEY"] = SecretKey,
        ["AWS_REGION"] = "us-east-1",
        ["AWS_ENDPOINT_URL_S3"] = Endpoint,
    };

    /// <summary>Mount options naming this server explicitly (for silos without the AWS environment).</summary>
    public IReadOnlyDictionary<string, string> MountOptions => new Dictionary<string, string>
    {
        ["endpoint"] = Endpoint,
        ["access-key"] = AccessKey,
        ["secret-key"] = SecretKey,
    };

    /// <summary>An S3 client for this server.</summary>
    public AmazonS3Client Client() => new(new BasicAWSCredentials(AccessKey, SecretKey), new AmazonS3Config
    {
        ServiceURL = Endpoint,
        ForcePathStyle = true,
        AuthenticationRegion = "us-east-1",
        RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
        ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
    });

    /// <summary>Creates a bucket with a unique name starting with <paramref name="prefix"/>.</summary>
    public async Task<string> CreateBucketAsync(string prefix)
    {
        var name = $"{prefix}-{Guid.NewGuid().ToString("N")[..8]}".ToLowerInvariant();
        using var client = Client();
        await client.PutBucketAsync(new PutBucketRequest { BucketName = name }).ConfigureAwait(false);
        return name;
    }

    /// <summary>Uploads bytes.</summary>
    public async Task PutAsync(string bucket, string key, byte[] data)
    {
        using var client = Client();
        using var stream = new MemoryStream(data);
        await client.PutObjectAsync(new PutObjectRequest { BucketName = bucket, Key = key, InputStream = stream }).ConfigureAwait(false);
    }

    /// <summary>Uploads every file under <paramref name="folder"/> to <paramref name="bucket"/>/<paramref name="prefix"/>.</summary>
    public async Task UploadFolderAsync(string folder, string bucket, string prefix)
    {
        using var client = Client();
        foreach (var file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
        {
            var key = prefix.TrimEnd('/') + "/" + Path.GetRelativePath(folder, file).Replace(Path.DirectorySeparatorChar, '/');
            await client.PutObjectAsync(new PutObjectRequest { BucketName = bucket, Key = key.TrimStart('/'), FilePath = file }).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _process.DisposeAsync();
}
