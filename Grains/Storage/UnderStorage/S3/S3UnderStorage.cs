using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using GrainFs.DataPlane;
using GrainFs.Storage.Metadata;

namespace GrainFs.Storage.UnderStorage;

/// <summary>Connection settings for an S3-compatible store, resolved from mount options and the environment.</summary>
/// <param name="Bucket">The bucket.</param>
/// <param name="Prefix">The key prefix of the mount root, without leading or trailing slash ("" for the whole bucket).</param>
/// <param name="Endpoint">The service URL, or null for AWS itself.</param>
/// <param name="Region">The signing region.</param>
/// <param name="PathStyle">Path-style addressing (bucket in the path), the default whenever an endpoint is given.</param>
/// <param name="Credentials">The credentials, or null for anonymous access.</param>
/// <param name="PartSize">Uploads larger than this go up in parts of this size (5 MiB to 5 GiB).</param>
public sealed record S3Settings(string Bucket, string Prefix, string? Endpoint, string Region, bool PathStyle, AWSCredentials? Credentials, long PartSize = S3Settings.DEFAULT_PART_SIZE)
{
    /// <summary>Default upload part size.</summary>
    public const long DEFAULT_PART_SIZE = 16L << 20;

    /// <summary>The smallest part S3 accepts (all but the last part).</summary>
    public const long MIN_PART_SIZE = 5L << 20;

    /// <summary>The largest part S3 accepts, and the largest single copy.</summary>
    public const long MAX_PART_SIZE = 5L << 30;

    /// <summary>Never prints the credentials.</summary>
    public override string ToString() => $"s3://{Bucket}/{Prefix} endpoint={Endpoint ?? "aws"} region={Region} path-style={PathStyle}";
}

/// <summary>An S3-compatible bucket (AWS S3, MinIO, Qiniu KODO, Ceph RGW, …) as under-storage, through AWSSDK.S3.</summary>
public sealed partial class S3UnderStorage : IUnderStorage
{
    /// <summary>Keys per listing page (the S3 maximum).</summary>
    public const int PageSize = 1000;

    private static readonly KeyValuePair<string, object?> SchemeTag = new("scheme", "s3");
    private readonly AmazonS3Client _client;
    private readonly S3Settings _settings;
    private readonly RetryPolicy _retry;
    private readonly string _rootPrefix;

    /// <summary>Creates the adapter.</summary>
    public S3UnderStorage(S3Settings settings, RetryPolicy? retry = null)
    {
        _settings = settings;
        _retry = retry ?? RetryPolicy.Default;
        _rootPrefix = settings.Prefix.Length == 0 ? string.Empty : settings.Prefix + "/";
        Uri = settings.Prefix.Length == 0 ? $"s3://{settings.Bucket}" : $"s3://{settings.Bucket}/{settings.Prefix}";
        var config = new AmazonS3Config
        {
            ForcePathStyle = settings.PathStyle,
            AuthenticationRegion = settings.Region,
            // Retries are ours (RetryPolicy), so they are counted, logged and bounded in one place.
            MaxErrorRetry = 0,
            Timeout = TimeSpan.FromSeconds(60),
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        };
        if (settings.Endpoint is not null)
        {
            config.ServiceURL = settings.Endpoint;
        }
        else
        {
            config.RegionEndpoint = Amazon.RegionEndpoint.GetBySystemName(settings.Region);
        }

        _client = settings.Credentials is null
            ? new AmazonS3Client(new AnonymousAWSCredentials(), config)
            : new AmazonS3Client(settings.Credentials, config);
    }

    /// <inheritdoc />
    public string Uri { get; }

    /// <inheritdoc />
    public string Scheme => "s3";

    /// <inheritdoc />
    public UnderStorageCapabilities Capabilities => UnderStorageCapabilities.Write | UnderStorageCapabilities.Multipart | UnderStorageCapabilities.ServerSideCopy;

    /// <summary>
    /// The object key of a path. The path is used as given, so one with an empty, '.' or '..' component (which some
    /// S3-compatible servers normalise, reaching keys outside the mount's prefix) or a NUL is refused (InvalidArgument).
    /// </summary>
    private string Key(string relative)
    {
        UnderStorageFactory.ThrowIfNotRelative(relative, Uri);
        return _rootPrefix + relative;
    }

