using System.Globalization;
using System.Text;
using CsCheck;
using GrainFs.Client;
using GrainFs.Tests.Infrastructure;
using Xunit.Sdk;

namespace GrainFs.Tests.Cluster;

/// <summary>
/// Random sequences of create/write/close, mkdir, rename, unlink and rmdir over a small name space (a, b, c up to three
/// deep, so names collide), run against a fresh mount and against <see cref="NamespaceModel"/>. After every step the
/// status GrainFS returns is the model's errno, and what a client without a metadata cache sees (every stat in the name
/// space, the whole tree listed and every file read back) is the model's tree; the client that made the changes must
/// see the same through its own cache. With files written CACHE_THROUGH, each is in under-storage at close, and the
/// folder or bucket itself must hold the model's tree too; with every write type mixed, GrainFS's view must.
/// </summary>
public sealed class NamespaceModelTests(ClusterFixture fixture) : IClassFixture<ClusterFixture>
{
    /// <summary>Sequences per test: 20, or CsCheck_Iter for a longer run (with CsCheck_Seed to replay one).</summary>
    private static readonly long Count = long.TryParse(Environment.GetEnvironmentVariable("CsCheck_Iter"), CultureInfo.InvariantCulture, out var iter) && iter > 0 ? iter : 20;

    private const int MaxOps = 15;
    private static readonly string[] Names = ["a", "b", "c"];

    /// <summary>Every path of the name space: a … c/c/c.</summary>
    private static readonly string[] AllPaths =
        [.. Names, .. Names.SelectMany(x => Names.Select(y => $"{x}/{y}")), .. Names.SelectMany(x => Names.SelectMany(y => Names.Select(z => $"{x}/{y}/{z}")))];

    private static readonly Gen<string> PathGen = Gen.Int[1, 3].SelectMany(depth => Gen.OneOf(Names).Array[depth]).Select(parts => string.Join('/', parts));

    private static readonly Gen<NamespaceOp[]> ThroughSequences = Sequences(Gen.Const(WriteType.CacheThrough));

    private static readonly Gen<NamespaceOp[]> MixedSequences =
        Sequences(Gen.OneOf(Gen.Const(WriteType.CacheThrough), Gen.Const(WriteType.Through), Gen.Const(WriteType.AsyncThrough), Gen.Const(WriteType.MustCache)));

    private static readonly Gen<NamespaceOp[]> CacheOnlySequences = Sequences(Gen.Const(WriteType.MustCache));

    private static Gen<NamespaceOp[]> Sequences(Gen<WriteType> types) => Gen.Frequency(
        (4, Gen.Select(PathGen, Gen.Byte.Array[0, 8], Gen.Int[0, 3], types, (path, data, excl, type) => (NamespaceOp)new NamespaceOp.Write(path, data, excl == 0, type))),
        (3, PathGen.Select(path => (NamespaceOp)new NamespaceOp.MakeDirectory(path))),
        (4, Gen.Select(PathGen, PathGen, Gen.Int[0, 4], (from, to, flag) => (NamespaceOp)new NamespaceOp.Rename(from, to, flag == 0))),
        (2, PathGen.Select(path => (NamespaceOp)new NamespaceOp.Unlink(path))),
        (2, PathGen.Select(path => (NamespaceOp)new NamespaceOp.RemoveDirectory(path)))).Array[1, MaxOps];

    [Fact]
    public Task Random_namespace_operations_on_a_folder_mount_match_the_model_in_GrainFS_and_in_the_folder() =>
        ThroughSequences.SampleAsync(ops => RunAsync(Backend.Folder, ops), iter: Count, threads: 1, print: Print);

    [Fact]
    public Task Random_namespace_operations_with_every_write_type_on_a_folder_mount_match_the_model() =>
        MixedSequences.SampleAsync(ops => RunAsync(Backend.Folder, ops), iter: Count, threads: 1, print: Print);

    [Fact]
    public Task Random_namespace_operations_on_an_S3_mount_match_the_model_in_GrainFS_and_in_the_bucket_with_directory_renames_refused() =>
        ThroughSequences.SampleAsync(ops => RunAsync(Backend.S3, ops), iter: Count, threads: 1, print: Print);

