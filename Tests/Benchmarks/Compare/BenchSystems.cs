using System.Diagnostics;
using Amazon.S3;
using Amazon.S3.Model;
using GrainFs.Client;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Benchmarks.Compare;

/// <summary>A system under test: something that can read the benchmark's files.</summary>
internal abstract class BenchSystem : IAsyncDisposable
{
    /// <summary>The table row name.</summary>
    public abstract string Name { get; }

    /// <summary>Where the bytes come from, for the results ("s3rver", "local disk").</summary>
    public abstract string Source { get; }

    /// <summary>A folder that holds the dataset as files, for programs (ls, Python); null for API-only systems.</summary>
    public virtual string? Folder => null;

    /// <summary>Starts the system (mounts, daemons).</summary>
    public virtual Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Drops every cache the system has, so the next read is cold.</summary>
    public abstract Task MakeColdAsync(CancellationToken cancellationToken);

    /// <summary>Reads a whole file into the buffer (growing it when needed); returns the bytes read.</summary>
    public abstract ValueTask<int> ReadAsync(string relative, byte[] buffer, CancellationToken cancellationToken);

    /// <summary>Reads a large file sequentially in 1 MiB pieces; returns the bytes read.</summary>
    public abstract Task<long> ReadLargeAsync(string relative, CancellationToken cancellationToken);

    /// <summary>Lists every file and stats it; returns how many.</summary>
    public abstract Task<int> MetadataPassAsync(CancellationToken cancellationToken);

    /// <summary>Loads everything into the system's cache; null when the system has no cache to warm.</summary>
    public virtual Task<TimeSpan?> PrewarmAsync(IReadOnlyList<string> files, CancellationToken cancellationToken) => Task.FromResult<TimeSpan?>(null);

    public virtual ValueTask DisposeAsync() => ValueTask.CompletedTask;

    /// <summary>Drops the kernel's page, dentry and inode caches (as root); false when not allowed.</summary>
    public static bool DropKernelCaches()
    {
        try
        {
            using (var sync = Process.Start("sync")!)
            {
                sync.WaitForExit();
            }

            File.WriteAllText("/proc/sys/vm/drop_caches", "3");
            return true;
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            return false;
        }
    }
}

/// <summary>Anything that shows the dataset as a folder: local disk and the FUSE mounts.</summary>
internal abstract class FolderSystem : BenchSystem
{
    public abstract override string Folder { get; }

    public override ValueTask<int> ReadAsync(string relative, byte[] buffer, CancellationToken cancellationToken)
    {
        using var handle = File.OpenHandle(Path.Combine(Folder, relative));
        var total = 0;
        int read;
        while ((read = RandomAccess.Read(handle, buffer.AsSpan(total), total)) > 0)
        {
            total += read;
            if (total == buffer.Length)
            {
                break;
            }
        }

        return ValueTask.FromResult(total);
    }

    public override Task<long> ReadLargeAsync(string relative, CancellationToken cancellationToken)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(1 << 20);
        using var handle = File.OpenHandle(Path.Combine(Folder, relative));
        long total = 0;
        int read;
        while ((read = RandomAccess.Read(handle, buffer, total)) > 0)
        {
            total += read;
        }

        return Task.FromResult(total);
    }

    public override async Task<int> MetadataPassAsync(CancellationToken cancellationToken)
    {
        using var ls = Process.Start(new ProcessStartInfo("/bin/bash", ["-c", $"ls -lR '{Folder}' > /dev/null"]))!;
        await ls.WaitForExitAsync(cancellationToken);
        if (ls.ExitCode != 0)
        {
            throw new InvalidOperationException($"ls -lR {Folder} failed");
        }

        var count = 0;
        foreach (var file in Directory.EnumerateFiles(Folder, "*", SearchOption.AllDirectories))
        {
            _ = new FileInfo(file).Length;
            count++;
        }

        return count;
    }

    public override async Task<TimeSpan?> PrewarmAsync(IReadOnlyList<string> files, CancellationToken cancellationToken)
    {
        // A FUSE cache without a load command of its own is warmed by reading everything once, 8 at a time.
        var clock = Stopwatch.StartNew();
        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = cancellationToken }, async (file, ct) =>
        {
            await using var stream = new FileStream(Path.Combine(Folder, file), FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.Asynchronous);
            await stream.CopyToAsync(Stream.Null, ct);
        });
        return clock.Elapsed;
    }
}

/// <summary>The same files on local disk: the ceiling.</summary>
internal sealed class LocalDiskSystem(string folder) : FolderSystem
{
    public override string Name => "local disk";

