using System.Security.Cryptography;
using GrainFs.Storage.Metadata;
using GrainFs.Storage.UnderStorage;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Tests.Storage;

/// <summary>
/// The contract every under-storage adapter keeps, read side and write side; run against a local folder and a
/// bucket on a real S3 server (moto) by the subclasses below. What an adapter cannot do natively it declares in
/// <see cref="IUnderStorage.Capabilities"/>, and the contract holds it to that declaration.
/// </summary>
public abstract class UnderStorageContract
{
    /// <summary>Part size of the stores under test: small, so multipart uploads happen with a few MiB.</summary>
    protected const long PartSize = 5L << 20;

    /// <summary>A store over a new, empty root.</summary>
    protected abstract Task<IUnderStorage> CreateAsync();

    /// <summary>Runs one operation against a store that refuses this caller; returns the error kind and message (or "ok").</summary>
    protected abstract Task<(string Outcome, string Message)> DeniedAsync(string operation);

    /// <summary>A store whose endpoint or root cannot be reached, and the error kind that says so.</summary>
    protected abstract Task<(IUnderStorage Storage, UnderStorageError Expected, string Named)> UnreachableAsync();

    private static byte[] Bytes(int count, int seed)
    {
        var data = new byte[count];
        new Random(seed).NextBytes(data);
        return data;
    }

    private static async Task<List<EntryRecord>> ListAll(IUnderStorage storage, string directory)
    {
        var all = new List<EntryRecord>();
        await foreach (var page in storage.ListAsync(directory))
        {
            all.AddRange(page);
        }

        return all;
    }

    private static async Task<byte[]> ReadAll(IUnderStorage storage, string path, long size)
    {
        var data = new byte[size];
        var read = await storage.ReadAsync(path, 0, data);
        Assert.Equal(size, read);
        return data;
    }

    [Fact]
    public async Task Put_files_are_listed_in_pages_stated_and_read_by_range()
    {
        await using var storage = await CreateAsync();
        var blob = Bytes(300_000, 1);
        await storage.PutAsync("blob.bin", new MemoryStream(blob), blob.Length);
        await storage.MakeDirectoryAsync("many");
        await Parallel.ForEachAsync(Enumerable.Range(0, 1_050), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, ct) =>
            await storage.PutAsync($"many/f{i:D4}", new MemoryStream([(byte)i]), 1, ct));

        var root = await ListAll(storage, string.Empty);
        Assert.Equal(["blob.bin:File:300000", "many:Directory:0"], root.Select(e => $"{e.Name}:{e.Kind}:{e.Size}").Order(StringComparer.Ordinal));
        var many = await ListAll(storage, "many");
        Assert.Equal(1_050, many.Count);
        Assert.Equal(1_050, many.Select(e => e.Name).Distinct().Count());

        var stat = await storage.StatAsync("blob.bin");
        Assert.Equal(EntryKind.File, stat!.Value.Kind);
        Assert.Equal(300_000, stat.Value.Size);
        Assert.NotEqual(string.Empty, stat.Value.ETag);
        Assert.Equal(EntryKind.Directory, (await storage.StatAsync("many"))!.Value.Kind);

