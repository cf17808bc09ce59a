namespace GrainFs.Storage.UnderStorage;

/// <summary>A parsed under-storage URI.</summary>
/// <param name="Scheme">The provider's scheme ("file", "s3").</param>
/// <param name="Location">For file: the absolute folder path. For s3: the bucket.</param>
/// <param name="Prefix">For s3: the key prefix without leading or trailing slash. Empty for file.</param>
public sealed record UnderStorageUri(string Scheme, string Location, string Prefix)
{
    /// <summary>The canonical text of the URI.</summary>
    public override string ToString() => Scheme == "file"
        ? "file://" + Location
        : Prefix.Length == 0 ? $"{Scheme}://{Location}" : $"{Scheme}://{Location}/{Prefix}";
}

/// <summary>
/// One kind of under-storage: how its URIs look, which mount options it understands, and how an adapter is made.
/// A new store (GCS, Azure Blob, HDFS) is one file with its adapter and provider, and one line in
/// <see cref="UnderStorageFactory.BuiltIn"/>.
/// </summary>
public interface IUnderStorageProvider
{
    /// <summary>The URI scheme, lower case.</summary>
    string Scheme { get; }

    /// <summary>An example URI for messages, e.g. s3://bucket/prefix.</summary>
    string Example { get; }

    /// <summary>Mount option keys this scheme understands besides the common ones.</summary>
    IReadOnlyList<string> Properties { get; }

    /// <summary>Parses what follows "scheme://"; false with a reason that names <paramref name="uri"/>.</summary>
    bool TryParse(string uri, string rest, out UnderStorageUri parsed, out string? error);

    /// <summary>Creates the adapter. Throws <see cref="UnderStorageException"/> (InvalidArgument) on a bad property.</summary>
    IUnderStorage Create(UnderStorageUri uri, IReadOnlyDictionary<string, string> properties, Func<string, string?> environment);
}

/// <summary>
/// Makes under-storage adapters from a URI and mount properties, through the provider registered for the URI's scheme.
/// An unknown scheme is an error. Providers read settings they are not given from the silo's environment
/// (for S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL_S3).
/// </summary>
public sealed class UnderStorageFactory
{
    /// <summary>The providers GrainFS ships with; file:// mounts may be any folder the process can read.</summary>
    public static readonly IReadOnlyList<IUnderStorageProvider> BuiltIn = BuiltInConfined(null);

    private static readonly UnderStorageFactory Default = new();
    private readonly Dictionary<string, IUnderStorageProvider> _providers = new(StringComparer.Ordinal);
    private readonly Func<string, string?> _environment;

    /// <summary>Creates a factory over <paramref name="providers"/> (the built-in ones by default), reading the process environment or <paramref name="environment"/> (tests).</summary>
    public UnderStorageFactory(Func<string, string?>? environment = null, IEnumerable<IUnderStorageProvider>? providers = null)
    {
        _environment = environment ?? Environment.GetEnvironmentVariable;
        foreach (var provider in providers ?? BuiltIn)
        {
            if (!_providers.TryAdd(provider.Scheme, provider))
            {
                throw new ArgumentException($"two under-storage providers for scheme '{provider.Scheme}'", nameof(providers));
            }
        }
    }

    /// <summary>
    /// The providers GrainFS ships with, file:// mounts confined to folders at or below <paramref name="allowedLocalRoots"/>
    /// (full paths with their symbolic links resolved; null or empty: any folder the process can read).
    /// </summary>
    public static IReadOnlyList<IUnderStorageProvider> BuiltInConfined(IReadOnlyList<string>? allowedLocalRoots, Microsoft.Extensions.Logging.ILoggerFactory? loggers = null) =>
        [new LocalUnderStorageProvider(allowedLocalRoots, loggers), new S3UnderStorageProvider()];

    /// <summary>The schemes this factory knows.</summary>
    public IReadOnlyCollection<string> Schemes => _providers.Keys;

    /// <summary>Mount option keys of a scheme (empty for an unknown one).</summary>
    public IReadOnlyList<string> PropertiesOf(string scheme) => _providers.TryGetValue(scheme, out var provider) ? provider.Properties : [];

