using GrainFs.DataPlane.Security;
using GrainFs.Storage.Metadata;
using GrainFs.Storage.UnderStorage;
using Microsoft.Extensions.Logging;

namespace GrainFs.Grains.Namespace;

/// <summary>
/// The cluster's mount table. Small state (a few records), persisted whole in the metadata store with
/// optimistic concurrency; clients cache it by version, so this grain is never on the read path. Mount credentials
/// are sealed under the cluster key in the store (<see cref="MountSecrets"/>) and opened here when the table loads.
/// </summary>
internal sealed partial class MountTableGrain(
    IMetadataStore store,
    UnderStorageRegistry registry,
    SecretBox secrets,
    GrainFs.Grains.Security.CallerIdentity callers,
    GrainFsClock time,
    ILogger<MountTableGrain> logger) : Grain, IMountTableGrain
{
    /// <summary>
    /// How long a mount request waits for its under-storage to answer: well inside a grain call's 30 s, so that the
    /// caller hears which endpoint did not answer rather than that the cluster did not.
    /// </summary>
    public static readonly TimeSpan ReachabilityTimeout = TimeSpan.FromSeconds(15);

    /// <summary>How often an active mount table checks whether the cluster key was rotated (then it seals its secrets again).</summary>
    public static readonly TimeSpan KeyCheckInterval = TimeSpan.FromSeconds(10);

    private StoredMountTable _stored = StoredMountTable.Empty;
    private MountInfo[] _mounts = [];

    // The cluster key id the stored secrets are sealed under (null: not known to be the current one).
    private string? _sealedUnder;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var toReseal = await LoadAsync(cancellationToken);
        LogLoaded(logger, _mounts.Length, _stored.Version, store.Kind);
        if (_mounts.Any(m => !m.Options.Properties.ContainsKey(MountOptions.NAME_KEY)))
        {
            // Mounts made before block names were keyed get a key now (their cached blocks are refilled under new names).
            // A failure fails the activation: a key handed out must be the one stored. The save seals what was in clear too.
            await SaveAsync([.. _mounts.Select(m => m.Options.Properties.ContainsKey(MountOptions.NAME_KEY) ? m : m with { Options = WithNameKey(m.Options) })], _stored.NextId);
            if (toReseal > 0)
            {
                LogResealed(logger, toReseal, secrets.CurrentKeyId, _stored.Version);
            }
        }
        else if (toReseal > 0)
        {
            await ResealAsync(toReseal);
        }

        if (secrets.HasKeys)
        {
            this.RegisterGrainTimer(CheckClusterKeyAsync, KeyCheckInterval, KeyCheckInterval);
        }
    }

    // Reads the table from the store into this grain; the number of mounts whose secrets want sealing again.
    private async Task<int> LoadAsync(CancellationToken cancellationToken)
    {
        _stored = await store.LoadMountTableAsync(cancellationToken);
        var toReseal = 0;
        var mounts = new List<MountInfo>(_stored.Mounts.Count);
        foreach (var stored in _stored.Mounts)
        {
            var mount = ToInfo(stored);
            var options = MountSecrets.Open(secrets, mount, out var stale, out var problem);
            if (problem is not null)
            {
                // The mount stays listed (and can be unmounted); its under-storage refuses to open with this reason.
                LogNotUnsealed(logger, problem);
            }

            toReseal += stale;
            mounts.Add(mount with { Options = options });
        }

        _mounts = [.. mounts.OrderBy(m => m.Path, StringComparer.Ordinal)];
        // Null while some are in clear or under an older key: the timer tries again when a save here fails.
        _sealedUnder = toReseal == 0 && secrets.HasKeys ? secrets.CurrentKeyId : null;
        return toReseal;
    }

    // A rotated cluster key (cluster.key re-read with a new first line): the secrets are sealed again under it, so that
    // retiring the old key later leaves every mount working.
    private async Task CheckClusterKeyAsync(CancellationToken cancellationToken)
    {
        if (secrets.CurrentKeyId == _sealedUnder)
        {
            return;
        }

        var open = _mounts.Sum(m => m.Options.Properties.Count(p => MountOptions.SecretKeys.Contains(p.Key) && !SecretBox.IsSealed(p.Value)));
        if (open == 0)
        {
            _sealedUnder = secrets.CurrentKeyId;
            return;
        }

        await ResealAsync(open);
    }

    // Secrets found in clear (a table written before sealing) or under a key no longer current: saved again at once, so
    // no clear value stays in the store and no value depends on a key about to be retired.
    private async Task ResealAsync(int count)
    {
        try
        {
            await SaveAsync(_mounts, _stored.NextId);
            LogResealed(logger, count, secrets.CurrentKeyId, _stored.Version);
        }
        catch (Exception e) when (e is MetadataConflictException or InvalidOperationException or System.Data.Common.DbException or TimeoutException)
        {
            // The table is served as loaded; the next mount or unmount saves it sealed.
            LogResealFailed(logger, count, e.Message);
        }
    }

    private static MountInfo ToInfo(StoredMount m) =>
        new(m.Id, m.Path, m.Uri, MountOptionsParser.FromJson(m.OptionsJson), DateTime.SpecifyKind(m.CreatedUtc, DateTimeKind.Utc));

    // Each caller sees every mount, secrets redacted; the block-name key only of the mounts it may read. A silo with
    // --insecure-no-auth (no cluster key) has no identities: every caller reads every mount.
    public ValueTask<MountTableSnapshot> GetTableAsync()
    {
        var caller = callers.Current;
        var everyone = !secrets.HasKeys;
        return ValueTask.FromResult(new MountTableSnapshot(_stored.Version,
            [.. _mounts.Select(m => everyone || (caller is not null && GrainFs.Grains.Security.MountAccess.Decide(caller, m, write: false) is null) ? m.ForReader() : m.Redacted())]));
    }

    private static MountOptions WithNameKey(MountOptions options)
    {
        var properties = new Dictionary<string, string>(options.Properties, StringComparer.Ordinal)
        {
            [MountOptions.NAME_KEY] = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16)),
        };
        return options with { Properties = properties };
    }

    public ValueTask<long> GetVersionAsync() => ValueTask.FromResult(_stored.Version);

    public ValueTask<MountInfo?> ResolveAsync(long mountId)
    {
        foreach (var mount in _mounts)
        {
            if (mount.Id == mountId)
            {
                return ValueTask.FromResult<MountInfo?>(mount);
            }
        }

        return ValueTask.FromResult<MountInfo?>(null);
    }

    public async ValueTask<MountResult> MountAsync(MountRequest request)
    {
        var status = FsPath.TryNormalize(request.Path, out var path, out var error);
        if (status != FsStatus.Ok)
        {
            return Fail(status, $"mount point: {error}");
        }

        if (path == FsPath.Root)
        {
            return Fail(FsStatus.InvalidArgument, "cannot mount at / (the root is virtual: it holds only mount points)");
        }

        foreach (var existing in _mounts)
        {
            if (existing.Path == path)
            {
                return Fail(FsStatus.Exists, $"{path} is already a mount point (of {existing.Uri}); unmount it first");
            }

            if (FsPath.IsSameOrBelow(path, existing.Path))
            {
                return Fail(FsStatus.InvalidArgument, $"{path} is inside the mount {existing.Path} (nested mounts are not allowed)");
            }

            if (FsPath.IsSameOrBelow(existing.Path, path))
            {
                return Fail(FsStatus.InvalidArgument, $"{path} would contain the existing mount {existing.Path} (nested mounts are not allowed)");
            }
        }

        if (!registry.Factory.TryParseUri(request.Uri, out var uri, out error))
        {
            return Fail(FsStatus.InvalidArgument, error!);
        }

        if (!MountOptionsParser.TryParse(uri.Scheme, request.Options, registry.Factory.PropertiesOf(uri.Scheme), out var options, out error))
        {
            return Fail(FsStatus.InvalidArgument, error!);
        }

        var canonical = uri.ToString();
        foreach (var existing in _mounts)
        {
            if (Overlaps(existing.Uri, canonical) && !(existing.Options.ReadOnly && options.ReadOnly))
            {
                return Fail(FsStatus.InvalidArgument,
                    $"{canonical} overlaps {existing.Uri}, already mounted at {existing.Path}; two views of the same data may only both be mounted read-only (--readonly)");
            }
        }

        var check = await CheckReachableAsync(canonical, options);
        if (check is not null)
        {
            return check;
        }

        var mount = new MountInfo(_stored.NextId, path, canonical, WithNameKey(options), time.GetUtcNow().UtcDateTime);
        var mounts = _mounts.Append(mount).OrderBy(m => m.Path, StringComparer.Ordinal).ToArray();
        await SaveAsync(mounts, _stored.NextId + 1);
        LogMounted(logger, mount.Path, mount.Uri, mount.Id, _stored.Version);
        return new MountResult(FsStatus.Ok, null, mount.Redacted(), _stored.Version);
    }

    private async Task<MountResult?> CheckReachableAsync(string uri, MountOptions options)
    {
        IUnderStorage storage;
        try
        {
            storage = registry.Factory.Create(uri, options.Properties);
        }
        catch (UnderStorageException e)
        {
            return Fail(FsStatus.InvalidArgument, e.Message);
        }

        await using (storage)
        {
            // Bounded: this grain serves every mount and unmount, so an endpoint that never answers must not hold it.
            using var deadline = new CancellationTokenSource(ReachabilityTimeout);
            try
            {
                var root = await storage.StatAsync(string.Empty, deadline.Token);
                if (root is null)
                {
                    return Fail(FsStatus.NotFound, $"{uri}: no such directory");
                }

                if (root.Value.Kind != EntryKind.Directory)
                {
                    return Fail(FsStatus.NotADirectory, $"{uri}: not a directory");
                }
            }
            catch (UnderStorageException e)
            {
                return Fail(Errors.ToStatus(e.Error), e.Message);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested)
            {
                return Fail(FsStatus.TimedOut, $"{uri}: no answer within {ReachabilityTimeout.TotalSeconds:0} s");
            }
        }

        return null;
    }

    private static bool Overlaps(string a, string b) =>
        a == b || b.StartsWith(a + "/", StringComparison.Ordinal) || a.StartsWith(b + "/", StringComparison.Ordinal);

    public async ValueTask<MountResult> UnmountAsync(string path)
    {
        var status = FsPath.TryNormalize(path, out var normalized, out var error);
        if (status != FsStatus.Ok)
        {
            return Fail(status, error!);
        }

        var mount = Array.Find(_mounts, m => m.Path == normalized);
        if (mount is null)
        {
            return Fail(FsStatus.NotFound, $"{normalized} is not a mount point");
        }

        await SaveAsync([.. _mounts.Where(m => m.Id != mount.Id)], _stored.NextId);
        await registry.RemoveAsync(mount.Id);
        await store.DeleteMountDataAsync(mount.Id);
        LogUnmounted(logger, mount.Path, mount.Uri, mount.Id, _stored.Version);
        return new MountResult(FsStatus.Ok, null, mount.Redacted(), _stored.Version);
    }

    public async ValueTask<MountResult> SetAccessAsync(string path, IReadOnlyList<string>? readers, IReadOnlyList<string>? writers)
    {
        var status = FsPath.TryNormalize(path, out var normalized, out var error);
        if (status != FsStatus.Ok)
        {
            return Fail(status, error!);
        }

        var index = Array.FindIndex(_mounts, m => m.Path == normalized);
        if (index < 0)
        {
            return Fail(FsStatus.NotFound, $"{normalized} is not a mount point");
        }

        foreach (var name in (readers ?? []).Concat(writers ?? []))
        {
            if (name != "*" && !MountOptionsParser.TryParseNames(name, out _, out var nameError))
            {
                return Fail(FsStatus.InvalidArgument, nameError!);
            }
        }

        var mount = _mounts[index];
        var options = mount.Options with
        {
            Readers = readers is null ? mount.Options.Readers : [.. readers.Distinct(StringComparer.Ordinal)],
            Writers = writers is null ? mount.Options.Writers : [.. writers.Distinct(StringComparer.Ordinal)],
        };
        var mounts = (MountInfo[])_mounts.Clone();
        mounts[index] = mount with { Options = options };
        await SaveAsync(mounts, _stored.NextId);
        return new MountResult(FsStatus.Ok, null, mounts[index].Redacted(), _stored.Version);
    }

    private async Task SaveAsync(MountInfo[] mounts, long nextId)
    {
        var table = new StoredMountTable(
            _stored.Version + 1,
            nextId,
            [.. mounts.Select(m => new StoredMount(m.Id, m.Path, m.Uri, MountOptionsParser.ToJson(MountSecrets.Seal(secrets, m.Uri, m.Options)), m.CreatedUtc))]);
        try
        {
            await store.SaveMountTableAsync(table, _stored.Version);
        }
        catch (Exception e) when (e is MetadataConflictException or System.Data.Common.DbException or TimeoutException or IOException or InvalidOperationException)
        {
            // Another writer (a conflict), or an outcome not known (the commit may have landed and only its
            // acknowledgement been lost): the table is read again, so that this grain never keeps a version the store
            // left behind (every later save would conflict), and the save counts as done when the store holds it.
            if (await ReloadAfterFailedSaveAsync(table) is true)
            {
                LogSaveLanded(logger, table.Version, e.Message);
                return;
            }

            throw;
        }

        _stored = table;
        _mounts = mounts;
        _sealedUnder = secrets.HasKeys ? secrets.CurrentKeyId : null;
    }

    // True when the store holds exactly the table this grain tried to save; null when it could not be read either.
    private async Task<bool?> ReloadAfterFailedSaveAsync(StoredMountTable attempted)
    {
        try
        {
            await LoadAsync(CancellationToken.None);
        }
        catch (Exception e) when (e is System.Data.Common.DbException or TimeoutException or IOException or InvalidOperationException)
        {
            return null;
        }

        return _stored.Version == attempted.Version && _stored.NextId == attempted.NextId
            && _stored.Mounts.Select(m => (m.Id, m.Path, m.Uri)).SequenceEqual(attempted.Mounts.Select(m => (m.Id, m.Path, m.Uri)));
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Mount table: the save of version {Version} failed ({Reason}) but the store holds it: its acknowledgement was lost")]
    private static partial void LogSaveLanded(ILogger logger, long version, string reason);

    private MountResult Fail(FsStatus status, string message)
    {
        LogRefused(logger, message);
        return new MountResult(status, message, null, _stored.Version);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Mount table loaded: {Count} mounts at version {Version} from the {Store} store")]
    private static partial void LogLoaded(ILogger logger, int count, long version, string store);

    [LoggerMessage(Level = LogLevel.Information, Message = "Mounted {Uri} at {Path} (mount {Id}, table version {Version})")]
    private static partial void LogMounted(ILogger logger, string path, string uri, long id, long version);

    [LoggerMessage(Level = LogLevel.Information, Message = "Unmounted {Uri} from {Path} (mount {Id}, table version {Version})")]
    private static partial void LogUnmounted(ILogger logger, string path, string uri, long id, long version);

    [LoggerMessage(Level = LogLevel.Error, Message = "Mount credentials not unsealed: {Problem}")]
    private static partial void LogNotUnsealed(ILogger logger, string problem);

    [LoggerMessage(Level = LogLevel.Information, Message = "Sealed {Count} mount secrets again, under cluster key {KeyId} (they were in clear or under an older key; table version {Version})")]
    private static partial void LogResealed(ILogger logger, int count, string keyId, long version);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Count} mount secrets are in clear or under an older cluster key in the store and could not be sealed again now ({Reason}); the next save seals them")]
    private static partial void LogResealFailed(ILogger logger, int count, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Mount request refused: {Reason}")]
    private static partial void LogRefused(ILogger logger, string reason);
}