    [Fact]
    public Task Random_namespace_operations_with_every_write_type_on_an_S3_mount_match_the_model() =>
        MixedSequences.SampleAsync(ops => RunAsync(Backend.S3, ops), iter: Count, threads: 1, print: Print);

    [Fact]
    public Task Random_namespace_operations_on_a_MUST_CACHE_S3_mount_match_the_model_with_directory_renames_and_leave_the_bucket_empty() =>
        CacheOnlySequences.SampleAsync(ops => RunAsync(Backend.S3CacheOnly, ops), iter: Count, threads: 1, print: Print);

    /// <summary>Sequences the model caught GrainFS failing (the random ones change with the generators), with the backend they need.</summary>
    public static TheoryData<string, string> Caught => new()
    {
        // A directory grain's "missing" answer outlived a file made at its path: ENOENT where a path through a file is ENOTDIR.
        { "S3", "write b [D45771] exclusive" },
        { "Folder", "unlink b/c/a; write b [01]" },
        // rmdir left the grain of "a" believing in itself: a create inside succeeded.
        { "S3", "mkdir a; rmdir a; write a/f [01]" },
        { "S3", "mkdir a; rmdir a; mkdir a/b" },
        // A renamed directory's grains served its files at the old path, and a stale "missing" hid one at the new path.
        { "Folder", "mkdir a; mkdir a/b; write a/b/c [02]; rename a c; mkdir a" },
        { "Folder", "unlink b/a/c; mkdir a; mkdir a/a; write a/a/c [03]; rename a b" },
        // rename(2) resolves the target's parent before it looks at the source or the ancestry.
        { "Folder", "mkdir a; rename a a/a/b" },
        { "S3", "write b []; mkdir c; write c/b []; rename a b/a/c" },
        // The target as an ancestor of the source is ENOTEMPTY; O_EXCL on a directory is EEXIST; RENAME_NOREPLACE onto itself is EEXIST.
        { "Folder", "mkdir a; write a/b [04]; rename a/b a" },
        { "S3", "mkdir a; write a [05] exclusive" },
        { "Folder", "mkdir a; rename a a noreplace" },
        // Files not yet persisted under a renamed directory stayed behind with the old path's grain; their uploads went there too.
        { "Folder", "mkdir a; write a/b [06] MUST_CACHE; write a/c [07] ASYNC_THROUGH; rename a c" },
        { "S3CacheOnly", "mkdir a; mkdir a/b; write a/b/c [08] MUST_CACHE; rename a c" },
        // A persisted version replaced by one not persisted came back from under-storage once the newer one was removed or moved.
        { "Folder", "write a [01]; write a [02] MUST_CACHE; unlink a" },
        { "S3", "write a [01]; write a [02] MUST_CACHE; rename a b" },
        { "Folder", "mkdir c; write c/a [01]; write c/a [02] MUST_CACHE; unlink c/a; rename c b" },
    };

    [Theory]
    [MemberData(nameof(Caught))]
    public Task A_sequence_the_model_once_caught_matches_it(string backend, string sequence) =>
        RunAsync(Enum.Parse<Backend>(backend), [.. sequence.Split("; ").Select(Parse)]);

    /// <summary>The operation <see cref="NamespaceOp"/>'s ToString prints.</summary>
    private static NamespaceOp Parse(string text)
    {
        var words = text.Split(' ');
        return words[0] switch
        {
            "write" => new NamespaceOp.Write(words[1], Convert.FromHexString(words[2].Trim('[', ']')), words.Contains("exclusive"),
                words.Skip(3).Select(w => WriteTypes.TryParse(w, out var type) ? type : (WriteType?)null).LastOrDefault(t => t is not null) ?? WriteType.CacheThrough),
            "mkdir" => new NamespaceOp.MakeDirectory(words[1]),
            "rename" => new NamespaceOp.Rename(words[1], words[2], words.Contains("noreplace")),
            "unlink" => new NamespaceOp.Unlink(words[1]),
            "rmdir" => new NamespaceOp.RemoveDirectory(words[1]),
            _ => throw new ArgumentException($"not an operation: {text}", nameof(text)),
        };
    }