    private string Describe(string relative) => relative.Length == 0 ? Uri : Uri.TrimEnd('/') + "/" + relative;

    /// <inheritdoc />
    public async IAsyncEnumerable<IReadOnlyList<EntryRecord>> ListAsync(string directory, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var prefix = directory.Length == 0 ? _rootPrefix : Key(directory) + "/";
        string? token = null;
        var sawAnything = false;
        do
        {
            var request = new ListObjectsV2Request
            {
                BucketName = _settings.Bucket,
                Prefix = prefix,
                Delimiter = "/",
                MaxKeys = PageSize,
                ContinuationToken = token,
            };
            var response = await ListObjectsAsync("list", directory, request, cancellationToken).ConfigureAwait(false);
            var page = new List<EntryRecord>((response.S3Objects?.Count ?? 0) + (response.CommonPrefixes?.Count ?? 0));
            foreach (var common in response.CommonPrefixes ?? [])
            {
                sawAnything = true;
                var name = common.AsSpan(prefix.Length).TrimEnd('/');
                if (ValidName(name))
                {
                    page.Add(new EntryRecord(name.ToString(), EntryKind.Directory, 0, DateTime.UnixEpoch.Ticks, string.Empty, 0));
                }
                else
                {
                    GrainFsMetrics.UnderStorageSkippedNames.Add(1, SchemeTag);
                }
            }

            foreach (var item in response.S3Objects ?? [])
            {
                sawAnything = true;
                var name = item.Key.AsSpan(prefix.Length);
                if (!ValidName(name))
                {
                    // The directory marker itself ("dir/"), or a key no POSIX name can carry.
                    if (!name.IsEmpty)
                    {
                        GrainFsMetrics.UnderStorageSkippedNames.Add(1, SchemeTag);
                    }

                    continue;
                }

                var mtime = (item.LastModified ?? DateTime.UnixEpoch).ToUniversalTime().Ticks;
                page.Add(new EntryRecord(name.ToString(), EntryKind.File, item.Size ?? 0, mtime, NormalizeETag(item.ETag), 0));
            }

            if (page.Count > 0)
            {
                yield return page;
            }

            token = response.IsTruncated == true ? response.NextContinuationToken : null;
        }
        while (token is not null);

        if (!sawAnything && directory.Length > 0)
        {
            // No key under the prefix: the "directory" does not exist, unless the path is an object.
            var stat = await StatObjectAsync(directory, cancellationToken).ConfigureAwait(false);
            throw stat is not null
                ? new UnderStorageException(UnderStorageError.NotADirectory, Describe(directory), "not a directory")
                : new UnderStorageException(UnderStorageError.NotFound, Describe(directory), "no such directory");
        }
    }

    /// <summary>
    /// Lists with keys URL-encoded by the server (S3's <c>encoding-type=url</c>) and decodes them here: a key holding a
    /// byte XML cannot carry (NUL, most control characters) would otherwise make the whole page unreadable (the SDK's XML
    /// reader refuses it), failing the directory. The SDK does not decode them itself; a server that ignores the request
    /// answers without an encoding and its keys are taken as they are.
    /// </summary>
    private async Task<ListObjectsV2Response> ListObjectsAsync(string operation, string path, ListObjectsV2Request request, CancellationToken cancellationToken)
    {
        request.Encoding = EncodingType.Url;
        var response = await CallAsync(operation, path, ct => _client.ListObjectsV2Async(request, ct), cancellationToken).ConfigureAwait(false);
        if (response.Encoding != EncodingType.Url)
        {
            return response;
        }

        foreach (var item in response.S3Objects ?? [])
        {
            item.Key = System.Net.WebUtility.UrlDecode(item.Key);
        }

        if (response.CommonPrefixes is { Count: > 0 } prefixes)
        {
            for (var i = 0; i < prefixes.Count; i++)
            {
                prefixes[i] = System.Net.WebUtility.UrlDecode(prefixes[i]);
            }
        }

        return response;
    }

    // A name a POSIX file system can carry: not empty, "." or "..", no '/' (a key with "//"), no NUL (which PostgreSQL's
    // text also refuses: one such key failed the whole directory), at most 255 bytes.
    private static bool ValidName(ReadOnlySpan<char> name) =>
        !name.IsEmpty && name is not "." && name is not ".." && !name.Contains('/') && !name.Contains('\0') && Encoding.UTF8.GetByteCount(name) <= 255;

