using System.Buffers;
using Amazon.S3.Model;
using GrainFs.DataPlane;
using GrainFs.Storage.Metadata;

namespace GrainFs.Storage.UnderStorage;

/// <summary>
/// The write side of a bucket. A put reads the content part by part into pooled buffers: a file that fits in one
/// part is one PutObject; a larger one is a multipart upload with a few parts in flight, each retried on its own and
/// the whole upload aborted on failure, so no half-written object ever becomes visible.
/// </summary>
public sealed partial class S3UnderStorage
{
    /// <summary>Parts of one upload in flight at once.</summary>
    public const int PartsInFlight = 4;

    /// <inheritdoc />
    public async ValueTask<EntryRecord> PutAsync(string path, Stream content, long? length = null, CancellationToken cancellationToken = default)
    {
        // Refused before any of the content is read.
        UnderStorageFactory.ThrowIfNotRelative(path, Uri);
        var partSize = (int)Math.Min(_settings.PartSize, Array.MaxLength);
        var first = ArrayPool<byte>.Shared.Rent(partSize);
        try
        {
            var filled = await FillAsync(content, first, partSize, cancellationToken).ConfigureAwait(false);
            if (filled < partSize)
            {
                CheckLength(path, length, filled);
                var etag = await PutOneAsync(path, first, filled, cancellationToken).ConfigureAwait(false);
                return new EntryRecord(LastName(path), EntryKind.File, filled, DateTime.UtcNow.Ticks, etag, 0);
            }

            return await PutMultipartAsync(path, content, length, first, partSize, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(first);
        }
    }

    private async Task<string> PutOneAsync(string path, byte[] buffer, int count, CancellationToken cancellationToken)
    {
        var response = await CallAsync("put", path, ct =>
        {
            // A fresh stream per attempt: a retry resends the same bytes.
            var body = new MemoryStream(buffer, 0, count, writable: false);
            return _client.PutObjectAsync(new PutObjectRequest { BucketName = _settings.Bucket, Key = Key(path), InputStream = body, AutoCloseStream = true }, ct);
        }, cancellationToken).ConfigureAwait(false);
        GrainFsMetrics.UnderStorageBytesWritten.Add(count, SchemeTag);
        return NormalizeETag(response.ETag);
    }

    private async Task<EntryRecord> PutMultipartAsync(string path, Stream content, long? length, byte[] first, int partSize, CancellationToken cancellationToken)
    {
        var key = Key(path);
        var upload = await CallAsync("put", path, ct => _client.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest { BucketName = _settings.Bucket, Key = key }, ct), cancellationToken).ConfigureAwait(false);
        var uploadId = upload.UploadId;
        var parts = new List<PartETag>();
        var running = new List<Task<PartETag>>();
        var rented = new List<byte[]>();
        long total = 0;
        try
        {
            var buffer = first;
            var count = partSize;
            for (var number = 1; count > 0; number++)
            {
                total += count;
                running.Add(UploadPartAsync(path, key, uploadId, number, buffer, count, cancellationToken));
                if (count < partSize)
                {
                    break;
                }

                if (running.Count >= PartsInFlight)
                {
                    // Bounded: the oldest part finishes before another buffer is filled.
                    parts.Add(await running[0].ConfigureAwait(false));
                    running.RemoveAt(0);
                }

                buffer = ArrayPool<byte>.Shared.Rent(partSize);
                rented.Add(buffer);
                count = await FillAsync(content, buffer, partSize, cancellationToken).ConfigureAwait(false);
            }

            foreach (var part in running)
            {
                parts.Add(await part.ConfigureAwait(false));
            }

            CheckLength(path, length, total);
            var done = await CallAsync("put", path, ct => _client.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest
            {
                BucketName = _settings.Bucket,
                Key = key,
                UploadId = uploadId,
                PartETags = parts,
            }, ct), cancellationToken).ConfigureAwait(false);
            return new EntryRecord(LastName(path), EntryKind.File, total, DateTime.UtcNow.Ticks, NormalizeETag(done.ETag), 0);
        }
        catch
        {
            await AbortAsync(path, key, uploadId, running).ConfigureAwait(false);
            throw;
        }
        finally
        {
            foreach (var buffer in rented)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    private async Task<PartETag> UploadPartAsync(string path, string key, string uploadId, int number, byte[] buffer, int count, CancellationToken cancellationToken)
    {
        var response = await CallAsync("put-part", path, ct => _client.UploadPartAsync(new UploadPartRequest
        {
            BucketName = _settings.Bucket,
            Key = key,
            UploadId = uploadId,
            PartNumber = number,
            PartSize = count,
            InputStream = new MemoryStream(buffer, 0, count, writable: false),
        }, ct), cancellationToken).ConfigureAwait(false);
        GrainFsMetrics.UnderStorageBytesWritten.Add(count, SchemeTag);
        return new PartETag(number, response.ETag);
    }

    /// <summary>Aborts an upload after the parts in flight have settled (their buffers are returned only then).</summary>
    private async Task AbortAsync(string path, string key, string uploadId, List<Task<PartETag>> running)
    {
        foreach (var part in running)
        {
            try
            {
                await part.ConfigureAwait(false);
            }
            catch (Exception e) when (e is UnderStorageException or OperationCanceledException)
            {
                // The failure that caused the abort, or one like it.
            }
        }

        try
        {
            await CallAsync("put-abort", path, ct => _client.AbortMultipartUploadAsync(new AbortMultipartUploadRequest { BucketName = _settings.Bucket, Key = key, UploadId = uploadId }, ct), CancellationToken.None).ConfigureAwait(false);
        }
        catch (UnderStorageException)
        {
            // The store's lifecycle rules reap an upload left behind; the object never became visible.
        }
    }

    private static async Task<int> FillAsync(Stream content, byte[] buffer, int count, CancellationToken cancellationToken)
    {
        var filled = 0;
        while (filled < count)
        {
            var read = await content.ReadAsync(buffer.AsMemory(filled, count - filled), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                break;
            }

            filled += read;
        }

        return filled;
    }

    private void CheckLength(string path, long? expected, long actual)
    {
        if (expected is { } e && e != actual)
        {
            throw new UnderStorageException(UnderStorageError.InvalidArgument, Describe(path), $"expected {e} bytes, the content had {actual}");
        }
    }

    /// <inheritdoc />
    public async ValueTask DeleteAsync(string path, CancellationToken cancellationToken = default) =>
        await CallAsync("delete", path, ct => _client.DeleteObjectAsync(new DeleteObjectRequest { BucketName = _settings.Bucket, Key = Key(path) }, ct), cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public async ValueTask<EntryRecord> CopyAsync(string source, string destination, CancellationToken cancellationToken = default)
    {
        var from = await StatObjectAsync(source, cancellationToken).ConfigureAwait(false)
            ?? throw new UnderStorageException(UnderStorageError.NotFound, Describe(source), "no such object");
        if (from.Size <= S3Settings.MAX_PART_SIZE)
        {
            var copied = await CallAsync("copy", source, ct => _client.CopyObjectAsync(new CopyObjectRequest
            {
                SourceBucket = _settings.Bucket,
                SourceKey = Key(source),
                DestinationBucket = _settings.Bucket,
                DestinationKey = Key(destination),
            }, ct), cancellationToken).ConfigureAwait(false);
            return new EntryRecord(LastName(destination), EntryKind.File, from.Size, DateTime.UtcNow.Ticks, NormalizeETag(copied.ETag), 0);
        }

        return await CopyMultipartAsync(source, destination, from.Size, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A copy larger than one CopyObject allows (5 GiB): ranges copied part by part inside the store.</summary>
    private async Task<EntryRecord> CopyMultipartAsync(string source, string destination, long size, CancellationToken cancellationToken)
    {
        var key = Key(destination);
        var partSize = Math.Min(S3Settings.MAX_PART_SIZE, Math.Max(_settings.PartSize, (size + 9_999) / 10_000));
        var upload = await CallAsync("copy", destination, ct => _client.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest { BucketName = _settings.Bucket, Key = key }, ct), cancellationToken).ConfigureAwait(false);
        try
        {
            var parts = new List<PartETag>();
            var number = 1;
            for (long offset = 0; offset < size; offset += partSize, number++)
            {
                var part = number;
                var last = Math.Min(size, offset + partSize) - 1;
                var start = offset;
                var response = await CallAsync("copy-part", destination, ct => _client.CopyPartAsync(new CopyPartRequest
                {
                    SourceBucket = _settings.Bucket,
                    SourceKey = Key(source),
                    DestinationBucket = _settings.Bucket,
                    DestinationKey = key,
                    UploadId = upload.UploadId,
                    PartNumber = part,
                    FirstByte = start,
                    LastByte = last,
                }, ct), cancellationToken).ConfigureAwait(false);
                parts.Add(new PartETag(part, response.ETag));
            }

            var done = await CallAsync("copy", destination, ct => _client.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest
            {
                BucketName = _settings.Bucket,
                Key = key,
                UploadId = upload.UploadId,
                PartETags = parts,
            }, ct), cancellationToken).ConfigureAwait(false);
            return new EntryRecord(LastName(destination), EntryKind.File, size, DateTime.UtcNow.Ticks, NormalizeETag(done.ETag), 0);
        }
        catch
        {
            await AbortAsync(destination, key, upload.UploadId, []).ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc />
    public ValueTask<EntryRecord> RenameAsync(string source, string destination, CancellationToken cancellationToken = default) =>
        throw new UnderStorageException(UnderStorageError.NotSupported, Describe(source), "an object store has no rename (copy, then delete)");

    /// <inheritdoc />
    public async ValueTask MakeDirectoryAsync(string path, CancellationToken cancellationToken = default)
    {
        if (await StatAsync(path, cancellationToken).ConfigureAwait(false) is not null)
        {
            throw new UnderStorageException(UnderStorageError.AlreadyExists, Describe(path), "already exists");
        }

        await CallAsync("mkdir", path, ct => _client.PutObjectAsync(new PutObjectRequest
        {
            BucketName = _settings.Bucket,
            Key = Key(path) + "/",
            InputStream = new MemoryStream([], writable: false),
        }, ct), cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask RemoveDirectoryAsync(string path, CancellationToken cancellationToken = default)
    {
        var marker = Key(path) + "/";
        var request = new ListObjectsV2Request { BucketName = _settings.Bucket, Prefix = marker, MaxKeys = 2 };
        var listed = await ListObjectsAsync("rmdir", path, request, cancellationToken).ConfigureAwait(false);
        var keys = listed.S3Objects ?? [];
        if (keys.Count == 0)
        {
            throw await StatObjectAsync(path, cancellationToken).ConfigureAwait(false) is not null
                ? new UnderStorageException(UnderStorageError.NotADirectory, Describe(path), "not a directory")
                : new UnderStorageException(UnderStorageError.NotFound, Describe(path), "no such directory");
        }

        if (keys.Count > 1 || keys[0].Key != marker)
        {
            throw new UnderStorageException(UnderStorageError.NotEmpty, Describe(path), "directory not empty");
        }

        await CallAsync("rmdir", path, ct => _client.DeleteObjectAsync(new DeleteObjectRequest { BucketName = _settings.Bucket, Key = marker }, ct), cancellationToken).ConfigureAwait(false);
    }
}