        var range = new byte[1000];
        Assert.Equal(1000, await storage.ReadAsync("blob.bin", 123_456, range));
        Assert.Equal(blob.AsSpan(123_456, 1000).ToArray(), range);
        Assert.Equal(500, await storage.ReadAsync("blob.bin", 299_500, range));
        await using var stream = await storage.OpenReadAsync("blob.bin", 1_000, 2_000, stat.Value.ETag);
        var streamed = new MemoryStream();
        await stream.CopyToAsync(streamed);
        Assert.Equal(blob.AsSpan(1_000, 2_000).ToArray(), streamed.ToArray());
    }

    [Fact]
    public async Task A_rewritten_file_has_a_new_etag_and_a_read_of_the_old_version_is_refused()
    {
        await using var storage = await CreateAsync();
        var v1 = await storage.PutAsync("f", new MemoryStream(Bytes(4096, 1)), 4096);
        var v2 = await storage.PutAsync("f", new MemoryStream(Bytes(4096, 2)), 4096);
        Assert.NotEqual(v1.ETag, v2.ETag);
        Assert.Equal(v2.ETag, (await storage.StatAsync("f"))!.Value.ETag);
        Assert.Equal(Bytes(4096, 2), await ReadAll(storage, "f", 4096));

        var changed = await Assert.ThrowsAsync<UnderStorageException>(async () => await storage.OpenReadAsync("f", 0, 4096, v1.ETag));
        Assert.Equal(UnderStorageError.Changed, changed.Error);
        await using var current = await storage.OpenReadAsync("f", 0, 4096, v2.ETag);
        Assert.NotNull(current);
    }

    [Fact]
    public async Task A_put_streams_content_of_unknown_length_and_refuses_a_wrong_declared_length()
    {
        await using var storage = await CreateAsync();
        var data = Bytes(777_777, 3);
        var entry = await storage.PutAsync("unknown", new ForwardOnlyStream(data), length: null);
        Assert.Equal(data.Length, entry.Size);
        Assert.Equal(data, await ReadAll(storage, "unknown", data.Length));

        var wrong = await Assert.ThrowsAsync<UnderStorageException>(async () => await storage.PutAsync("wrong", new ForwardOnlyStream(data), length: 1000));
        Assert.Equal(UnderStorageError.InvalidArgument, wrong.Error);
        Assert.Contains("wrong", wrong.Message, StringComparison.Ordinal);
        Assert.Null(await storage.StatAsync("wrong"));
    }

    [Fact]
    public async Task A_large_put_goes_up_in_parts_and_a_failed_one_leaves_nothing()
    {
        await using var storage = await CreateAsync();
        var data = Bytes((int)(PartSize * 2) + 1_234_567, 4);
        var entry = await storage.PutAsync("big", new ForwardOnlyStream(data), data.Length);
        Assert.Equal(data.Length, entry.Size);
        if (storage.Capabilities.HasFlag(UnderStorageCapabilities.Multipart))
        {
            // An S3 multipart ETag is the hash of the part hashes, then "-" and the part count.
            Assert.EndsWith("-3", entry.ETag, StringComparison.Ordinal);
        }

        Assert.Equal(SHA256.HashData(data), SHA256.HashData(await ReadAll(storage, "big", data.Length)));

        var failing = new ForwardOnlyStream(data, failAfter: (int)PartSize + 100_000);
        await Assert.ThrowsAsync<IOException>(async () => await storage.PutAsync("half", failing, data.Length));
        Assert.Null(await storage.StatAsync("half"));
        Assert.DoesNotContain(await ListAll(storage, string.Empty), e => e.Name != "big");
    }

    [Fact]
    public async Task Delete_removes_a_file_and_deleting_again_is_not_an_error()
    {
        await using var storage = await CreateAsync();
        await storage.PutAsync("gone", new MemoryStream([1, 2, 3]), 3);
        await storage.PutAsync("kept", new MemoryStream([4]), 1);
        await storage.DeleteAsync("gone");
        Assert.Null(await storage.StatAsync("gone"));
        Assert.Equal(["kept"], (await ListAll(storage, string.Empty)).Select(e => e.Name));
        await storage.DeleteAsync("gone");
        var missing = await Assert.ThrowsAsync<UnderStorageException>(async () => await storage.ReadAsync("gone", 0, new byte[1]));
        Assert.Equal(UnderStorageError.NotFound, missing.Error);
    }

    [Fact]
    public async Task Copy_makes_an_independent_file_with_the_same_bytes()
    {
        await using var storage = await CreateAsync();
        var data = Bytes(65_537, 5);
        await storage.PutAsync("a", new MemoryStream(data), data.Length);
        var copy = await storage.CopyAsync("a", "b");
        Assert.Equal(data.Length, copy.Size);
        Assert.Equal(data, await ReadAll(storage, "b", data.Length));
        await storage.DeleteAsync("a");
        Assert.Equal(data, await ReadAll(storage, "b", data.Length));
        var missing = await Assert.ThrowsAsync<UnderStorageException>(async () => await storage.CopyAsync("a", "c"));
        Assert.Equal(UnderStorageError.NotFound, missing.Error);
    }

    [Fact]
    public async Task Rename_is_atomic_where_declared_and_refused_as_not_supported_elsewhere()
    {
        await using var storage = await CreateAsync();
        var data = Bytes(10_000, 6);
        await storage.PutAsync("old", new MemoryStream(data), data.Length);
        await storage.PutAsync("target", new MemoryStream([9]), 1);
        if (!storage.Capabilities.HasFlag(UnderStorageCapabilities.AtomicRename))
        {
            var refused = await Assert.ThrowsAsync<UnderStorageException>(async () => await storage.RenameAsync("old", "target"));
            Assert.Equal(UnderStorageError.NotSupported, refused.Error);
            Assert.Equal(data, await ReadAll(storage, "old", data.Length));
            return;
        }

        var renamed = await storage.RenameAsync("old", "target");
        Assert.Equal(data.Length, renamed.Size);
        Assert.Null(await storage.StatAsync("old"));
        Assert.Equal(data, await ReadAll(storage, "target", data.Length));
        if (storage.Capabilities.HasFlag(UnderStorageCapabilities.DirectoryRename))
        {
            await storage.MakeDirectoryAsync("d1");
            await storage.PutAsync("d1/x", new MemoryStream([1]), 1);
            await storage.RenameAsync("d1", "d2");
            Assert.Null(await storage.StatAsync("d1"));
            Assert.Equal(1, (await storage.StatAsync("d2/x"))!.Value.Size);
        }
    }

    [Fact]
    public async Task Directories_are_made_listed_empty_and_removed_only_when_empty()
    {
        await using var storage = await CreateAsync();
        await storage.MakeDirectoryAsync("empty");
        Assert.Equal(EntryKind.Directory, (await storage.StatAsync("empty"))!.Value.Kind);
        Assert.Equal(["empty:Directory"], (await ListAll(storage, string.Empty)).Select(e => $"{e.Name}:{e.Kind}"));
        Assert.Empty(await ListAll(storage, "empty"));
        var again = await Assert.ThrowsAsync<UnderStorageException>(async () => await storage.MakeDirectoryAsync("empty"));
        Assert.Equal(UnderStorageError.AlreadyExists, again.Error);

        await storage.PutAsync("empty/file", new MemoryStream([1]), 1);
        var notEmpty = await Assert.ThrowsAsync<UnderStorageException>(async () => await storage.RemoveDirectoryAsync("empty"));
        Assert.Equal(UnderStorageError.NotEmpty, notEmpty.Error);
        var notDirectory = await Assert.ThrowsAsync<UnderStorageException>(async () => await storage.RemoveDirectoryAsync("empty/file"));
        Assert.Equal(UnderStorageError.NotADirectory, notDirectory.Error);

        await storage.DeleteAsync("empty/file");
        await storage.RemoveDirectoryAsync("empty");
        Assert.Null(await storage.StatAsync("empty"));
        Assert.Empty(await ListAll(storage, string.Empty));
    }

    [Fact]
    public async Task Missing_paths_are_not_found_everywhere_and_the_message_names_them()
    {
        await using var storage = await CreateAsync();
        await storage.PutAsync("file", new MemoryStream([1]), 1);
        Assert.Null(await storage.StatAsync("nope"));
        Assert.Null(await storage.StatAsync("nope/deeper"));
        foreach (var attempt in new Func<Task>[]
        {
            async () => await storage.ReadAsync("nope", 0, new byte[4]),
            async () => await storage.OpenReadAsync("nope", 0, 4, null),
            async () => await ListAll(storage, "nope"),
            async () => await storage.RemoveDirectoryAsync("nope"),
        })
        {
            var error = await Assert.ThrowsAsync<UnderStorageException>(attempt);
            Assert.Equal(UnderStorageError.NotFound, error.Error);
            Assert.Contains("nope", error.Message, StringComparison.Ordinal);
        }

        var notDirectory = await Assert.ThrowsAsync<UnderStorageException>(async () => await ListAll(storage, "file"));
        Assert.Equal(UnderStorageError.NotADirectory, notDirectory.Error);
    }

    [Theory]
    [InlineData("list")]
    [InlineData("read")]
    [InlineData("put")]
    public async Task A_store_that_refuses_the_caller_is_access_denied(string operation)
    {
        var (outcome, message) = await DeniedAsync(operation);
        Assert.Equal(nameof(UnderStorageError.AccessDenied), outcome);
        Assert.Contains("denied", message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(MotoServer.SecretKey, message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_store_that_cannot_be_reached_fails_naming_where()
    {
        var (storage, expected, named) = await UnreachableAsync();
        await using (storage)
        {
            foreach (var attempt in new Func<Task>[]
            {
                async () => await ListAll(storage, string.Empty),
                async () => await storage.PutAsync("x", new MemoryStream([1]), 1),
            })
            {
                var error = await Assert.ThrowsAsync<UnderStorageException>(attempt);
                Assert.Equal(expected, error.Error);
                Assert.Contains(named, error.Message, StringComparison.Ordinal);
            }
        }
    }

    /// <summary>A stream that can only be read forward (no length, no seek), as a pipe or a network body; optionally fails part-way.</summary>
    private sealed class ForwardOnlyStream(byte[] data, int failAfter = int.MaxValue) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_position >= failAfter)
            {
                throw new IOException("the source failed part-way");
            }

            // Short reads, as a socket gives.
            var count = Math.Min(Math.Min(buffer.Length, 100_000), Math.Min(data.Length, failAfter) - _position);
            data.AsSpan(_position, count).CopyTo(buffer);
            _position += count;
            return count;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

/// <summary>The contract on a local folder; access is denied by running the operation as another user.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class LocalUnderStorageContractTests : UnderStorageContract
{
    protected override Task<IUnderStorage> CreateAsync() =>
        Task.FromResult<IUnderStorage>(new UnderStorageFactory(_ => null).Create("file://" + TestProcess.NewFolder("contract"), new Dictionary<string, string>()));

    protected override async Task<(string Outcome, string Message)> DeniedAsync(string operation)
    {
        var folder = TestProcess.NewFolder("denied");
        await File.WriteAllBytesAsync(Path.Combine(folder, "file"), [1, 2, 3]);
        string[] command = ["dotnet", Repo.ProbeDll, "understorage", "file://" + folder, operation, operation == "list" ? string.Empty : "file"];
        if (Environment.UserName == "root")
        {
            // Root reads everything: the folder is root's, mode 0700, and the probe runs as nobody.
            File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", .. command];
        }
        else
        {
            // The folder is ours: no permission bits at all.
            File.SetUnixFileMode(folder, UnixFileMode.None);
        }

        var home = TestProcess.NewFolder("probe-home");
        File.SetUnixFileMode(home, (UnixFileMode)0x1FF);
        var (code, stdout, stderr) = await TestProcess.RunAsync(command[0], command[1..], new Dictionary<string, string?> { ["HOME"] = home, ["DOTNET_NOLOGO"] = "1" });
        Assert.True(code == 0, $"probe exited {code}: {stdout}{stderr}");
        var line = stdout.Trim();
        if (!line.StartsWith("error ", StringComparison.Ordinal))
        {
            return (line, line);
        }

        var colon = line.IndexOf(':', StringComparison.Ordinal);
        return (line[6..colon], line[(colon + 1)..]);
    }

    protected override Task<(IUnderStorage Storage, UnderStorageError Expected, string Named)> UnreachableAsync()
    {
        // A folder store is unreachable when its root is gone (an unmounted NFS export, a removed disk).
        var folder = TestProcess.NewFolder("vanished");
        Directory.Delete(folder);
        IUnderStorage storage = new UnderStorageFactory(_ => null).Create("file://" + folder, new Dictionary<string, string>());
        return Task.FromResult((storage, UnderStorageError.NotFound, folder));
    }
}

/// <summary>The contract on a bucket of moto's S3 server; access is denied by a moto that checks credentials.</summary>
public sealed class S3UnderStorageContractTests : UnderStorageContract
{
    private static Dictionary<string, string> Options(MotoServer moto) => new(moto.MountOptions) { ["part-size"] = PartSize.ToString(System.Globalization.CultureInfo.InvariantCulture) };

    protected override async Task<IUnderStorage> CreateAsync()
    {
        var moto = await MotoServer.Shared;
        var bucket = await moto.CreateBucketAsync("contract");
        return new UnderStorageFactory(_ => null).Create($"s3://{bucket}/root", Options(moto));
    }

    protected override async Task<(string Outcome, string Message)> DeniedAsync(string operation)
    {
        var moto = await MotoServer.Authenticating;
        await using var storage = new UnderStorageFactory(_ => null).Create("s3://some-bucket/p", Options(moto));
        try
        {
            switch (operation)
            {
                case "list":
                    await foreach (var page in storage.ListAsync(string.Empty))
                    {
                        _ = page.Count;
                    }

                    break;
                case "read":
                    await storage.ReadAsync("file", 0, new byte[4]);
                    break;
                default:
                    await storage.PutAsync("file", new MemoryStream([1, 2, 3]), 3);
                    break;
            }

            return ("ok", "ok");
        }
        catch (UnderStorageException e)
        {
            return (e.Error.ToString(), e.ToString());
        }
    }

    protected override Task<(IUnderStorage Storage, UnderStorageError Expected, string Named)> UnreachableAsync()
    {
        var port = Ports.Free();
        var settings = new S3Settings("bucket", "p", $"http://127.0.0.1:{port}", "us-east-1", true, new Amazon.Runtime.BasicAWSCredentials("k", "s"), PartSize);
        IUnderStorage storage = new S3UnderStorage(settings, new RetryPolicy(2, TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(20)));
        return Task.FromResult((storage, UnderStorageError.Unreachable, $"127.0.0.1:{port}"));
    }
}
