using System.Text.RegularExpressions;
using Amazon.Runtime;
using Amazon.Runtime.Credentials;

namespace GrainFs.Storage.UnderStorage;

/// <summary>A parsed under-storage URI.</summary>
/// <param name="Scheme">"file" or "s3".</param>
/// <param name="Location">For file: the absolute folder path. For s3: the bucket.</param>
/// <param name="Prefix">For s3: the key prefix without leading or trailing slash. Empty for file.</param>
public sealed record UnderStorageUri(string Scheme, string Location, string Prefix)
{
    /// <summary>The canonical text of the URI.</summary>
    public override string ToString() => Scheme == "file"
        ? "file://" + Location
        : Prefix.Length == 0 ? $"s3://{Location}" : $"s3://{Location}/{Prefix}";
}

/// <summary>
/// Makes under-storage adapters from a URI and mount properties. S3 settings fall back to the silo's standard
/// AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL_S3).
/// </summary>
public sealed partial class UnderStorageFactory
{
    /// <summary>The supported URI schemes.</summary>
    public static readonly IReadOnlyList<string> Schemes = ["file", "s3"];

    /// <summary>Mount option keys each scheme understands.</summary>
    public static readonly IReadOnlyDictionary<string, IReadOnlyList<string>> PropertiesByScheme = new Dictionary<string, IReadOnlyList<string>>
    {
        ["file"] = [],
        ["s3"] = ["endpoint", "region", "path-style", "access-key", "secret-key", "session-token"],
    };

    private readonly Func<string, string?> _environment;

    /// <summary>Creates a factory reading the process environment, or <paramref name="environment"/> when given (tests).</summary>
    public UnderStorageFactory(Func<string, string?>? environment = null)
    {
        _environment = environment ?? Environment.GetEnvironmentVariable;
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    private static partial Regex BucketName();

    /// <summary>Parses and checks a URI; false with a reason that names it.</summary>
    public static bool TryParse(string? uri, out UnderStorageUri parsed, out string? error)
    {
        parsed = new UnderStorageUri(string.Empty, string.Empty, string.Empty);
        if (string.IsNullOrWhiteSpace(uri))
        {
            error = "under-storage URI is empty";
            return false;
        }

        var separator = uri.IndexOf("://", StringComparison.Ordinal);
        if (separator <= 0)
        {
            error = $"'{uri}' is not an under-storage URI (use file:///absolute/folder or s3://bucket/prefix)";
            return false;
        }

        var scheme = uri[..separator].ToLowerInvariant();
        var rest = uri[(separator + 3)..];
        switch (scheme)
        {
            case "file":
                if (!rest.StartsWith('/'))
                {
                    error = $"'{uri}': a file URI needs an absolute path (file:///data/set)";
                    return false;
                }

                if (!CleanComponents(rest.Trim('/'), out var cleanPath, out error, uri))
                {
                    return false;
                }

                parsed = new UnderStorageUri("file", "/" + cleanPath, string.Empty);
                return true;

            case "s3":
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

                if (!CleanComponents(prefix, out var cleanPrefix, out error, uri))
                {
                    return false;
                }

                parsed = new UnderStorageUri("s3", bucket, cleanPrefix);
                return true;

            default:
                error = $"unsupported under-storage scheme '{scheme}' in '{uri}' (supported: {string.Join(", ", Schemes)})";
                return false;
        }
    }

    private static bool CleanComponents(string path, out string clean, out string? error, string uri)
    {
        clean = path;
        error = null;
        if (path.Length == 0)
        {
            return true;
        }

        foreach (var part in path.Split('/'))
        {
            if (part.Length == 0 || part == "." || part == "..")
            {
                error = $"'{uri}': the path may not contain empty, '.' or '..' components";
                return false;
            }
        }

        return true;
    }

    /// <summary>Checks mount properties against what the scheme understands; null when all are known.</summary>
    public static string? CheckProperties(string scheme, IEnumerable<string> keys)
    {
        var known = PropertiesByScheme.TryGetValue(scheme, out var list) ? list : [];
        foreach (var key in keys)
        {
            if (!known.Contains(key))
            {
                return known.Count == 0
                    ? $"option '{key}' does not apply to {scheme} mounts"
                    : $"option '{key}' does not apply to {scheme} mounts (known: {string.Join(", ", known)})";
            }
        }

        return null;
    }

    /// <summary>Creates the adapter for a mount. Throws <see cref="UnderStorageException"/> (InvalidArgument) on a bad URI or property.</summary>
    public IUnderStorage Create(string uri, IReadOnlyDictionary<string, string> properties)
    {
        if (!TryParse(uri, out var parsed, out var error))
        {
            throw new UnderStorageException(UnderStorageError.InvalidArgument, uri, error!);
        }

        var unknown = CheckProperties(parsed.Scheme, properties.Keys);
        if (unknown is not null)
        {
            throw new UnderStorageException(UnderStorageError.InvalidArgument, parsed.ToString(), unknown);
        }

        return parsed.Scheme switch
        {
            "file" => new LocalUnderStorage(parsed.Location),
            _ => new S3UnderStorage(ResolveS3(parsed, properties)),
        };
    }

    /// <summary>Resolves S3 settings: mount properties first, then the silo's AWS environment.</summary>
    public S3Settings ResolveS3(UnderStorageUri uri, IReadOnlyDictionary<string, string> properties)
    {
        string? Get(string key) => properties.TryGetValue(key, out var value) && value.Length > 0 ? value : null;
        string? Env(string key) => _environment(key) is { Length: > 0 } value ? value : null;

        var endpoint = Get("endpoint") ?? Env("AWS_ENDPOINT_URL_S3") ?? Env("AWS_ENDPOINT_URL");
        if (endpoint is not null && !System.Uri.TryCreate(endpoint, UriKind.Absolute, out _))
        {
            throw new UnderStorageException(UnderStorageError.InvalidArgument, uri.ToString(), $"endpoint '{endpoint}' is not an absolute URL");
        }

        var region = Get("region") ?? Env("AWS_REGION") ?? Env("AWS_DEFAULT_REGION") ?? "us-east-1";
        var pathStyle = endpoint is not null;
        if (Get("path-style") is { } pathStyleText)
        {
            if (!bool.TryParse(pathStyleText, out pathStyle))
            {
                throw new UnderStorageException(UnderStorageError.InvalidArgument, uri.ToString(), $"path-style must be true or false, not '{pathStyleText}'");
            }
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

        return new S3Settings(uri.Location, uri.Prefix, endpoint, region, pathStyle, credentials);
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
