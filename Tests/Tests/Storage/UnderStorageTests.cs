using GrainFs.Storage.Metadata;
using GrainFs.Storage.UnderStorage;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Storage;

/// <summary>The same expectations of both adapters: a local folder, and a bucket on a real S3 server (moto).</summary>
public sealed class UnderStorageTests
{
    private static async Task<List<EntryRecord>> ListAll(IUnderStorage storage, string directory)
    {
        var all = new List<EntryRecord>();
        await foreach (var page in storage.ListAsync(directory))
        {
            all.AddRange(page);
        }

        return all;
    }

    private static async Task<(IUnderStorage Local, IUnderStorage S3, string Folder)> BothAsync()
    {
        var folder = TestProcess.NewFolder("us");
        Directory.CreateDirectory(Path.Combine(folder, "dir", "sub"));
        await File.WriteAllBytesAsync(Path.Combine(folder, "dir", "a.bin"), Enumerable.Range(0, 5000).Select(i => (byte)i).ToArray());
        await File.WriteAllTextAsync(Path.Combine(folder, "dir", "sub", "b.txt"), "hello");
        await File.WriteAllTextAsync(Path.Combine(folder, "top.txt"), "top");
        for (var i = 0; i < 2500; i++)
        {
            await File.WriteAllTextAsync(Path.Combine(folder, "dir", "sub", $"many{i:D4}"), "x");
        }

        var moto = await MotoServer.Shared;
        var bucket = await moto.CreateBucketAsync("us");
        await moto.UploadFolderAsync(folder, bucket, "root");
        var factory = new UnderStorageFactory(_ => null);
        var s3 = factory.Create($"s3://{bucket}/root", moto.MountOptions);
        return (new LocalUnderStorage(folder), s3, folder);
    }

    [Fact]
    public async Task Local_names_that_are_not_utf8_are_skipped_with_a_warning_never_merged_and_never_fail_the_folder()
    {
        // Two names whose bad bytes differ (.NET would show both as "a\uFFFD.bin"), a good name, and a real U+FFFD in UTF-8.
        var folder = TestProcess.NewFolder("us-names");
        var made = await TestProcess.RunAsync("python3", ["-c", @"import os,sys; d=os.fsencode(sys.argv[1]); [open(os.path.join(d, n), ""wb"").write(b""x"") for n in (b""a\xff.bin"", b""a\xfe.bin"", b""ok.bin"", ""real\ufffd.bin"".encode())]", folder]);
        Assert.True(made.ExitCode == 0, made.Stderr);
        var log = new ListLogger();
        await using var local = new LocalUnderStorage(folder, logger: log);

        var names = (await ListAll(local, string.Empty)).Select(e => e.Name).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["ok.bin", "real\uFFFD.bin"], names);
        Assert.Equal(2, log.Warnings.Count(w => w.Contains("is not UTF-8", StringComparison.Ordinal) && w.Contains(folder, StringComparison.Ordinal)));