    private enum Backend
    {
        Folder,
        S3,

        /// <summary>An S3 bucket mounted with write-type MUST_CACHE.</summary>
        S3CacheOnly,
    }

    private static string Print(NamespaceOp[] ops) => "\n" + string.Join('\n', ops.Select((op, i) => string.Create(CultureInfo.InvariantCulture, $"  {i + 1}. {op}")));

    private async Task RunAsync(Backend backend, NamespaceOp[] ops)
    {
        // The writer keeps a metadata cache (and must invalidate it on its own writes); the checker has none.
        await using var writer = fixture.NewClient(cache: true);
        await using var checker = fixture.NewClient(cache: false);
        var mount = $"/model-{backend.ToString().ToLowerInvariant()}-{Guid.NewGuid().ToString("N")[..6]}";
        var location = backend == Backend.Folder ? TestProcess.NewFolder("model") : await fixture.Moto.CreateBucketAsync("model");
        var uri = backend == Backend.Folder ? "file://" + location : $"s3://{location}";
        var persistedAtClose = backend != Backend.S3CacheOnly && ops.All(op => op is not NamespaceOp.Write { Type: not (WriteType.CacheThrough or WriteType.Through) });
        var options = backend == Backend.Folder ? new Dictionary<string, string>() : new Dictionary<string, string>(fixture.Moto.MountOptions);
        if (backend == Backend.S3CacheOnly)
        {
            // Directories too live only in GrainFS, so they rename on S3.
            options["write-type"] = "MUST_CACHE";
        }

        var mounted = await writer.MountAsync(mount, uri, options);
        Assert.True(mounted.IsOk, mounted.Message);
        var model = new NamespaceModel(directoryRenames: backend != Backend.S3);
        var log = new StringBuilder();
        try
        {
            for (var i = 0; i < ops.Length; i++)
            {
                var op = ops[i];
                var expected = model.Apply(op);
                var (actual, message) = await ApplyAsync(writer, mount, op);
                log.Append(CultureInfo.InvariantCulture, $"  {i + 1}. {op}: {actual.ErrnoName()}");
                if (actual != expected)
                {
                    log.Append($" but the model says {expected.ErrnoName()} ({message})\n");
                    throw Mismatch(log, model, "status");
                }

                log.Append('\n');
                var differences = new List<string>();
                await CompareStatsAsync(checker, "uncached client", mount, model, differences);
                await CompareStatsAsync(writer, "writing client", mount, model, differences);
                await CompareTreeAsync(checker, mount, model, differences);
                if (persistedAtClose)
                {
                    var stored = backend == Backend.Folder ? FolderTree(location) : await BucketTreeAsync(location);
                    CompareTrees(backend == Backend.Folder ? "in the folder" : "in the bucket", stored, model, differences);
                }

                if (differences.Count > 0)
                {
                    log.Append(string.Join('\n', differences.Select(d => "     " + d))).Append('\n');
                    throw Mismatch(log, model, "namespace");
                }
            }


            if (!persistedAtClose)
            {
                await CompareStoredAfterUploadsAsync(backend, writer, mount, location, model, log);
            }
        }
        finally
        {
            await writer.UnmountAsync(mount);
        }
    }