    /// <summary>Mount option keys of a built-in scheme (empty for an unknown one).</summary>
    public static IReadOnlyList<string> BuiltInProperties(string scheme) => Default.PropertiesOf(scheme);

    /// <summary>Parses and checks a URI with the built-in providers; false with a reason that names it.</summary>
    public static bool TryParse(string? uri, out UnderStorageUri parsed, out string? error) => Default.TryParseUri(uri, out parsed, out error);

    /// <summary>Parses and checks a URI; false with a reason that names it.</summary>
    public bool TryParseUri(string? uri, out UnderStorageUri parsed, out string? error)
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
            error = $"'{uri}' is not an under-storage URI (use {string.Join(" or ", _providers.Values.Select(p => p.Example))})";
            return false;
        }

        var scheme = uri[..separator].ToLowerInvariant();
        if (!_providers.TryGetValue(scheme, out var provider))
        {
            error = $"unsupported under-storage scheme '{scheme}' in '{uri}' (supported: {string.Join(", ", _providers.Keys)})";
            return false;
        }

        return provider.TryParse(uri, uri[(separator + 3)..], out parsed, out error);
    }

    /// <summary>Checks that every path component is a real name (no empty, '.' or '..' component, no NUL).</summary>
    public static bool CleanComponents(string path, string uri, out string? error)
    {
        error = null;
        if (IsCleanRelative(path))
        {
            return true;
        }

        error = path.Contains('\0', StringComparison.Ordinal)
            ? $"'{uri.Replace("\0", "\\0", StringComparison.Ordinal)}': the path may not contain NUL"
            : $"'{uri}': the path may not contain empty, '.' or '..' components";
        return false;
    }

    /// <summary>True for "" or names joined by single slashes, none of them empty, '.' or '..', and no NUL anywhere.</summary>
    public static bool IsCleanRelative(ReadOnlySpan<char> path)
    {
        if (path.IsEmpty)
        {
            return true;
        }

        if (path.Contains('\0'))
        {
            return false;
        }

        while (true)
        {
            var slash = path.IndexOf('/');
            var part = slash < 0 ? path : path[..slash];
            if (part.IsEmpty || part is "." || part is "..")
            {
                return false;
            }

            if (slash < 0)
            {
                return true;
            }

            path = path[(slash + 1)..];
        }
    }

    /// <summary>
    /// Throws <see cref="UnderStorageException"/> (InvalidArgument) naming <paramref name="relative"/> unless it passes
    /// <see cref="IsCleanRelative"/>. Adapters are given checked paths and check again: a path must never reach
    /// anything outside their root by its words.
    /// </summary>
    public static void ThrowIfNotRelative(string relative, string uri)
    {
        if (!IsCleanRelative(relative))
        {
            throw new UnderStorageException(UnderStorageError.InvalidArgument, uri,
                $"path '{relative.Replace("\0", "\\0", StringComparison.Ordinal)}' is not a relative path below the root (empty, '.' or '..' component, or NUL)");
        }
    }

    /// <summary>Mount properties GrainFS keeps for itself (the block-name key), which no adapter sees.</summary>
    public static readonly IReadOnlyList<string> GrainFsProperties = ["name-key"];

    /// <summary>Checks mount properties against what the scheme understands; null when all are known.</summary>
    public string? CheckProperties(string scheme, IEnumerable<string> keys)
    {
        var known = PropertiesOf(scheme);
        foreach (var key in keys)
        {
            if (!known.Contains(key) && !GrainFsProperties.Contains(key))
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
        if (!TryParseUri(uri, out var parsed, out var error))
        {
            throw new UnderStorageException(UnderStorageError.InvalidArgument, uri, error!);
        }

        var unknown = CheckProperties(parsed.Scheme, properties.Keys);
        if (unknown is not null)
        {
            throw new UnderStorageException(UnderStorageError.InvalidArgument, parsed.ToString(), unknown);
        }

        return _providers[parsed.Scheme].Create(parsed, properties, _environment);
    }
}
