using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace GrainFs.Client;

/// <summary>Grain calls of the SDK's parts: cluster failures become EIO / ETIMEDOUT values that name what was asked.</summary>
internal sealed partial class GrainCalls(IGrainFactory grains, ILogger logger, TimeSpan? failoverTimeout = null)
{
    /// <summary>How long a call is waited for before it is made again (<see cref="RetriedCallAsync{T}"/>).</summary>
    public static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(8);

    private readonly TimeSpan _failover = failoverTimeout ?? TimeSpan.FromSeconds(60);

    public IGrainFactory Grains => grains;

    /// <summary>
    /// A call that may be made twice with the same effect and whose answer comes at once: a question (a lookup, a listing
    /// page — a grain busy listing answers Busy rather than wait — the mount table), a fast seal or a commit of a written
    /// version. Made again when the cluster does not answer it in <see cref="AttemptTimeout"/> or answers that its silo is
    /// gone, until the failover timeout. A silo killed while holding the call (the grain's, or the gateway the call went
    /// through) would otherwise keep the caller waiting the whole response timeout (30 s) and then fail it, although the
    /// grain is active again elsewhere within seconds; the abandoned attempt's answer, if it ever comes, is dropped.
    /// </summary>
    public async ValueTask<FsResult<T>> RetriedCallAsync<T>(Func<ValueTask<T>> call, string what, CancellationToken cancellationToken = default)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(_failover.TotalSeconds * Stopwatch.Frequency);
        var pause = TimeSpan.FromMilliseconds(100);
        for (var attempt = 1; ; attempt++)
        {
            var left = TimeSpan.FromSeconds((double)(deadline - Stopwatch.GetTimestamp()) / Stopwatch.Frequency);
            try
            {
                return FsResult<T>.Ok(await call().AsTask().WaitAsync(left < AttemptTimeout ? left : AttemptTimeout, cancellationToken).ConfigureAwait(false));
            }
            catch (Exception e) when (e is TimeoutException or SiloUnavailableException or OrleansMessageRejectionException && left > pause)
            {
                LogRetried(logger, what, attempt, e.Message);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                return Fail<T>(e, what);
            }

            await Task.Delay(pause, cancellationToken).ConfigureAwait(false);
            pause = TimeSpan.FromMilliseconds(Math.Min(1000, pause.TotalMilliseconds * 2));
        }
    }

    /// <summary>
    /// A call made once; a call the cluster could not deliver (its silo unreachable, not yet declared dead: Orleans
    /// rejects the message before sending it) is made again until the failover timeout, as nothing of it ran.
    /// </summary>
    public async ValueTask<FsResult<T>> CallAsync<T>(Func<ValueTask<T>> call, string what)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(_failover.TotalSeconds * Stopwatch.Frequency);
        var pause = TimeSpan.FromMilliseconds(100);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return FsResult<T>.Ok(await call().ConfigureAwait(false));
            }
            catch (OrleansMessageRejectionException e) when (Stopwatch.GetTimestamp() + (long)(pause.TotalSeconds * Stopwatch.Frequency) < deadline)
            {
                LogRetried(logger, what, attempt, e.Message);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                return Fail<T>(e, what);
            }

            await Task.Delay(pause).ConfigureAwait(false);
            pause = TimeSpan.FromMilliseconds(Math.Min(1000, pause.TotalMilliseconds * 2));
        }
    }

    // A failed call as a value naming what was asked; an exception no cluster failure explains goes on up.
    private FsResult<T> Fail<T>(Exception e, string what)
    {
        switch (e)
        {
            case GrainFsAccessDeniedException:
                LogCallFailed(logger, what, e.Message);
                return FsResult<T>.Fail(FsStatus.AccessDenied, $"{what}: {e.Message}");
            case TimeoutException:
                LogCallFailed(logger, what, e.Message);
                return FsResult<T>.Fail(FsStatus.TimedOut, $"{what}: the cluster did not answer in time");
            case OrleansException or SiloUnavailableException or InvalidOperationException or ObjectDisposedException or Orleans.Serialization.SerializerException:
                LogCallFailed(logger, what, e.Message);
                return FsResult<T>.Fail(FsStatus.IoError, $"{what}: cluster error: {FirstLine(e.Message)}");
            default:
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
                return default!;
        }
    }

    // Orleans puts stack traces of inner exceptions into some messages: a caller's error is one line.
    private static string FirstLine(string message) => message.AsSpan().IndexOfAny('\r', '\n') is var end and >= 0 ? message[..end] : message;

    [LoggerMessage(Level = LogLevel.Information, Message = "Cluster call for {What} asked again (attempt {Attempt}): {Reason}")]
    private static partial void LogRetried(ILogger logger, string what, int attempt, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cluster call for {What} failed: {Reason}")]
    private static partial void LogCallFailed(ILogger logger, string what, string reason);
}