    /// <summary>At the end of a sequence with every write type: once the ASYNC_THROUGH uploads are done (at the paths their files
    /// have now), under-storage holds every directory and every file not written MUST_CACHE, and nothing else.</summary>
    private async Task CompareStoredAfterUploadsAsync(Backend backend, GrainFsClient client, string mount, string location, NamespaceModel model, StringBuilder log)
    {
        var differences = new List<string>();
        foreach (var (path, type) in model.WriteTypes)
        {
            if (type == WriteType.AsyncThrough)
            {
                var persisted = await client.PersistAsync(Full(mount, path), TimeSpan.FromSeconds(30));
                if (!persisted.IsOk)
                {
                    differences.Add($"persist {path}: {persisted.Status.ErrnoName()} {persisted.Message}");
                }
            }
        }

        var stored = backend == Backend.Folder ? FolderTree(location) : await BucketTreeAsync(location);
        var cacheOnly = model.WriteTypes.Where(t => t.Value == WriteType.MustCache).Select(t => t.Key).ToHashSet(StringComparer.Ordinal);
        foreach (var path in cacheOnly)
        {
            stored.Remove(path);
        }

        var expected = new NamespaceModel(directoryRenames: true);
        foreach (var (path, data) in model.Entries.Where(e => !cacheOnly.Contains(e.Key) && backend != Backend.S3CacheOnly))
        {
            expected.Apply(data is null ? new NamespaceOp.MakeDirectory(path) : new NamespaceOp.Write(path, data, Exclusive: false));
        }

        CompareTrees(backend == Backend.Folder ? "in the folder after the uploads" : "in the bucket after the uploads", stored, expected, differences);
        if (differences.Count > 0)
        {
            log.Append(string.Join('\n', differences.Select(d => "     " + d))).Append('\n');
            throw Mismatch(log, model, "under-storage");
        }
    }

    private static XunitException Mismatch(StringBuilder log, NamespaceModel model, string what) =>
        new($"GrainFS and the model differ ({what}) after:\n{log}the model's tree:\n{model}");

    private static string Full(string mount, string relative) => relative.Length == 0 ? mount : $"{mount}/{relative}";

    private static async Task<(FsStatus Status, string? Message)> ApplyAsync(GrainFsClient client, string mount, NamespaceOp op)
    {
        switch (op)
        {
            case NamespaceOp.Write w:
                {
                    var created = await client.CreateAsync(Full(mount, w.Path), new CreateOptions { WriteType = w.Type, Exclusive = w.Exclusive });
                    if (!created.IsOk)
                    {
                        return (created.Status, created.Message);
                    }

                    await using var file = created.Value!;
                    if (w.Data.Length > 0)
                    {
                        var wrote = await file.WriteAsync(0, w.Data);
                        if (!wrote.IsOk)
                        {
                            return (wrote.Status, wrote.Message);
                        }
                    }

                    var closed = await file.CloseAsync();
                    return (closed.Status, closed.Message);
                }

            case NamespaceOp.MakeDirectory m:
                {
                    var made = await client.MakeDirectoryAsync(Full(mount, m.Path));
                    return (made.Status, made.Message);
                }

            case NamespaceOp.Rename r:
                {
                    var moved = await client.RenameAsync(Full(mount, r.From), Full(mount, r.To), r.NoReplace);
                    return (moved.Status, moved.Message);
                }

            case NamespaceOp.Unlink u:
                {
                    var removed = await client.RemoveEntryAsync(Full(mount, u.Path), directory: false);
                    return (removed.Status, removed.Message);
                }

            case NamespaceOp.RemoveDirectory d:
                {
                    var removed = await client.RemoveEntryAsync(Full(mount, d.Path), directory: true);
                    return (removed.Status, removed.Message);
                }

            default:
                throw new ArgumentException($"unknown operation {op}", nameof(op));
        }
    }

    private static async Task CompareStatsAsync(GrainFsClient client, string who, string mount, NamespaceModel model, List<string> differences)
    {
        var stats = await Task.WhenAll(AllPaths.Select(async p => (Path: p, Result: await client.StatAsync(Full(mount, p)))));
        foreach (var (path, result) in stats)
        {
            var (status, isDirectory, size) = model.Stat(path);
            if (result.Status != status)
            {
                differences.Add($"{who}: stat {path} is {result.Status.ErrnoName()}, the model says {status.ErrnoName()} ({result.Message})");
            }
            else if (status == FsStatus.Ok && (result.Value!.IsDirectory != isDirectory || (!isDirectory && result.Value.Size != size)))
            {
                differences.Add($"{who}: stat {path} is a {Describe(result.Value!.IsDirectory, result.Value.Size)}, the model has a {Describe(isDirectory, size)}");
            }
        }
    }

    private static string Describe(bool isDirectory, long size) => isDirectory ? "directory" : $"file of {size} bytes";

