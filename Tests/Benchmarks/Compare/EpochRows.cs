using System.Diagnostics;
using System.Globalization;
using System.Text;
using GrainFs.Tests.Infrastructure;

namespace GrainFs.Benchmarks.Compare;

/// <summary>An accelerator emulation run: the accelerators kept ≥ 90% busy (0: not even one) and their utilisation.</summary>
internal sealed record Emulated(int Accelerators, double Utilisation);

/// <summary>One system's figures in the epoch section (null: not measured).</summary>
internal sealed class EpochRow
{
    public required string System { get; init; }

    /// <summary>How the epochs were drawn: "random" (a RandomSampler) or "order" (the same, wrapped in EpochOrderSampler).</summary>
    public required string Sampler { get; init; }

    /// <summary>Samples/s of the first epoch after every cache of the system was dropped.</summary>
    public double? ColdEpoch { get; set; }

    /// <summary>Samples/s of the epoch after it.</summary>
    public double? WarmEpoch { get; set; }

    /// <summary>Samples/s over the epochs after a warm-up, the dataset twice the cache.</summary>
    public double? HalfCache { get; set; }

    /// <summary>Files fetched from the object store per epoch over those epochs, as a share of the files (GrainFS only; 0.5 is the least any cache of half the dataset can fetch).</summary>
    public double? HalfCacheFetched { get; set; }

    /// <summary>Prefetch fills, hits and wasted over those epochs (GrainFS only).</summary>
    public long[]? HalfCachePrefetch { get; set; }

    /// <summary>Accelerators a cold first epoch kept ≥ 90% busy in the emulation, and their utilisation (0 accelerators: even one was not).</summary>
    public Emulated? ColdAccelerators { get; set; }

    /// <summary>The same over an epoch with the dataset twice the cache.</summary>
    public Emulated? HalfCacheAccelerators { get; set; }

    public string? Failure { get; set; }
}

/// <summary>
/// What announcing the read order buys a PyTorch loader: DataLoader epochs (decode + resize, <see cref="Workers"/>
/// workers, batches of 32) through FUSE, a RandomSampler with and without GrainFS's EpochOrderSampler, next to local disk
/// and rclone in the same run. A cold first epoch (every cache dropped) and the epoch after it, on the comparison's
/// GrainFS deployment (a cache that holds the dataset); then, on a deployment whose cache holds half the images (and an
/// rclone whose cache may hold half), a warm-up epoch and <see cref="SteadyEpochs"/> more.
/// </summary>
internal static class EpochRows
{
    /// <summary>DataLoader workers: two, as the comparison's decode row (one per core here).</summary>
    public const int Workers = 2;

    /// <summary>Epochs measured after the warm-up with the dataset twice the cache.</summary>
    public const int SteadyEpochs = 5;

    public sealed record Context(
        string Work, string Dataset, int Images, long ImageBytes, S3rverServer Server, GrainFsDeployment GrainFs, ChildProcesses Children,
        string Python, string SiloDll, string CliDll, Action<string> Progress, int Batch, int ComputeMs);

