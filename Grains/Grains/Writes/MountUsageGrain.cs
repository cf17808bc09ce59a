using GrainFs.DataPlane;
using GrainFs.Storage.Metadata;
using Microsoft.Extensions.Logging;

namespace GrainFs.Grains.Writes;

/// <summary>
/// One mount's usage against its quota: bytes and files written through GrainFS, kept in the metadata store (so every
/// silo and a restart see the same figure), reserved by writers as they write. One activation per mount, off the read path.
/// </summary>
internal sealed partial class MountUsageGrain(IMetadataStore store, ILogger<MountUsageGrain> logger) : Grain, IMountUsageGrain
{
    private MountInfo? _mount;
    private MountUsage _usage;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _mount = await GrainFactory.GetGrain<IMountTableGrain>(IMountTableGrain.Key).ResolveAsync(this.GetPrimaryKeyLong());
        _usage = await store.LoadUsageAsync(this.GetPrimaryKeyLong(), cancellationToken);
    }

    public async ValueTask<WriteOutcome> ReserveAsync(long bytes, long files)
    {
        if (_mount is null)
        {
            return new WriteOutcome(FsStatus.Stale, $"mount {this.GetPrimaryKeyLong()} no longer exists");
        }

        var options = _mount.Options;
        if (options.QuotaBytes > 0 && _usage.Bytes + bytes > options.QuotaBytes)
        {
            GrainFsMetrics.WritesRefused.Add(1, new KeyValuePair<string, object?>("reason", "quota"));
            LogRefused(logger, _mount.Path, "bytes");
            return new WriteOutcome(FsStatus.QuotaExceeded,
                $"{_mount.Path}: quota-bytes {ByteSize.Format(options.QuotaBytes)} exceeded ({ByteSize.Format(_usage.Bytes)} held, {ByteSize.Format(bytes)} more asked)");
        }

        if (options.QuotaFiles > 0 && _usage.Files + files > options.QuotaFiles)
        {
            GrainFsMetrics.WritesRefused.Add(1, new KeyValuePair<string, object?>("reason", "quota"));
            LogRefused(logger, _mount.Path, "files");
            return new WriteOutcome(FsStatus.QuotaExceeded, $"{_mount.Path}: quota-files {options.QuotaFiles} exceeded ({_usage.Files} files held)");
        }

        _usage = await store.AddUsageAsync(this.GetPrimaryKeyLong(), new MountUsage(bytes, files));
        return WriteOutcome.Ok;
    }

    public async ValueTask ReleaseAsync(long bytes, long files) =>
        _usage = await store.AddUsageAsync(this.GetPrimaryKeyLong(), new MountUsage(-bytes, -files));

    public ValueTask<(long Bytes, long Files)> GetAsync() => ValueTask.FromResult((_usage.Bytes, _usage.Files));

    [LoggerMessage(Level = LogLevel.Information, Message = "A write into {Mount} was refused: over its {What} quota")]
    private static partial void LogRefused(ILogger logger, string mount, string what);
}
