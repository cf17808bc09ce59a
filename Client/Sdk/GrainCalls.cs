using Microsoft.Extensions.Logging;

namespace GrainFs.Client;

/// <summary>Grain calls of the SDK's parts: cluster failures become EIO / ETIMEDOUT values that name what was asked.</summary>
internal sealed partial class GrainCalls(IGrainFactory grains, ILogger logger)
{
    public IGrainFactory Grains => grains;

    public async ValueTask<FsResult<T>> CallAsync<T>(Func<ValueTask<T>> call, string what)
    {
        try
        {
            return FsResult<T>.Ok(await call().ConfigureAwait(false));
        }
        catch (GrainFsAccessDeniedException e)
        {
            LogCallFailed(logger, what, e.Message);
            return FsResult<T>.Fail(FsStatus.AccessDenied, $"{what}: {e.Message}");
        }
        catch (TimeoutException e)
        {
            LogCallFailed(logger, what, e.Message);
            return FsResult<T>.Fail(FsStatus.TimedOut, $"{what}: the cluster did not answer in time");
        }
        catch (Exception e) when (e is OrleansException or SiloUnavailableException or InvalidOperationException or ObjectDisposedException)
        {
            LogCallFailed(logger, what, e.Message);
            return FsResult<T>.Fail(FsStatus.IoError, $"{what}: cluster error: {e.Message}");
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cluster call for {What} failed: {Reason}")]
    private static partial void LogCallFailed(ILogger logger, string what, string reason);
}