        // What is listed reads.
        foreach (var name in names)
        {
            Assert.Equal(EntryKind.File, (await local.StatAsync(name))!.Value.Kind);
        }
    }

    [Fact]
    public async Task S3_keys_no_posix_name_can_carry_are_left_out_and_the_rest_of_the_prefix_lists()
    {
        var moto = await MotoServer.Shared;
        var bucket = await moto.CreateBucketAsync("odd");
        foreach (var key in new[] { "d/ok.bin", "d/nul\0.bin", "d/a//b.bin", "d/" + new string('x', 300), "d/a b.txt", "d/x+y.txt", "d/p%25.txt", "d/sp ace/f" })
        {
            await moto.PutAsync(bucket, key, [1, 2, 3]);
        }

        await using var s3 = new UnderStorageFactory(_ => null).Create($"s3://{bucket}", moto.MountOptions);
        var names = (await ListAll(s3, "d")).Select(e => $"{e.Name}:{e.Kind}").Order(StringComparer.Ordinal).ToList();

        // NUL (which made the whole listing unreadable: the keys now come URL-encoded and are decoded here), an empty
        // segment (a//b) and a 300-byte name are left out (".." cannot even be put through the SDK, which resolves it in
        // the URL; moto refuses a newline); spaces, '+' and '%' come back as they were put.
        Assert.Equal(["a b.txt:File", "a:Directory", "ok.bin:File", "p%25.txt:File", "sp ace:Directory", "x+y.txt:File"], names);
        Assert.Equal(EntryKind.File, (await s3.StatAsync("d/a b.txt"))!.Value.Kind);
        Assert.Equal(["f"], (await ListAll(s3, "d/sp ace")).Select(e => e.Name));
    }

    /// <summary>A logger that keeps warnings.</summary>
    private sealed class ListLogger : Microsoft.Extensions.Logging.ILogger
    {
        public List<string> Warnings { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel == Microsoft.Extensions.Logging.LogLevel.Warning)
            {
                lock (Warnings)
                {
                    Warnings.Add(formatter(state, exception));
                }
            }
        }
    }

    [Fact]
    public async Task Both_adapters_list_stat_and_read_the_same_tree()
    {
        var (local, s3, _) = await BothAsync();
        await using var l = local;
        await using var s = s3;
        foreach (var storage in new[] { local, s3 })
        {
            var root = await ListAll(storage, string.Empty);
            Assert.Equal(["dir:Directory", "top.txt:File"], root.Select(e => $"{e.Name}:{e.Kind}").Order(StringComparer.Ordinal));
            var dir = await ListAll(storage, "dir");
            Assert.Equal(["a.bin:5000", "sub:0"], dir.Select(e => $"{e.Name}:{e.Size}").Order(StringComparer.Ordinal));
            var many = await ListAll(storage, "dir/sub");
            Assert.Equal(2501, many.Count);

            var stat = await storage.StatAsync("dir/a.bin");
            Assert.Equal(EntryKind.File, stat!.Value.Kind);
            Assert.Equal(5000, stat.Value.Size);
            Assert.NotEqual(string.Empty, stat.Value.ETag);
            Assert.Equal(EntryKind.Directory, (await storage.StatAsync("dir/sub"))!.Value.Kind);
            Assert.Null(await storage.StatAsync("dir/nope"));

            var buffer = new byte[100];
            Assert.Equal(100, await storage.ReadAsync("dir/a.bin", 1000, buffer));
            Assert.Equal(Enumerable.Range(1000, 100).Select(i => (byte)i), buffer);
            Assert.Equal(50, await storage.ReadAsync("dir/a.bin", 4950, buffer));
            Assert.Equal(0, await storage.ReadAsync("dir/a.bin", 5000, buffer));

            var missing = await Assert.ThrowsAsync<UnderStorageException>(async () => await ListAll(storage, "nope"));
            Assert.Equal(UnderStorageError.NotFound, missing.Error);
            Assert.Contains("nope", missing.Message, StringComparison.Ordinal);
            var notDir = await Assert.ThrowsAsync<UnderStorageException>(async () => await ListAll(storage, "top.txt"));
            Assert.Equal(UnderStorageError.NotADirectory, notDir.Error);
        }
    }

    [Fact]
    public async Task A_missing_bucket_is_named_and_no_credential_is_printed()
    {
        var moto = await MotoServer.Shared;
        await using var storage = new UnderStorageFactory(_ => null).Create("s3://no-such-bucket-here", moto.MountOptions);
        var error = await Assert.ThrowsAsync<UnderStorageException>(async () => await storage.StatAsync(string.Empty));
        Assert.Equal(UnderStorageError.NoSuchBucket, error.Error);
        Assert.Contains("no-such-bucket-here", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(MotoServer.SecretKey, error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unreachable_endpoint_fails_after_bounded_retries_naming_the_uri()
    {
        var deadPort = Ports.Free();
        var settings = new S3Settings("bucket", "p", $"http://127.0.0.1:{deadPort}", "us-east-1", true, new Amazon.Runtime.BasicAWSCredentials("k", "very-secret"));
        await using var storage = new S3UnderStorage(settings, new RetryPolicy(3, TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(50)));
        var error = await Assert.ThrowsAsync<UnderStorageException>(async () => await storage.StatAsync("x"));
        Assert.Equal(UnderStorageError.Unreachable, error.Error);
        Assert.Contains("s3://bucket/p/x", error.Message, StringComparison.Ordinal);
        Assert.Contains($"127.0.0.1:{deadPort}", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("very-secret", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Throttling_is_retried_with_backoff_until_the_store_answers()
    {
        var moto = await MotoServer.Shared;
        var bucket = await moto.CreateBucketAsync("throttle");
        await moto.PutAsync(bucket, "k/obj", [1, 2, 3]);
        await using var proxy = new FaultProxy(moto.Endpoint, failures: 3);
        var settings = new S3Settings(bucket, "k", proxy.Endpoint, "us-east-1", true, new Amazon.Runtime.BasicAWSCredentials("k", "s"));
        await using var storage = new S3UnderStorage(settings, new RetryPolicy(5, TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(100)));
        var stat = await storage.StatAsync("obj");
        Assert.Equal(3, stat!.Value.Size);
        Assert.Equal(4, proxy.Requests);

        await using var proxy2 = new FaultProxy(moto.Endpoint, failures: 10);
        await using var impatient = new S3UnderStorage(settings with { Endpoint = proxy2.Endpoint }, new RetryPolicy(2, TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(50)));
        var error = await Assert.ThrowsAsync<UnderStorageException>(async () => await impatient.StatAsync("obj"));
        Assert.Equal(UnderStorageError.Throttled, error.Error);
        Assert.Equal(2, proxy2.Requests);
    }
}