    public static async Task<List<EpochRow>> RunAsync(Context c, CancellationToken ct)
    {
        var rows = new List<EpochRow>();

        var local = new EpochRow { System = "local disk", Sampler = "random" };
        rows.Add(local);
        await MeasureAsync(local, async () =>
        {
            var disk = new LocalDiskSystem(c.Dataset);
            await disk.MakeColdAsync(ct);
            (local.ColdEpoch, local.WarmEpoch) = Two(await EpochsAsync(c, "local disk", c.Dataset, 2, order: false, ct));
            local.ColdAccelerators = await AcceleratorsAsync(c, "local disk", c.Dataset, local.ColdEpoch!.Value, false, () => disk.MakeColdAsync(ct), ct);
        });

        // Each system below is stopped once measured (its daemon, its cache), so that they do not share the machine.

        // GrainFS, with a cache that holds the dataset: the comparison's deployment, a mount of its own.
        var fuse = new GrainFsFuseSystem(c.GrainFs, Path.Combine(c.Work, "mnt", "grainfs-epochs"), c.Children, "GrainFS FUSE epochs");
        await using (fuse)
        {
            var random = new EpochRow { System = "GrainFS FUSE", Sampler = "random" };
            var order = new EpochRow { System = "GrainFS FUSE", Sampler = "order" };
            rows.Add(random);
            rows.Add(order);
            await MeasureAsync(random, async () =>
            {
                await fuse.StartAsync(ct);
                await fuse.MakeColdAsync(ct);
                (random.ColdEpoch, random.WarmEpoch) = Two(await EpochsAsync(c, "GrainFS FUSE", fuse.Folder, 2, order: false, ct));
                random.ColdAccelerators = await AcceleratorsAsync(c, "GrainFS FUSE", fuse.Folder, random.ColdEpoch!.Value, false, () => fuse.MakeColdAsync(ct), ct);
            });
            await MeasureAsync(order, async () =>
            {
                await fuse.MakeColdAsync(ct);
                (order.ColdEpoch, order.WarmEpoch) = Two(await EpochsAsync(c, "GrainFS FUSE", fuse.Folder, 2, order: true, ct));
                order.ColdAccelerators = await AcceleratorsAsync(c, "GrainFS FUSE", fuse.Folder, order.ColdEpoch!.Value, true, () => fuse.MakeColdAsync(ct), ct);
            });
            await c.Children.StopAsync(fuse.Name);
        }

        var rclone = new RcloneSystem(c.Server, c.Work, c.Children, "rclone-epochs");
        await using (rclone)
        {
            var row = new EpochRow { System = "rclone", Sampler = "random" };
            rows.Add(row);
            await MeasureAsync(row, async () =>
            {
                await rclone.StartAsync(ct);
                await rclone.MakeColdAsync(ct);
                (row.ColdEpoch, row.WarmEpoch) = Two(await EpochsAsync(c, "rclone", rclone.Folder, 2, order: false, ct));
                row.ColdAccelerators = await AcceleratorsAsync(c, "rclone", rclone.Folder, row.ColdEpoch!.Value, false, () => rclone.MakeColdAsync(ct), ct);
            });
            await c.Children.StopAsync(rclone.Name);
        }

        // The dataset twice the cache: a MEM tier of half the images' bytes (block headers included in the count).
        var half = c.ImageBytes / 2;
        c.Progress($"epochs: a GrainFS deployment whose cache holds half the images ({half / 1e6:N0} MB)");
        await using (var small = await GrainFsDeployment.StartAsync(c.Children, c.Server, c.Work, c.SiloDll, c.CliDll, half, ct, name: "compare-half", memoryOnly: true))
        {
            var smallFuse = new GrainFsFuseSystem(small, Path.Combine(c.Work, "mnt", "grainfs-half"), c.Children, "GrainFS FUSE half cache");
            await using (smallFuse)
            {
                await smallFuse.StartAsync(ct);
                foreach (var ordered in new[] { false, true })
                {
                    var row = rows.First(r => r.System == "GrainFS FUSE" && r.Sampler == (ordered ? "order" : "random"));
                    await MeasureAsync(row, async () =>
                    {
                        await smallFuse.MakeColdAsync(ct);
                        var steady = await SteadyAsync(c, small, smallFuse.Folder, ordered, ct);
                        (row.HalfCache, row.HalfCacheFetched, row.HalfCachePrefetch) = steady;
                        // Steady state already: each emulated epoch is one more epoch of the same kind.
                        row.HalfCacheAccelerators = await AcceleratorsAsync(c, $"GrainFS FUSE half cache ({row.Sampler})", smallFuse.Folder, row.HalfCache!.Value, ordered, () => Task.CompletedTask, ct, dropPageCache: true);
                    });
                }

                await c.Children.StopAsync(smallFuse.Name);
            }

            await c.Children.StopAsync("grainfs-silo-compare-half");
        }

        var smallRclone = new RcloneSystem(c.Server, c.Work, c.Children, "rclone-half", ["--vfs-cache-max-size", half.ToString(CultureInfo.InvariantCulture), "--vfs-cache-poll-interval", "5s"]);
        await using (smallRclone)
        {
            var row = rows.First(r => r.System == "rclone");
            await MeasureAsync(row, async () =>
            {
                await smallRclone.StartAsync(ct);
                await smallRclone.MakeColdAsync(ct);
                var epochs = await EpochsAsync(c, "rclone half cache", smallRclone.Folder, SteadyEpochs + 1, order: false, ct, dropPageCache: true);
                row.HalfCache = epochs.Skip(1).Average();
                row.HalfCacheAccelerators = await AcceleratorsAsync(c, "rclone half cache", smallRclone.Folder, row.HalfCache.Value, false, () => Task.CompletedTask, ct, dropPageCache: true);
            });
            await c.Children.StopAsync(smallRclone.Name);
        }

        return rows;

        async Task MeasureAsync(EpochRow row, Func<Task> measure)
        {
            try
            {
                await measure();
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                if (e is HarnessException)
                {
                    throw;
                }

                row.Failure = e.Message;
                c.Progress($"epochs, {row.System} ({row.Sampler}): FAILED: {e.Message}");
            }
        }
    }

