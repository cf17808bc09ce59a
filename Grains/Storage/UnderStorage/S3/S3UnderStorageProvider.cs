using System.Text.RegularExpressions;
using Amazon.Runtime;
using Amazon.Runtime.Credentials;
using GrainFs.DataPlane;

namespace GrainFs.Storage.UnderStorage;

/// <summary>
/// The s3:// scheme: any S3-compatible store. Settings come from the mount's options first, then the silo's standard
/// AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL_S3),
/// then the AWS default credential chain, else anonymous access.
/// </summary>
public sealed partial class S3UnderStorageProvider : IUnderStorageProvider
{
    /// <inheritdoc />
    public string Scheme => "s3";

    /// <inheritdoc />
    public string Example => "s3://bucket/prefix";

    /// <inheritdoc />
    public IReadOnlyList<string> Properties { get; } = ["endpoint", "region", "path-style", "access-key", "secret-key", "session-token", "part-size"];

    [GeneratedRegex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    private static partial Regex BucketName();

    /// <inheritdoc />
    public bool TryParse(string uri, string rest, out UnderStorageUri parsed, out string? error)
    {
        parsed = new UnderStorageUri(Scheme, string.Empty, string.Empty);
        var slash = rest.IndexOf('/');
        var bucket = slash < 0 ? rest : rest[..slash];
        if (bucket.Contains('@', StringComparison.Ordinal))
        {
            // Never echo user-info: it is where people paste keys.
            error = $"s3://…@{bucket[(bucket.LastIndexOf('@') + 1)..]}: credentials in the URI are not accepted (use --option access-key=… --option secret-key=…, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY on the silos)";
            return false;
        }

        var prefix = slash < 0 ? string.Empty : rest[(slash + 1)..].Trim('/');
        if (!BucketName().IsMatch(bucket) || bucket.Contains("..", StringComparison.Ordinal))
        {
            error = $"'{uri}': '{bucket}' is not a valid bucket name (3-63 characters: a-z, 0-9, '.', '-')";
            return false;
        }

        if (!UnderStorageFactory.CleanComponents(prefix, uri, out error))
        {
            return false;
        }

        parsed = new UnderStorageUri(Scheme, bucket, prefix);
        return true;
    }

    /// <inheritdoc />
    public IUnderStorage Create(UnderStorageUri uri, IReadOnlyDictionary<string, string> properties, Func<string, string?> environment) =>
        new S3UnderStorage(Resolve(uri, properties, environment));

    /// <summary>Resolves S3 settings: mount properties first, then the silo's AWS environment.</summary>
    public S3Settings Resolve(UnderStorageUri uri, IReadOnlyDictionary<string, string> properties, Func<string, string?> environment)
    {
        string? Get(string key) => properties.TryGetValue(key, out var value) && value.Length > 0 ? value : null;
        string? Env(string key) => environment(key) is { Length: > 0 } value ? value : null;

        var endpoint = Get("endpoint") ?? Env("AWS_ENDPOINT_URL_S3") ?? Env("AWS_ENDPOINT_URL");
        if (endpoint is not null && !System.Uri.TryCreate(endpoint, UriKind.Absolute, out _))
        {
            throw new UnderStorageException(UnderStorageError.InvalidArgument, uri.ToString(), $"endpoint '{endpoint}' is not an absolute URL");
        }

        if (endpoint is not null && new System.Uri(endpoint).UserInfo.Length > 0)
        {
            // Never echoed: an endpoint is stored and shown in clear, so credentials go in the sealed options instead.
            throw new UnderStorageException(UnderStorageError.InvalidArgument, uri.ToString(), "credentials in the endpoint URL are not accepted (use --option access-key=… --option secret-key=…)");
        }

        var region = Get("region") ?? Env("AWS_REGION") ?? Env("AWS_DEFAULT_REGION") ?? "us-east-1";
        var pathStyle = endpoint is not null;
        if (Get("path-style") is { } pathStyleText && !bool.TryParse(pathStyleText, out pathStyle))
        {
            throw new UnderStorageException(UnderStorageError.InvalidArgument, uri.ToString(), $"path-style must be true or false, not '{pathStyleText}'");
        }

        var partSize = S3Settings.DEFAULT_PART_SIZE;
        if (Get("part-size") is { } partText
            && (!ByteSize.TryParse(partText, out partSize, out _) || partSize < S3Settings.MIN_PART_SIZE || partSize > Math.Min(S3Settings.MAX_PART_SIZE, Array.MaxLength)))
        {
            throw new UnderStorageException(UnderStorageError.InvalidArgument, uri.ToString(), $"part-size '{partText}' must be a size from 5MiB to 2GiB");
        }

        AWSCredentials? credentials;
        var accessKey = Get("access-key");
        var secretKey = Get("secret-key");
        if (accessKey is not null || secretKey is not null)
        {
            if (accessKey is null || secretKey is null)
            {
                throw new UnderStorageException(UnderStorageError.InvalidArgument, uri.ToString(), "access-key and secret-key must be given together");
            }

            credentials = Get("session-token") is { } token
                ? new SessionAWSCredentials(accessKey, secretKey, token)
                : new BasicAWSCredentials(accessKey, secretKey);
        }
        else if (Env("AWS_ACCESS_KEY_ID") is { } envKey && Env("AWS_SECRET_ACCESS_KEY") is { } envSecret)
        {
            credentials = Env("AWS_SESSION_TOKEN") is { } envToken
                ? new SessionAWSCredentials(envKey, envSecret, envToken)
                : new BasicAWSCredentials(envKey, envSecret);
        }
        else
        {
            credentials = TryDefaultCredentials();
        }

        return new S3Settings(uri.Location, uri.Prefix, endpoint, region, pathStyle, credentials, partSize);
    }

    private static AWSCredentials? TryDefaultCredentials()
    {
        try
        {
            // Profiles, web identity, container and instance roles; anonymous access when there are none.
            return DefaultAWSCredentialsIdentityResolver.GetCredentials();
        }
        catch (AmazonClientException)
        {
            return null;
        }
    }
}
