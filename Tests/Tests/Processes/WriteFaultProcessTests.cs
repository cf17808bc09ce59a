using System.Diagnostics;
using System.Globalization;
using Amazon.S3;
using Amazon.S3.Model;
using GrainFs.Client;
using GrainFs.Tests.Infrastructure;
using Xunit.Abstractions;

namespace GrainFs.Tests.Processes;

/// <summary>
/// The write path's promise under real faults, with real parts (silo processes, PostgreSQL, moto): a file whose
/// ASYNC_THROUGH close was acknowledged reaches S3 with its exact bytes although the write silo is SIGKILLed before
/// it is uploaded, or S3 goes away while it is being uploaded. The persist rate is limited so the uploads are still
/// under way when the fault hits.
/// </summary>
public sealed class WriteFaultProcessTests(ITestOutputHelper output)
{
    private const int BlockSize = 1 << 20;

    // Files of every shape: empty, sub-block, exactly one block, one byte over a block boundary, several blocks.
    private static readonly int[] Sizes =
    [
        0, 1, 100, 4095, 4096, 65_537, 300_000, 999_999, BlockSize, BlockSize + 1,
        1_500_000, 2 * BlockSize, (2 * BlockSize) + 7, 2_600_000, (3 * BlockSize) - 1, 3_300_000, 700_000, 123_456, (4 * BlockSize) + 3, 50_000,
    ];

    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    private static byte[] RandomBytes(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static Dictionary<string, string> MountOptions(MotoServer moto) =>
        new(moto.MountOptions) { ["block-size"] = "1MiB" };

    private static async Task<byte[]?> ObjectAsync(MotoServer moto, string bucket, string key)
    {
        using var s3 = moto.Client();
        try
        {
            using var response = await s3.GetObjectAsync(bucket, key);
            using var copy = new MemoryStream();
            await response.ResponseStream.CopyToAsync(copy);
            return copy.ToArray();
        }
        catch (AmazonS3Exception e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary>Writes every file with ASYNC_THROUGH, one close after the other, and returns the bytes written under each name.</summary>
    private static async Task<Dictionary<string, byte[]>> WriteAllAsync(GrainFsClient client, string mount, IReadOnlyList<int> sizes, int seed)
    {
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        for (var i = 0; i < sizes.Count; i++)
        {
            var name = $"f{i:00}-{sizes[i]}.bin";
            var data = RandomBytes(sizes[i], seed + i);
            var written = await client.WriteFileAsync($"{mount}/{name}", new MemoryStream(data), new CreateOptions { WriteType = WriteType.AsyncThrough });
            Assert.True(written.IsOk, $"{name}: {written.Message}");
            Assert.Equal(data.Length, written.Value!.Size);
            files.Add(name, data);
        }

        return files;
    }

    /// <summary>The persistence stat reports for each file now (a file that cannot be stat'ed fails the test).</summary>
    private static async Task<Dictionary<string, FsEntry>> StatAllAsync(GrainFsClient client, string mount, IEnumerable<string> names)
    {
        var entries = new Dictionary<string, FsEntry>(StringComparer.Ordinal);
        foreach (var name in names)
        {
            var stat = await client.StatAsync($"{mount}/{name}");
            Assert.True(stat.IsOk, $"{name}: {stat.Message}");
            entries.Add(name, stat.Value!);
        }

        return entries;
    }

    /// <summary>
    /// Waits until every file is in the bucket and stat reports it Persisted; the bytes in S3 must be exactly the bytes
    /// written (an S3 PUT is atomic: an object that exists is complete, so a difference is a failure, not a wait).
    /// Stat errors while the cluster recovers are retried until the deadline.
    /// </summary>
    private static async Task AssertAllPersistedAsync(GrainFsClient client, MotoServer moto, string bucket, string mount, Dictionary<string, byte[]> files, TimeSpan deadline)
    {
        var clock = Stopwatch.StartNew();
        var waiting = new SortedSet<string>(files.Keys, StringComparer.Ordinal);
        var last = new Dictionary<string, string>(StringComparer.Ordinal);
        while (waiting.Count > 0 && clock.Elapsed < deadline)
        {
            foreach (var name in waiting.ToList())
            {
                var inS3 = await ObjectAsync(moto, bucket, name);
                if (inS3 is null)
                {
                    last[name] = "not in S3";
                    continue;
                }

                Assert.True(files[name].AsSpan().SequenceEqual(inS3), $"{name}: S3 holds {inS3.Length} bytes that differ from the {files[name].Length} written");
                try
                {
                    var stat = await client.StatAsync($"{mount}/{name}");
                    if (stat.IsOk && stat.Value!.Persistence == Persistence.Persisted)
                    {
                        Assert.Equal(files[name].Length, stat.Value.Size);
                        waiting.Remove(name);
                        continue;
                    }

                    last[name] = stat.IsOk ? $"in S3, stat says {stat.Value!.Persistence.Name()} ({stat.Value.PersistError})" : $"in S3, stat failed: {stat.Message}";
                }
                catch (Exception e) when (e is OrleansException or TimeoutException or SiloUnavailableException)
                {
                    last[name] = $"in S3, stat threw {e.GetType().Name}: {e.Message}";
                }
            }

            if (waiting.Count > 0)
            {
                // Uploads run at the limited persist rate: poll, nothing to wait on from outside the silo.
                await Task.Delay(250);
            }
        }

        Assert.True(waiting.Count == 0, $"{waiting.Count} of {files.Count} acknowledged files not persisted within {deadline.TotalSeconds} s: "
            + string.Join("; ", waiting.Select(n => $"{n}: {last.GetValueOrDefault(n)}")));
    }

    [Fact]
    public async Task Files_acknowledged_before_the_write_silo_is_SIGKILLed_all_land_in_S3_intact_after_it_restarts()
    {
        var pg = await PostgresServer.Shared;
        var moto = await MotoServer.Shared;
        var connection = await pg.CreateDatabaseAsync("wkill");
        var env = new Dictionary<string, string?> { ["GRAINFS_CLUSTER"] = connection };
        string[] writerArgs = ["--host", "wk-host1", "--advertise", "127.0.0.1", "--name", "wk-writer", "--roles", "gpu,read,write", "--write-tier", "SSD", "--persist-rate", "1MiB"];
        var writer = await SiloProcess.StartAsync("wk-writer", new SiloProcessOptions { ExtraArgs = writerArgs, Environment = env });
        SiloProcess? restarted = null;
        var reader = await SiloProcess.StartAsync("wk-reader", new SiloProcessOptions { ExtraArgs = ["--host", "wk-host2", "--advertise", "127.0.0.1", "--name", "wk-reader", "--roles", "read"], Environment = env });
        try
        {
            await using var client = await GrainFsClient.ConnectAsync(new GrainFsClientOptions { Cluster = connection, Host = "wk-client", MetadataCacheEntries = 0 });
            var bucket = await moto.CreateBucketAsync("wkill");
            var mount = $"/wkill-{Guid.NewGuid().ToString("N")[..6]}";
            var mounted = await client.MountAsync(mount, $"s3://{bucket}", MountOptions(moto));
            Assert.True(mounted.IsOk, mounted.Message);

            var writing = Stopwatch.StartNew();
            var files = await WriteAllAsync(client, mount, Sizes, seed: 100);
            output.WriteLine($"{files.Count} files ({files.Values.Sum(f => f.Length)} bytes) written in {writing.Elapsed.TotalSeconds:0.0} s");
            var afterClose = await StatAllAsync(client, mount, files.Keys);
            var pending = afterClose.Count(e => e.Value.Persistence != Persistence.Persisted);
            Assert.True(pending > 0, "every file was persisted before the kill: the test would prove nothing (is --persist-rate applied?)");

            writer.Process.Kill();
            Assert.Equal(137, await writer.Process.WaitForExitAsync(TimeSpan.FromSeconds(10)));
            var inS3AtKill = 0;
            foreach (var name in files.Keys)
            {
                inS3AtKill += await ObjectAsync(moto, bucket, name) is null ? 0 : 1;
            }

            // The same data folder (and with it the tiers and the journal), the same name and host: the node rebooted.
            var clock = Stopwatch.StartNew();
            restarted = await SiloProcess.StartAsync("wk-writer", new SiloProcessOptions { Data = writer.Data, ExtraArgs = writerArgs, Environment = env });
            await AssertAllPersistedAsync(client, moto, bucket, mount, files, Deadline);
            output.WriteLine($"{pending} of {files.Count} files pending after the last close; {inS3AtKill} in S3 at the kill; all persisted {clock.Elapsed.TotalSeconds:0.0} s after the restart began");
            Assert.True(inS3AtKill < files.Count, $"all {files.Count} files were in S3 at the kill: nothing was left for the restarted silo to resume");
            Assert.Contains("Resuming", restarted.Process.Output, StringComparison.Ordinal);
        }
        finally
        {
            if (restarted is not null)
            {
                await restarted.DisposeAsync();
            }

            await writer.DisposeAsync();
            await reader.DisposeAsync();
        }
    }

    [Fact]
    public async Task Files_whose_upload_S3_refuses_while_it_is_down_show_failed_and_land_in_S3_intact_once_it_is_back()
    {
        var port = Ports.Free();
        var moto = await MotoServer.StartAsync(port);
        SiloProcess? silo = null;
        try
        {
            // A short retry ceiling keeps the wait after S3 returns within the test's deadline (the default backs off to 30 s).
            var env = new Dictionary<string, string?> { ["GrainFs__Persist__MaxRetryDelay"] = "00:00:04" };
            silo = await SiloProcess.StartAsync("s3down", new SiloProcessOptions { ExtraArgs = ["--write-tier", "SSD", "--persist-rate", "512KiB"], Environment = env });
            await using var client = await GrainFsClient.ConnectAsync(new GrainFsClientOptions { GatewayPort = silo.GatewayPort, Host = "s3down-client", MetadataCacheEntries = 0 });
            var bucket = await moto.CreateBucketAsync("s3down");
            var mount = $"/s3down-{Guid.NewGuid().ToString("N")[..6]}";
            var mounted = await client.MountAsync(mount, $"s3://{bucket}", MountOptions(moto));
            Assert.True(mounted.IsOk, mounted.Message);

            // The oldest files go first, two at a time, sharing 512 KiB/s: two 4 MiB files first take 16 s, in which the rest is
            // written and S3 stopped, so every file is in flight or queued when it stops.
            int[] sizes = [(4 * BlockSize) + 3, (4 * BlockSize) - 5, 0, 1, 4095, 50_000, 300_000, BlockSize, BlockSize + 1, (2 * BlockSize) + 7];
            var writing = Stopwatch.StartNew();
            var files = await WriteAllAsync(client, mount, sizes, seed: 200);
            output.WriteLine($"{files.Count} files ({files.Values.Sum(f => f.Length)} bytes) written in {writing.Elapsed.TotalSeconds:0.0} s");

            // moto keeps its buckets in memory: what it holds is lost with it, so nothing may have been uploaded yet.
            await moto.StopAsync();
            var atStop = await StatAllAsync(client, mount, files.Keys);
            Assert.True(atStop.Values.All(e => e.Persistence != Persistence.Persisted),
                $"uploaded before S3 stopped (lost with moto's memory, the test cannot check them): {string.Join(", ", atStop.Where(e => e.Value.Persistence == Persistence.Persisted).Select(e => e.Key))}");

            // While S3 is down: every file stays pending or failed, and the failed ones say why.
            var clock = Stopwatch.StartNew();
            Dictionary<string, FsEntry> down;
            do
            {
                await Task.Delay(250);
                down = await StatAllAsync(client, mount, files.Keys);
                Assert.All(down, e => Assert.True(e.Value.Persistence is Persistence.Pending or Persistence.Failed, $"{e.Key} is {e.Value.Persistence.Name()} while S3 is down"));
            }
            while (!down.Values.Any(e => e.Persistence == Persistence.Failed) && clock.Elapsed < TimeSpan.FromSeconds(60));

            var failed = down.Where(e => e.Value.Persistence == Persistence.Failed).ToList();
            Assert.True(failed.Count > 0, $"no file showed failed within 60 s of S3 stopping: {string.Join(", ", down.Select(e => $"{e.Key}={e.Value.Persistence.Name()}"))}");
            Assert.All(failed, e => Assert.False(string.IsNullOrWhiteSpace(e.Value.PersistError), $"{e.Key} failed without a reason"));
            var endpoint = $"127.0.0.1:{Text(port)}";
            Assert.All(failed, e => Assert.True(
                e.Value.PersistError!.Contains("refused", StringComparison.OrdinalIgnoreCase) || e.Value.PersistError.Contains(endpoint, StringComparison.Ordinal),
                $"{e.Key}: the reason names neither the refused connection nor the endpoint: {e.Value.PersistError}"));

            // S3 is back, empty: the bucket is made again before anything is asserted.
            moto = await MotoServer.StartAsync(port);
            using (var s3 = moto.Client())
            {
                await s3.PutBucketAsync(new PutBucketRequest { BucketName = bucket });
            }

            clock.Restart();
            await AssertAllPersistedAsync(client, moto, bucket, mount, files, Deadline);
            output.WriteLine($"{failed.Count} of {files.Count} failed while S3 was down, e.g. {failed[0].Key}: {failed[0].Value.PersistError}; all persisted {clock.Elapsed.TotalSeconds:0.0} s after S3 returned");
            var back = await StatAllAsync(client, mount, files.Keys);
            Assert.All(back, e => Assert.Null(e.Value.PersistError));
        }
        finally
        {
            if (silo is not null)
            {
                await silo.DisposeAsync();
            }

            await moto.DisposeAsync();
        }
    }
}
