using Amazon.S3.Model;
using GrainFs.Client;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Benchmarks;

/// <summary>Data sets and reads the benchmarks share: random files, objects on moto, a whole file read through the SDK.</summary>
internal static class BenchData
{
    /// <summary>Writes <paramref name="bytes"/> random bytes of <paramref name="random"/> to a new file at <paramref name="path"/>, 4 MiB at a time.</summary>
    public static void WriteRandomFile(string path, long bytes, Random random)
    {
        var chunk = new byte[4 << 20];
        using var file = File.Create(path);
        for (long written = 0; written < bytes; written += chunk.Length)
        {
            random.NextBytes(chunk);
            file.Write(chunk, 0, (int)Math.Min(chunk.Length, bytes - written));
        }
    }

    /// <summary>Creates <paramref name="bucket"/> on moto with <paramref name="count"/> objects of <paramref name="size"/> random bytes; returns their keys.</summary>
    public static async Task<IReadOnlyList<string>> UploadObjectsAsync(MotoServer moto, string bucket, int count, int size)
    {
        using var client = moto.Client();
        await client.PutBucketAsync(bucket);
        var keys = Enumerable.Range(0, count).Select(i => $"c{i / 100:D3}/obj{i:D6}.jpg").ToList();
        var data = new byte[size];
        new Random(2).NextBytes(data);
        await Parallel.ForEachAsync(keys, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (key, ct) =>
        {
            using var stream = new MemoryStream(data, writable: false);
            await client.PutObjectAsync(new PutObjectRequest { BucketName = bucket, Key = key, InputStream = stream }, ct);
        });
        return keys;
    }

    /// <summary>Reads all of <paramref name="file"/> front to back in reads of <paramref name="buffer"/>'s size.</summary>
    public static async Task ReadAllAsync(GrainFsFile file, byte[] buffer)
    {
        for (long offset = 0; offset < file.Length;)
        {
            var read = await file.ReadAsync(offset, buffer);
            offset += read.IsOk ? read.Value : throw new InvalidOperationException(read.Message);
        }
    }
}
