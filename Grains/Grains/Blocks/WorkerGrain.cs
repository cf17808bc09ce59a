using GrainFs.DataPlane.Blocks;
using GrainFs.Storage.Cache;
using GrainFs.Storage.UnderStorage;

namespace GrainFs.Grains.Blocks;

/// <summary>
/// The worker of one silo: the control endpoint of its tier store. Batches are carried out by the store's own
/// background machinery; the grain only awaits them, so no disk or network I/O blocks a grain turn.
/// </summary>
[SiloNamePlacement]
internal sealed class WorkerGrain(BlockFiller filler, LocalSilo silo) : Grain, IWorkerGrain
{
    /// <summary>Fills started at once by one batch (several batches run at once; an object store serves a bounded number of streams well).</summary>
    public const int MaxParallelFills = 8;

    private TierStore Store => filler.Store;

    private bool Misplaced => this.GetPrimaryKeyString() != silo.Name;

    public ValueTask<WorkerReport> GetReportAsync()
    {
        var report = Store.GetReport();
        return ValueTask.FromResult(new WorkerReport(
            Misplaced ? this.GetPrimaryKeyString() + " (gone; answered by " + silo.Name + ")" : silo.Name,
            silo.Host,
            [.. report.Tiers.Select(t => new TierUsage(t.Name, t.Path, t.Capacity, t.Used, t.Blocks, t.Hits))],
            report.Policy,
            report.Requests,
            report.Misses,
            report.Fills,
            report.FillBytes,
            report.Evictions,
            report.Corrupt,
            new Dictionary<string, long>(report.BytesServedBySource)));
    }

    public async ValueTask<BatchResult> LoadAsync(BlockSource[] blocks, bool? pin, DateTime? expiresUtc)
    {
        var flags = pin == true ? BlockFile.FlagPinned : (ushort)0;
        var expires = expiresUtc?.ToUniversalTime().Ticks ?? 0;
        var handled = 0;
        long bytes = 0;
        var failures = 0;
        string? firstError = null;
        var held = new List<BlockKey>();
        var running = new List<BlockFill>();

        async Task Settle(BlockFill fill)
        {
            try
            {
                await fill.Completion;
                handled++;
                bytes += fill.Length;
            }
            catch (Exception e)
            {
                failures++;
                firstError ??= e is UnderStorageException u ? u.Message : e.Message;
            }
        }

        foreach (var source in blocks)
        {
            var start = await filler.StartAsync(source, flags, expires);
            if (start.Status != FsStatus.Ok)
            {
                failures++;
                firstError ??= start.Message;
                continue;
            }

            if (start.Fill is null)
            {
                held.Add(start.Key);
                handled++;
                continue;
            }

            running.Add(start.Fill);
            if (running.Count >= MaxParallelFills)
            {
                // Bounded: wait for the oldest before starting more.
                await Settle(running[0]);
                running.RemoveAt(0);
            }
        }

        foreach (var fill in running)
        {
            await Settle(fill);
        }

        if (held.Count > 0 && (pin is not null || expiresUtc is not null))
        {
            await Store.SetFlagsAsync(held, pin, expiresUtc is null ? null : expires);
        }

        return new BatchResult(handled, bytes, failures, firstError);
    }

    public async ValueTask<BatchResult> FreeAsync(string[] keys)
    {
        var (freed, bytes) = await Store.FreeAsync(Parse(keys));
        return new BatchResult(freed, bytes, 0, null);
    }

    public async ValueTask<BatchResult> SetFlagsAsync(string[] keys, bool? pin, DateTime? expiresUtc)
    {
        var changed = await Store.SetFlagsAsync(Parse(keys), pin, expiresUtc?.ToUniversalTime().Ticks);
        return new BatchResult(changed, 0, 0, null);
    }

    public async ValueTask<BatchResult> CopyBlockAsync(string key, int length, string fromEndpoint)
    {
        if (!BlockKey.TryParse(key, out var parsed))
        {
            return new BatchResult(0, 0, 1, $"'{key}' is not a block key");
        }

        var fill = Store.StartFill(parsed, length, _ => ValueTask.FromResult<Stream>(new DataPortStream(fromEndpoint, parsed, length)));
        if (fill is null)
        {
            return new BatchResult(1, 0, 0, null);
        }

        try
        {
            await fill.Completion;
            return new BatchResult(1, length, 0, null);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or TimeoutException)
        {
            return new BatchResult(0, 0, 1, $"copy of block {key} from {fromEndpoint} failed: {e.Message}");
        }
    }

    public Task RecordAccessAsync(string[] keys)
    {
        Store.RecordAccess(Parse(keys));
        return Task.CompletedTask;
    }

    private static List<BlockKey> Parse(string[] keys)
    {
        var parsed = new List<BlockKey>(keys.Length);
        foreach (var text in keys)
        {
            if (BlockKey.TryParse(text, out var key))
            {
                parsed.Add(key);
            }
        }

        return parsed;
    }
}