    private static async Task CompareTreeAsync(GrainFsClient client, string mount, NamespaceModel model, List<string> differences)
    {
        var seen = new SortedDictionary<string, byte[]?>(StringComparer.Ordinal);
        var pending = new Stack<string>();
        pending.Push(string.Empty);
        while (pending.Count > 0)
        {
            var directory = pending.Pop();
            try
            {
                await foreach (var entry in client.ListAsync(Full(mount, directory)))
                {
                    var path = directory.Length == 0 ? entry.Name : $"{directory}/{entry.Name}";
                    if (entry.IsDirectory)
                    {
                        seen[path] = null;
                        pending.Push(path);
                        continue;
                    }

                    var data = new byte[entry.Size];
                    var read = data.Length == 0 ? FsResult<int>.Ok(0) : await client.ReadAsync(Full(mount, path), 0, data);
                    if (!read.IsOk || read.Value != data.Length)
                    {
                        differences.Add($"read {path}: {read.Status.ErrnoName()} {read.Message}, {read.Value} of {data.Length} bytes");
                    }

                    seen[path] = data;
                }
            }
            catch (GrainFsException e)
            {
                differences.Add($"list {directory}: {e.Message}");
            }
        }

        CompareTrees("listed", seen, model, differences);
    }

    /// <summary>Path → bytes (null for a directory) as found <paramref name="where"/>, against the model's.</summary>
    private static void CompareTrees(string where, SortedDictionary<string, byte[]?> seen, NamespaceModel model, List<string> differences)
    {
        foreach (var (path, data) in seen)
        {
            if (!model.Entries.TryGetValue(path, out var expected))
            {
                differences.Add($"{where}: {path} ({Describe(data is null, data?.Length ?? 0)}), not in the model");
            }
            else if ((data is null) != (expected is null))
            {
                differences.Add($"{where}: {path} is a {Describe(data is null, data?.Length ?? 0)}, the model has a {Describe(expected is null, expected?.Length ?? 0)}");
            }
            else if (data is not null && !data.AsSpan().SequenceEqual(expected))
            {
                differences.Add($"{where}: {path} holds [{Convert.ToHexString(data)}], the model has [{Convert.ToHexString(expected!)}]");
            }
        }

        foreach (var path in model.Entries.Keys.Where(p => !seen.ContainsKey(p)))
        {
            differences.Add($"{where}: {path} is in the model, not there");
        }
    }

    /// <summary>What the mount's folder holds (a write in progress is a temp file of its own, not counted).</summary>
    private static SortedDictionary<string, byte[]?> FolderTree(string folder)
    {
        var tree = new SortedDictionary<string, byte[]?>(StringComparer.Ordinal);
        foreach (var entry in new DirectoryInfo(folder).EnumerateFileSystemInfos("*", SearchOption.AllDirectories))
        {
            var path = Path.GetRelativePath(folder, entry.FullName).Replace(Path.DirectorySeparatorChar, '/');
            if (entry is DirectoryInfo)
            {
                tree[path] = null;
            }
            else if (!entry.Name.StartsWith(".grainfs-", StringComparison.Ordinal))
            {
                tree[path] = File.ReadAllBytes(entry.FullName);
            }
        }

        return tree;
    }

    /// <summary>What the mount's bucket holds: a key ending in '/' is a directory's marker.</summary>
    private async Task<SortedDictionary<string, byte[]?>> BucketTreeAsync(string bucket)
    {
        var tree = new SortedDictionary<string, byte[]?>(StringComparer.Ordinal);
        using var s3 = fixture.Moto.Client();
        var listed = await s3.ListObjectsV2Async(new Amazon.S3.Model.ListObjectsV2Request { BucketName = bucket });
        foreach (var item in listed.S3Objects ?? [])
        {
            if (item.Key.EndsWith('/'))
            {
                tree[item.Key.TrimEnd('/')] = null;
                continue;
            }

            using var response = await s3.GetObjectAsync(bucket, item.Key);
            using var copy = new MemoryStream();
            await response.ResponseStream.CopyToAsync(copy);
            tree[item.Key] = copy.ToArray();
        }

        return tree;
    }
}