    /// <summary>S3 ETags come quoted; GrainFS shows and stores them without quotes.</summary>
    public static string NormalizeETag(string? etag) => string.IsNullOrEmpty(etag) ? string.Empty : etag.Trim('"');

    /// <inheritdoc />
    public async ValueTask<EntryRecord?> StatAsync(string path, CancellationToken cancellationToken = default)
    {
        if (path.Length == 0)
        {
            // The mount root: the bucket must be reachable; an empty prefix is an empty directory.
            var request = new ListObjectsV2Request { BucketName = _settings.Bucket, Prefix = _rootPrefix, MaxKeys = 1 };
            await ListObjectsAsync("list", path, request, cancellationToken).ConfigureAwait(false);
            return new EntryRecord(string.Empty, EntryKind.Directory, 0, DateTime.UnixEpoch.Ticks, string.Empty, 0);
        }

        var file = await StatObjectAsync(path, cancellationToken).ConfigureAwait(false);
        if (file is not null)
        {
            return file;
        }

        var probe = new ListObjectsV2Request { BucketName = _settings.Bucket, Prefix = Key(path) + "/", MaxKeys = 1 };
        var listed = await ListObjectsAsync("list", path, probe, cancellationToken).ConfigureAwait(false);
        return (listed.KeyCount ?? 0) > 0
            ? new EntryRecord(LastName(path), EntryKind.Directory, 0, DateTime.UnixEpoch.Ticks, string.Empty, 0)
            : null;
    }

    private async ValueTask<EntryRecord?> StatObjectAsync(string path, CancellationToken cancellationToken)
    {
        try
        {
            var request = new GetObjectMetadataRequest { BucketName = _settings.Bucket, Key = Key(path) };
            var head = await CallAsync("head", path, ct => _client.GetObjectMetadataAsync(request, ct), cancellationToken).ConfigureAwait(false);
            var mtime = (head.LastModified ?? DateTime.UnixEpoch).ToUniversalTime().Ticks;
            return new EntryRecord(LastName(path), EntryKind.File, head.ContentLength, mtime, NormalizeETag(head.ETag), 0);
        }
        catch (UnderStorageException e) when (e.Error == UnderStorageError.NotFound)
        {
            return null;
        }
    }

    private static string LastName(string path)
    {
        var slash = path.LastIndexOf('/');
        return slash < 0 ? path : path[(slash + 1)..];
    }

    /// <inheritdoc />
    public async ValueTask<int> ReadAsync(string path, long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        if (destination.Length == 0)
        {
            return 0;
        }

        var request = new GetObjectRequest
        {
            BucketName = _settings.Bucket,
            Key = Key(path),
            ByteRange = new ByteRange(offset, offset + destination.Length - 1),
        };
        return await CallAsync("read", path, async ct =>
        {
            try
            {
                using var response = await _client.GetObjectAsync(request, ct).ConfigureAwait(false);
                var total = 0;
                while (total < destination.Length)
                {
                    var read = await response.ResponseStream.ReadAsync(destination[total..], ct).ConfigureAwait(false);
                    if (read == 0)
                    {
                        break;
                    }

                    total += read;
                }

                GrainFsMetrics.UnderStorageBytesRead.Add(total, SchemeTag);
                return total;
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                // Reading at or past the end of the object.
                return 0;
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<Stream> OpenReadAsync(string path, long offset, long length, string? expectedETag, CancellationToken cancellationToken = default)
    {
        var request = new GetObjectRequest
        {
            BucketName = _settings.Bucket,
            Key = Key(path),
            ByteRange = new ByteRange(offset, offset + Math.Max(1, length) - 1),
        };
        if (expectedETag is { Length: > 0 })
        {
            request.EtagToMatch = "\"" + expectedETag + "\"";
        }

        try
        {
            var response = await CallAsync("read", path, ct => _client.GetObjectAsync(request, ct), cancellationToken).ConfigureAwait(false);
            return new CountingStream(response, SchemeTag);
        }
        catch (UnderStorageException e) when (e.InnerException is AmazonS3Exception { StatusCode: HttpStatusCode.PreconditionFailed })
        {
            throw new UnderStorageException(UnderStorageError.Changed, Describe(path), "the object changed since it was listed (ETag differs)", e);
        }
    }

    /// <summary>The body of a GetObject response; disposing it releases the connection.</summary>
    private sealed class CountingStream(GetObjectResponse response, KeyValuePair<string, object?> tag) : ReadOnlyStream
    {
        private readonly Stream _inner = response.ResponseStream;

        public override int Read(Span<byte> buffer) => Counted(_inner.Read(buffer));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Counted(await _inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false));

        private int Counted(int read)
        {
            GrainFsMetrics.UnderStorageBytesRead.Add(read, tag);
            return read;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                response.Dispose();
            }

            base.Dispose(disposing);
        }
    }

    private async Task<T> CallAsync<T>(string op, string path, Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            var result = await _retry.ExecuteAsync(call, IsTransient, (_, _) => GrainFsMetrics.UnderStorageRetries.Add(1, SchemeTag), cancellationToken).ConfigureAwait(false);
            Record(op, "ok", started);
            return result;
        }
        catch (Exception e) when (e is not UnderStorageException && !(e is OperationCanceledException && cancellationToken.IsCancellationRequested))
        {
            var translated = Translate(e, path);
            Record(op, translated.Error == UnderStorageError.NotFound ? "not_found" : "error", started);
            throw translated;
        }
    }

    private static void Record(string op, string outcome, long started)
    {
        var tags = new TagList { SchemeTag, { "op", op }, { "outcome", outcome } };
        GrainFsMetrics.UnderStorageRequests.Add(1, tags);
        GrainFsMetrics.UnderStorageLatency.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds, tags);
    }