    public override string Source => "local disk";

    public override string Folder => folder;

    public override Task MakeColdAsync(CancellationToken cancellationToken)
    {
        DropKernelCaches();
        return Task.CompletedTask;
    }

    public override Task<TimeSpan?> PrewarmAsync(IReadOnlyList<string> files, CancellationToken cancellationToken) => Task.FromResult<TimeSpan?>(null);
}

/// <summary>GETs straight from the object store, 8 in flight (the same parallelism the readers use).</summary>
internal sealed class DirectS3System(S3rverServer server) : BenchSystem
{
    private readonly AmazonS3Client _client = server.Client();

    public override string Name => "direct S3";

    public override string Source => server.Name;

    public override Task MakeColdAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override async ValueTask<int> ReadAsync(string relative, byte[] buffer, CancellationToken cancellationToken)
    {
        using var response = await _client.GetObjectAsync(server.Bucket, relative, cancellationToken);
        var total = 0;
        int read;
        while (total < buffer.Length && (read = await response.ResponseStream.ReadAsync(buffer.AsMemory(total), cancellationToken)) > 0)
        {
            total += read;
        }

        return total;
    }

    public override async Task<long> ReadLargeAsync(string relative, CancellationToken cancellationToken)
    {
        using var response = await _client.GetObjectAsync(server.Bucket, relative, cancellationToken);
        var buffer = GC.AllocateUninitializedArray<byte>(1 << 20);
        long total = 0;
        int read;
        while ((read = await response.ResponseStream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            total += read;
        }

        return total;
    }

    public override async Task<int> MetadataPassAsync(CancellationToken cancellationToken)
    {
        // What a tool without a metadata cache does: list, then HEAD every object.
        var keys = new List<string>();
        string? token = null;
        do
        {
            var page = await _client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = server.Bucket, ContinuationToken = token }, cancellationToken);
            keys.AddRange((page.S3Objects ?? []).Select(o => o.Key));
            token = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (token is not null);

        await Parallel.ForEachAsync(keys, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = cancellationToken }, async (key, ct) =>
            await _client.GetObjectMetadataAsync(server.Bucket, key, ct));
        return keys.Count;
    }

    public override ValueTask DisposeAsync()
    {
        _client.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>GrainFS through the SDK: an embedded silo process, reads short-circuit from its MEM tier.</summary>
internal sealed class GrainFsSdkSystem(GrainFsDeployment grainfs) : BenchSystem
{
    public override string Name => "GrainFS SDK";

    public override string Source => grainfs.Server.Name;

    public override Task MakeColdAsync(CancellationToken cancellationToken) => grainfs.FreeAsync(cancellationToken);

    public override async ValueTask<int> ReadAsync(string relative, byte[] buffer, CancellationToken cancellationToken)
    {
        var file = Check(await grainfs.Client.OpenAsync("/bench/" + relative, cancellationToken));
        return Check(await file.ReadAsync(0, buffer.AsMemory(0, (int)Math.Min(buffer.Length, file.Length)), cancellationToken));
    }

    public override async Task<long> ReadLargeAsync(string relative, CancellationToken cancellationToken)
    {
        var file = Check(await grainfs.Client.OpenAsync("/bench/" + relative, cancellationToken));
        var buffer = GC.AllocateUninitializedArray<byte>(1 << 20);
        long total = 0;
        while (total < file.Length)
        {
            total += Check(await file.ReadAsync(total, buffer, cancellationToken));
        }

        return total;
    }

    public override async Task<int> MetadataPassAsync(CancellationToken cancellationToken)
    {
        var count = 0;
        var pending = new Stack<string>(["/bench"]);
        while (pending.Count > 0)
        {
            var dir = pending.Pop();
            await foreach (var entry in grainfs.Client.ListAsync(dir, cancellationToken))
            {
                var path = dir + "/" + entry.Name;
                if (entry.IsDirectory)
                {
                    pending.Push(path);
                }
                else
                {
                    Check(await grainfs.Client.StatAsync(path, cancellationToken));
                    count++;
                }
            }
        }

        return count;
    }

    public override async Task<TimeSpan?> PrewarmAsync(IReadOnlyList<string> files, CancellationToken cancellationToken)
    {
        var result = Check(await grainfs.Client.LoadAsync("/bench", cancellationToken: cancellationToken));
        return result.Elapsed;
    }

    internal static T Check<T>(FsResult<T> result) => result.IsOk ? result.Value! : throw new InvalidOperationException(result.Message);
}

/// <summary>GrainFS through its FUSE mount (`grainfs mount`).</summary>
internal sealed class GrainFsFuseSystem(GrainFsDeployment grainfs, string mountPoint, ChildProcesses children, string name = "GrainFS FUSE") : FolderSystem
{
    public override string Name => name;

    public override string Source => grainfs.Server.Name;

    public override string Folder => Path.Combine(mountPoint, "bench");

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(mountPoint);
        var log = children.LogOf(Name);
        try
        {
            // Read-only, as the peers (rclone --read-only) and as earlier builds always mounted.
            children.Track(Name, await FuseProcess.StartAsync(grainfs.Silo, ["--host", GrainFsDeployment.Host, "--read-only"], mountPoint, grainfs.CliDll, log, cancellationToken), mountPoint);
        }
        catch (InvalidOperationException e)
        {
            throw new HarnessException($"{Name} did not mount {mountPoint} ({e.Message.Split('\n')[0]}); see {log}");
        }
    }

    public override async Task MakeColdAsync(CancellationToken cancellationToken)
    {
        await grainfs.FreeAsync(cancellationToken);
        DropKernelCaches();
    }

    public override async Task<TimeSpan?> PrewarmAsync(IReadOnlyList<string> files, CancellationToken cancellationToken)
    {
        var result = GrainFsSdkSystem.Check(await grainfs.Client.LoadAsync("/bench", cancellationToken: cancellationToken));
        return result.Elapsed;
    }
}

