using System.Text.Json;
using GrainFs.Storage.Cache;
using GrainFs.Storage.Metadata;
using Microsoft.AspNetCore.Http;

namespace GrainFs.Silo.Hosting;

/// <summary>
/// The silo's health for probes: /healthz answers 200 while the process serves HTTP; /readyz answers 200 once the silo
/// is an active member of its cluster, at least one cache tier is in service and the metadata store answers, else
/// 503; both with a JSON body naming each check (never a credential). Served on the dashboard port and on
/// <see cref="GrainFsSiloOptions.HealthPort"/>, without a password (probes carry none; the answer holds no secret).
/// </summary>
public sealed class SiloHealth(ISiloStatusOracle membership, TierStore tiers, IMetadataStore metadata)
{
    /// <summary>How long the metadata store is given to answer a readiness check.</summary>
    public static readonly TimeSpan StoreTimeout = TimeSpan.FromSeconds(3);

    /// <summary>One check: its name, whether it passed, and what was found.</summary>
    public sealed record Check(string Name, bool Ok, string Detail);

    /// <summary>Runs the readiness checks.</summary>
    public async Task<IReadOnlyList<Check>> ReadinessAsync(CancellationToken cancellationToken)
    {
        var status = membership.CurrentStatus;
        var report = tiers.GetReport();
        var inService = report.Tiers.Where(t => t.OutOfService is null).Select(t => t.Name).ToList();
        var outOfService = report.Tiers.Where(t => t.OutOfService is not null).Select(t => $"{t.Name} out of service ({t.OutOfService})");
        Check store;
        try
        {
            await metadata.PingAsync(cancellationToken).AsTask().WaitAsync(StoreTimeout, cancellationToken).ConfigureAwait(false);
            store = new Check("metadata", true, $"{metadata.Kind} answers");
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            store = new Check("metadata", false, $"{metadata.Kind} does not answer: {(e is TimeoutException ? $"no answer in {StoreTimeout.TotalSeconds:0} s" : e.Message)}");
        }

        return
        [
            new Check("cluster", status == SiloStatus.Active, $"silo {status}"),
            new Check("tiers", inService.Count > 0, inService.Count > 0
                ? string.Join(", ", inService.Select(n => n + " in service").Concat(outOfService))
                : "no tier in service: " + string.Join("; ", outOfService)),
            store,
        ];
    }

    /// <summary>Answers /healthz or /readyz; false for any other path.</summary>
    public async Task<bool> TryAnswerAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        switch (context.Request.Path.Value)
        {
            case "/healthz":
                await WriteAsync(context, StatusCodes.Status200OK, new { status = "alive" }).ConfigureAwait(false);
                return true;
            case "/readyz":
                var checks = await ReadinessAsync(context.RequestAborted).ConfigureAwait(false);
                var ready = checks.All(c => c.Ok);
                await WriteAsync(context, ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable, new
                {
                    status = ready ? "ready" : "not ready",
                    checks = checks.Select(c => new { name = c.Name, ok = c.Ok, detail = c.Detail }),
                }).ConfigureAwait(false);
                return true;
            default:
                return false;
        }
    }

    private static Task WriteAsync(HttpContext context, int status, object body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        context.Response.Headers.CacheControl = "no-store";
        return context.Response.WriteAsync(JsonSerializer.Serialize(body) + "\n", context.RequestAborted);
    }
}
