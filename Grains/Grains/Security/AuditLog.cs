using System.Collections;
using System.Text.Json;
using GrainFs.DataPlane.Security;
using Microsoft.Extensions.Logging;

namespace GrainFs.Grains.Security;

/// <summary>
/// The audit log of admin actions and refusals: one JSON line per event (time, who, what, outcome) appended to
/// <c>&lt;state folder&gt;/audit.log</c> (mode 0600) and logged under the category GrainFs.Audit. Secrets never appear:
/// arguments are summarised, and mount options listed as secrets are redacted.
/// </summary>
public sealed partial class AuditLog(string? path, ILogger<AuditLog> logger)
{
    private readonly Lock _gate = new();

    /// <summary>The audit file, or null when events are only logged.</summary>
    public string? Path { get; } = path;

    /// <summary>Records one event.</summary>
    public void Record(Principal who, string what, string outcome)
    {
        var line = JsonSerializer.Serialize(new { time = DateTime.UtcNow.ToString("O"), who = who.Name, kind = who.Kind.Unit(), what, outcome });
        LogEvent(logger, line);
        if (Path is null)
        {
            return;
        }

        lock (_gate)
        {
            try
            {
                var options = new FileStreamOptions { Mode = FileMode.Append, Access = FileAccess.Write, Share = FileShare.ReadWrite };
                if (!OperatingSystem.IsWindows())
                {
                    options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                }

                using var stream = new FileStream(Path, options);
                stream.Write(System.Text.Encoding.UTF8.GetBytes(line + "\n"));
            }
            catch (IOException e)
            {
                LogWriteFailed(logger, Path, e.Message);
            }
        }
    }

    /// <summary>A short, secret-free rendering of a call argument.</summary>
    public static string Summarize(object? argument) => argument switch
    {
        null => "null",
        string s => Quote(s),
        MountRequest r => $"mount {Quote(r.Path)} {Quote(RedactUri(r.Uri))} options [{string.Join(", ", r.Options.Keys.Order(StringComparer.Ordinal).Select(k => MountOptions.SecretKeys.Contains(k) ? k + "=" + MountOptions.Redaction : k + "=" + r.Options[k]))}]",
        BlockSource b => $"block {b.MountId}:{Quote(b.Path)}#{b.Index}",
        ICollection c => $"[{c.Count} items]",
        _ => argument.ToString() is { Length: <= 120 } text ? text : argument.GetType().Name,
    };

    private static string Quote(string s) => s.Length <= 200 ? "'" + s + "'" : "'" + s[..200] + "…'";

    private static string RedactUri(string uri)
    {
        // A URI may carry user:password@ (never a GrainFS form, but users try it).
        var at = uri.IndexOf('@', StringComparison.Ordinal);
        var scheme = uri.IndexOf("://", StringComparison.Ordinal);
        return at > scheme && scheme >= 0 ? uri[..(scheme + 3)] + MountOptions.Redaction + uri[at..] : uri;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "audit {Line}")]
    private static partial void LogEvent(ILogger logger, string line);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cannot append to the audit log {Path}: {Reason}")]
    private static partial void LogWriteFailed(ILogger logger, string path, string reason);
}
