namespace GrainFs.Silo.Hosting;

/// <summary>
/// Where the silo sends its metrics and traces: configuration section <see cref="SECTION"/>, checked at start-up by
/// <see cref="GrainFsTelemetryOptionsValidator"/>. The Prometheus port and listen address are
/// <see cref="GrainFsSiloOptions.MetricsPort"/> and <see cref="GrainFsSiloOptions.ListenAddress"/>.
/// </summary>
public sealed class GrainFsTelemetryOptions
{
    /// <summary>The configuration section these options are bound from.</summary>
    public const string SECTION = "GrainFs:Telemetry";

    /// <summary>Default <see cref="Exporter"/>.</summary>
    public const string DEFAULT_EXPORTER = "prometheus";

    /// <summary>Telemetry exporters.</summary>
    public static readonly IReadOnlyList<string> KnownExporters = ["prometheus", "otlp", "console", "none"];

    /// <summary>The exporter: prometheus, otlp (metrics and traces), console or none; lower case once set up.</summary>
    public string Exporter { get; set; } = DEFAULT_EXPORTER;

    /// <summary>The OTLP endpoint when the exporter is otlp (null: the OTEL_EXPORTER_OTLP_ENDPOINT default).</summary>
    public Uri? OtlpEndpoint { get; set; }
}