    private static (double?, double?) Two(List<double> epochs) => (epochs[0], epochs[1]);

    // A warm-up epoch, then the steady epochs: their mean samples/s, the share of the files the worker fetched per epoch,
    // and its prefetch fills, hits and wasted over them.
    private static async Task<(double, double, long[])> SteadyAsync(Context c, GrainFsDeployment grainfs, string folder, bool ordered, CancellationToken ct)
    {
        var label = $"GrainFS FUSE half cache ({(ordered ? "order" : "random")})";
        await EpochsAsync(c, label + ", warm-up", folder, 1, ordered, ct, dropPageCache: true);
        var before = await ReportAsync(grainfs, ct);
        var epochs = await EpochsAsync(c, label, folder, SteadyEpochs, ordered, ct, dropPageCache: true);
        await Task.Delay(TimeSpan.FromSeconds(3), ct); // the daemon reports short-circuit reads every 2 s
        var after = await ReportAsync(grainfs, ct);
        var fetched = (double)(after.Fills - before.Fills) / SteadyEpochs / c.Images;
        return (epochs.Average(), fetched,
            [after.Prefetch.Fills - before.Prefetch.Fills, after.Prefetch.Hits - before.Prefetch.Hits, after.Prefetch.Wasted - before.Prefetch.Wasted]);
    }

    private static async Task<(long Fills, WorkerPrefetch Prefetch)> ReportAsync(GrainFsDeployment grainfs, CancellationToken ct)
    {
        var workers = GrainFsSdkSystem.Check(await grainfs.Client.GetReportAsync(ct));
        var prefetch = new WorkerPrefetch(workers.Sum(w => w.Prefetch?.Fills ?? 0), workers.Sum(w => w.Prefetch?.Bytes ?? 0), workers.Sum(w => w.Prefetch?.Hits ?? 0), workers.Sum(w => w.Prefetch?.Wasted ?? 0), 0);
        return (workers.Sum(w => w.Fills), prefetch);
    }