/// <summary>
/// A FUSE tool over the S3 server with a cache folder of its own (rclone, s3fs): cold means the daemon restarted
/// with an empty cache folder and the kernel's caches dropped.
/// </summary>
internal abstract class CachingMountSystem(string tool, string work, ChildProcesses children) : FolderSystem
{
    public override string Name => tool;

    public override string Folder => MountPoint;

    protected string MountPoint => Path.Combine(work, "mnt", tool);

    protected string CacheDir => Path.Combine(work, "cache", tool);

    protected string Work => work;

    protected ChildProcesses Children => children;

    public override async Task MakeColdAsync(CancellationToken cancellationToken)
    {
        await children.StopAsync(tool);
        if (Directory.Exists(CacheDir))
        {
            Directory.Delete(CacheDir, recursive: true);
        }

        DropKernelCaches();
        await StartAsync(cancellationToken);
    }
}

/// <summary>`rclone mount` with its full VFS cache.</summary>
internal sealed class RcloneSystem(S3rverServer server, string work, ChildProcesses children, string name = "rclone", string[]? extraArgs = null) : CachingMountSystem(name, work, children)
{
    public override string Source => server.Name;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        var config = Path.Combine(Work, "rclone.conf");
        await File.WriteAllTextAsync(config, $"""
            [bench]
            type = s3
            provider = Other
            access_key_id = {server.AccessKey}
            secret_access_key = {server.SecretKey}
            endpoint = {server.Endpoint}
            force_path_style = true
            region = us-east-1

            """, cancellationToken);
        Directory.CreateDirectory(MountPoint);
        Directory.CreateDirectory(CacheDir);
        // rclone refuses to start while AWS_CA_BUNDLE is set (PLATFORM.md): it is removed for this child only.
        await Children.MountAsync(Name, "rclone", ["mount", $"bench:{server.Bucket}", MountPoint, "--config", config, "--vfs-cache-mode", "full", "--cache-dir", CacheDir, "--read-only", "--dir-cache-time", "1h", .. extraArgs ?? []], MountPoint, new Dictionary<string, string?> { ["AWS_CA_BUNDLE"] = null }, cancellationToken);
    }
}

/// <summary>`s3fs` with its local cache.</summary>
internal sealed class S3fsSystem(S3rverServer server, string work, ChildProcesses children) : CachingMountSystem("s3fs", work, children)
{
    public override string Source => server.Name;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        var passwd = Path.Combine(Work, "s3fs.passwd");
        await File.WriteAllTextAsync(passwd, $"{server.AccessKey}:{server.SecretKey}\n", cancellationToken);
        if (!OperatingSystem.IsWindows())
        {
            // s3fs refuses a password file others can read.
            File.SetUnixFileMode(passwd, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        Directory.CreateDirectory(MountPoint);
        Directory.CreateDirectory(CacheDir);
        await Children.MountAsync("s3fs", "s3fs", [server.Bucket, MountPoint, "-f", "-o", $"url={server.Endpoint},use_path_request_style,use_cache={CacheDir},passwd_file={passwd},ro"], MountPoint, null, cancellationToken);
    }
}
