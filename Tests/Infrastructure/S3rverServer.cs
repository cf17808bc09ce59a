using System.Globalization;
using Amazon.Runtime;
using Amazon.S3;

namespace GrainFs.Tests.Infrastructure;

/// <summary>
/// s3rver (Node, from npm; infra/bench/run.sh installs it) on a free loopback port, keeping its objects in a folder.
/// Unlike moto it serves a ranged GET without reading the whole object, so the comparison harness uses it where
/// large-file range reads matter.
/// </summary>
public sealed class S3rverServer : IAsyncDisposable
{
    /// <summary>s3rver's fixed access key and secret.</summary>
    public const string Key = "S3RVER";

    private S3rverServer(TestProcess process, int port, string bucket)
    {
        Process = process;
        Endpoint = $"http://127.0.0.1:{port}";
        Bucket = bucket;
    }

    /// <summary>The server's process.</summary>
    public TestProcess Process { get; }

    /// <summary>The name the harness's results give the object store.</summary>
    public string Name => "s3rver";

    /// <summary>The endpoint URL.</summary>
    public string Endpoint { get; }

    /// <summary>The bucket created at start.</summary>
    public string Bucket { get; }

    /// <summary>The access key (s3rver accepts only its own).</summary>
    public string AccessKey => Key;

    /// <summary>The secret key.</summary>
    public string SecretKey => Key;

    /// <summary>
    /// Starts s3rver from <paramref name="s3rverJs"/> (its bin/s3rver.js) with <paramref name="bucket"/>, keeping objects
    /// under <paramref name="folder"/>, and waits for its "listening" line (printed once the bucket exists and the
    /// socket listens); fails with its output if it exits first.
    /// </summary>
    /// <param name="s3rverJs">s3rver's bin/s3rver.js.</param>
    /// <param name="folder">Where it keeps the objects (they outlive the process: a restart on the same folder serves them again).</param>
    /// <param name="bucket">The bucket it makes.</param>
    /// <param name="logFile">A file its output is appended to.</param>
    /// <param name="port">The port (null: a free one), to start it again where its clients expect it.</param>
    /// <param name="cancellationToken">Stops the wait.</param>
    public static async Task<S3rverServer> StartAsync(string s3rverJs, string folder, string bucket, string? logFile = null, CancellationToken cancellationToken = default, int? port = null)
    {
        if (!File.Exists(s3rverJs))
        {
            throw new FileNotFoundException($"s3rver is not installed at {s3rverJs} (infra/bench/run.sh installs it with npm)", s3rverJs);
        }

        Directory.CreateDirectory(folder);
        port ??= Ports.Free();
        // s3rver 3.7 hashes listings in a way OpenSSL 3 (Node 18+) refuses unless the legacy provider is enabled.
        var process = TestProcess.Start(
            "node",
            [s3rverJs, "-d", folder, "-a", "127.0.0.1", "-p", port.Value.ToString(CultureInfo.InvariantCulture), "--configure-bucket", bucket, "--silent"],
            new Dictionary<string, string?> { ["NODE_OPTIONS"] = "--openssl-legacy-provider" },
            options: new TestProcessOptions { LogFile = logFile });
        try
        {
            // --silent quiets the request log, not this line of bin/s3rver.js.
            await process.WaitForOutputAsync($"S3rver listening on 127.0.0.1:{port}", TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await process.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return new S3rverServer(process, port.Value, bucket);
    }

    /// <summary>An S3 client for this server (path-style, at most three retries).</summary>
    public AmazonS3Client Client() => new(new BasicAWSCredentials(AccessKey, SecretKey), new AmazonS3Config
    {
        ServiceURL = Endpoint,
        ForcePathStyle = true,
        AuthenticationRegion = "us-east-1",
        MaxErrorRetry = 3,
        RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
        ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
    });

    /// <summary>Stops the server (its objects stay in the folder).</summary>
    public ValueTask DisposeAsync() => Process.DisposeAsync();
}