    /// <summary>
    /// The accelerator emulation run for real over an epoch of the same kind (cold: after <paramref name="makeCold"/>):
    /// the training loop hands each batch to one of N accelerators, each busy <see cref="Context.ComputeMs"/> per batch,
    /// and waits while all are busy. N starts at what <paramref name="rate"/> (the epoch measured without them) would
    /// keep ≥ 90% busy; when the run falls short, N goes down (six epochs at most). Returns the N kept ≥ 90% busy and
    /// their utilisation (0 and the utilisation of one accelerator when not even one was).
    /// </summary>
    private static async Task<Emulated> AcceleratorsAsync(Context c, string label, string folder, double rate, bool order, Func<Task> makeCold, CancellationToken ct, bool dropPageCache = false)
    {
        var perAccelerator = c.Batch * 1000.0 / c.ComputeMs;
        var accelerators = Math.Max(1, (int)Math.Floor(rate / (0.9 * perAccelerator)));
        for (var attempt = 0; ; attempt++)
        {
            await makeCold();
            var utilisation = (await EpochsAsync(c, $"{label}, {accelerators} emulated accelerator(s)", folder, 1, order, ct, dropPageCache, accelerators)).Single();
            if (utilisation >= 0.9)
            {
                return new Emulated(accelerators, utilisation);
            }

            if (accelerators == 1 || attempt == 5)
            {
                // Not even one (or no count found within six epochs): none is claimed.
                return new Emulated(0, utilisation);
            }

            accelerators = Math.Max(1, Math.Min(accelerators - 1, (int)Math.Floor(accelerators * utilisation / 0.9)));
        }
    }

    /// <summary>
    /// Runs <paramref name="epochs"/> DataLoader epochs (decode + resize) in one process; samples/s of each, or with
    /// <paramref name="accelerators"/> the emulated accelerators' utilisation of each.
    /// </summary>
    private static async Task<List<double>> EpochsAsync(Context c, string label, string folder, int epochs, bool order, CancellationToken ct, bool dropPageCache = false, int accelerators = 0)
    {
        c.Progress($"epochs: {label}, {epochs} DataLoader epoch(s), {(order ? "EpochOrderSampler" : "RandomSampler")}");
        var script = Path.Combine(AppContext.BaseDirectory, "dataloader_epoch.py");
        var start = new ProcessStartInfo(c.Python, [script, folder, "decode", Workers.ToString(CultureInfo.InvariantCulture), epochs.ToString(CultureInfo.InvariantCulture), order ? "order" : "none", dropPageCache ? "drop" : "keep", accelerators.ToString(CultureInfo.InvariantCulture), c.ComputeMs.ToString(CultureInfo.InvariantCulture)])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["PYTHONPATH"] = Path.Combine(Repo.Root, "Client", "Python");
        using var python = Process.Start(start)!;
        var output = python.StandardOutput.ReadToEndAsync(ct);
        var error = python.StandardError.ReadToEndAsync(ct);
        await python.WaitForExitAsync(ct);
        if (python.ExitCode != 0)
        {
            throw new InvalidOperationException($"the DataLoader over {folder} failed: {(await error).Trim().Split('\n').LastOrDefault()}");
        }

        var warnings = (await error).Split('\n').FirstOrDefault(l => l.Contains("grainfs:", StringComparison.Ordinal));
        if (order && warnings is not null)
        {
            throw new InvalidOperationException($"the order was not announced: {warnings.Trim()}");
        }

        // A line is the epoch's samples/s, then with accelerators their utilisation.
        var rates = (await output).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => double.Parse(l.Split(' ')[accelerators > 0 ? 1 : 0], CultureInfo.InvariantCulture)).ToList();
        if (rates.Count != epochs)
        {
            throw new InvalidOperationException($"the DataLoader printed {rates.Count} epochs of {epochs}");
        }