    /// <summary>Throttling, server errors and network faults are worth retrying; client errors are not.</summary>
    public static bool IsTransient(Exception e)
    {
        if (e is AmazonS3Exception s3)
        {
            var code = (int)s3.StatusCode;
            return code is 429 or 500 or 502 or 503 or 504
                || s3.ErrorCode is "SlowDown" or "Throttling" or "ThrottlingException" or "RequestTimeout" or "InternalError" or "ServiceUnavailable";
        }

        return FindNetworkFault(e) is not null || e is TimeoutException || e is OperationCanceledException;
    }

    private static Exception? FindNetworkFault(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is HttpRequestException or SocketException or IOException)
            {
                return e;
            }
        }

        return null;
    }

    private static SocketException? FindSocketFault(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is SocketException socket)
            {
                return socket;
            }
        }

        return null;
    }

    private UnderStorageException Translate(Exception e, string path)
    {
        var where = Describe(path);
        if (e is AmazonS3Exception s3)
        {
            var code = s3.ErrorCode ?? string.Empty;
            if (code == "NoSuchBucket")
            {
                return new UnderStorageException(UnderStorageError.NoSuchBucket, where, $"no such bucket '{_settings.Bucket}'", e);
            }

            if (s3.StatusCode == HttpStatusCode.Forbidden || code is "AccessDenied" or "InvalidAccessKeyId" or "SignatureDoesNotMatch")
            {
                return new UnderStorageException(UnderStorageError.AccessDenied, where, $"access denied ({(code.Length > 0 ? code : "403")})", e);
            }

            if (s3.StatusCode == HttpStatusCode.NotFound)
            {
                return new UnderStorageException(UnderStorageError.NotFound, where, "no such object", e);
            }

            if ((int)s3.StatusCode is 429 or 503 || code is "SlowDown" or "Throttling")
            {
                return new UnderStorageException(UnderStorageError.Throttled, where, $"throttled by the store after {_retry.MaxAttempts} attempts ({code})", e);
            }

            return new UnderStorageException(UnderStorageError.Other, where, $"{code} (HTTP {(int)s3.StatusCode}): {s3.Message}", e);
        }

        var network = FindNetworkFault(e);
        if (network is not null || e is TimeoutException || e is OperationCanceledException)
        {
            var endpoint = _settings.Endpoint ?? $"s3.{_settings.Region}.amazonaws.com";
            var reason = FindSocketFault(e) is { } socket ? socket.SocketErrorCode.ToString() : (network ?? e).Message;
            return new UnderStorageException(UnderStorageError.Unreachable, where, $"cannot reach {endpoint} ({reason}) after {_retry.MaxAttempts} attempts", e);
        }

        return new UnderStorageException(UnderStorageError.Other, where, e.Message, e);
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _client.Dispose();
        return ValueTask.CompletedTask;
    }
}
