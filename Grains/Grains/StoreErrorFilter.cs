using System.Data.Common;

namespace GrainFs.Grains;

/// <summary>
/// Turns a metadata-store failure that escapes a grain call (the driver's <see cref="DbException"/>: PostgreSQL killed,
/// restarting, unreachable) into a <see cref="GrainFsStoreException"/>, which crosses the wire and which every client
/// path handles as a cluster error; the driver's own exception cannot be serialized, so the caller would get a codec
/// error instead of the cause. Calls that complete at once pass through with no state machine of this filter's own.
/// </summary>
public sealed class StoreErrorFilter : IIncomingGrainCallFilter
{
    public Task Invoke(IIncomingGrainCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var call = context.Invoke();
        return call.IsCompletedSuccessfully ? call : MapAsync(call, context);
    }

    private static async Task MapAsync(Task call, IIncomingGrainCallContext context)
    {
        try
        {
            await call.ConfigureAwait(false);
        }
        catch (DbException e)
        {
            throw new GrainFsStoreException($"{context.InterfaceMethod?.Name ?? "call"}: the metadata store failed: {e.Message}");
        }
    }
}