        c.Progress($"epochs: {label}: " + string.Join(", ", rates.Select(r => r.ToString(accelerators > 0 ? "P1" : "N0", CultureInfo.InvariantCulture))) + (accelerators > 0 ? " busy" : " samples/s"));
        return rates;
    }

    /// <summary>The section of the results: absolute figures and the ratios the goals name.</summary>
    public static string Markdown(List<EpochRow> rows, int batch, int computeMs, double directS3FilesPerSecond)
    {
        static string F(double? value) => value is { } v ? v.ToString("N0", CultureInfo.InvariantCulture) : "—";
        static string R(double? value, double? baseline) => value is { } v && baseline is { } b && b > 0 ? (v / b).ToString("F2", CultureInfo.InvariantCulture) : "—";

        static string A(Emulated? measured) =>
            measured is { } m ? string.Create(CultureInfo.InvariantCulture, $"{m.Accelerators} ({m.Utilisation:P0})") : "—";

        var text = new StringBuilder();
        text.AppendLine("## Epochs: a cold first epoch, and a dataset twice the cache");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"PyTorch DataLoader epochs over the images (decode + resize to 112×112, {Workers} workers, batches of 32), each system read through its folder; `random` draws epochs with a RandomSampler, `order` with the same RandomSampler wrapped in `grainfs.torch.EpochOrderSampler`, which announces each epoch's order to the mount before reading it (same seed, same permutations). Cold: every cache of the system dropped, then the first epoch; warm: the epoch after it. Half cache: a second GrainFS deployment whose only tier holds half the images' bytes (and rclone with `--vfs-cache-max-size` of the same), a warm-up epoch, then the mean of {SteadyEpochs} epochs, the kernel's page cache dropped before each (else it would hold the whole dataset above either cache); fetched: the files the worker filled from the object store per epoch, as a share of the files (a cache of half the dataset must fetch at least 0.5 of a random epoch); prefetch: the worker's fills ahead of the reader, those the reader then read (hits), and those evicted unread (wasted), over those epochs. Accelerators: the emulation run for real over one more epoch of the same kind (cold: every cache dropped again; half cache: one more steady epoch): the training loop hands each batch of {batch} to one of N emulated accelerators, each busy {computeMs} ms per batch, and waits while all are busy; the most accelerators kept ≥ 90% busy, starting from what the epoch's rate allows and stepping down when the run falls short, with their measured utilisation in brackets (0: not even one was). The object store's ceiling with 8 readers is the direct S3 row's cold small-file rate above: {directS3FilesPerSecond:N0} files/s.");
        text.AppendLine();
        text.AppendLine("| system | sampler | cold epoch samples/s | warm epoch samples/s | cold ÷ warm | accelerators, cold | half cache samples/s | half cache fetched per epoch | prefetch fills / hits / wasted | accelerators, half cache |");
        text.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var r in rows)
        {
            text.AppendLine(r.Failure is not null
                ? $"| {r.System} | {r.Sampler} | failed: {r.Failure} | | | | | | | |"
                : $"| {r.System} | {r.Sampler} | {F(r.ColdEpoch)} | {F(r.WarmEpoch)} | {R(r.ColdEpoch, r.WarmEpoch)} | {A(r.ColdAccelerators)} | {F(r.HalfCache)} | {(r.HalfCacheFetched is { } h ? h.ToString("F2", CultureInfo.InvariantCulture) : "—")} | {(r.HalfCachePrefetch is { } p ? string.Join(" / ", p) : "—")} | {A(r.HalfCacheAccelerators)} |");
        }

        var random = rows.FirstOrDefault(r => r.System == "GrainFS FUSE" && r.Sampler == "random" && r.Failure is null);
        var order = rows.FirstOrDefault(r => r.System == "GrainFS FUSE" && r.Sampler == "order" && r.Failure is null);
        if (random is not null && order is not null)
        {
            text.AppendLine();
            text.AppendLine("| goal | figure | goal |");
            text.AppendLine("| --- | --- | --- |");
            text.AppendLine($"| cold first epoch with the sampler ÷ a warm epoch | {R(order.ColdEpoch, order.WarmEpoch)} | ≥ 0.8 where the object store allows |");
            text.AppendLine($"| the object store's ceiling ÷ a warm epoch (what it allows) | {R(directS3FilesPerSecond, order.WarmEpoch)} | — |");
            text.AppendLine($"| cold first epoch, with ÷ without the sampler | {R(order.ColdEpoch, random.ColdEpoch)} | ≥ 2 |");
            text.AppendLine($"| dataset twice the cache, with the sampler ÷ TinyLFU without it | {R(order.HalfCache, random.HalfCache)} | ≥ 1.5 |");
        }

        return text.ToString();
    }
}
