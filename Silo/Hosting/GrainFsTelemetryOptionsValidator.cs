using Microsoft.Extensions.Options;

namespace GrainFs.Silo.Hosting;

/// <summary>Checks <see cref="GrainFsTelemetryOptions"/> before the silo starts: a known exporter, an absolute OTLP endpoint.</summary>
public sealed class GrainFsTelemetryOptionsValidator : IValidateOptions<GrainFsTelemetryOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, GrainFsTelemetryOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (!GrainFsTelemetryOptions.KnownExporters.Contains(options.Exporter))
        {
            failures.Add($"GrainFs:Telemetry:Exporter = '{options.Exporter}': use one of {string.Join(", ", GrainFsTelemetryOptions.KnownExporters)}");
        }

        if (options.OtlpEndpoint is { IsAbsoluteUri: false } endpoint)
        {
            failures.Add($"GrainFs:Telemetry:OtlpEndpoint = '{endpoint.OriginalString}': not an absolute URL");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
