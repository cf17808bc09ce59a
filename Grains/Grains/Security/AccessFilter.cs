using System.Collections.Concurrent;
using System.Reflection;
using GrainFs.DataPlane.Security;
using Microsoft.Extensions.Logging;

namespace GrainFs.Grains.Security;

/// <summary>
/// Checks every grain call a silo serves against the method's <see cref="AccessAttribute"/>: a call marked by a silo
/// passes; any other must carry a valid session token of an identity the rule admits (admin; reader or writer of the
/// mount the call concerns, taken from the directory grain's key, the usage grain's key or an <see cref="IMountScoped"/>
/// argument). Methods without an attribute are for silos only. Refusals throw <see cref="GrainFsAccessDeniedException"/>
/// naming the caller, the call and the mount, and are logged and counted; audited calls are recorded in the audit log.
/// </summary>
public sealed partial class AccessFilter(SiloSecurity security, MountAccess access, AuditLog audit, ILogger<AccessFilter> logger) : IIncomingGrainCallFilter
{
    private static readonly ConcurrentDictionary<MethodInfo, Rule> Rules = new();
    private static readonly ConcurrentDictionary<GrainId, long> DirectoryMounts = new();

    // Most calls are decided without waiting (the token's check is cached, the mount table is in memory): they go on
    // to the grain with no state machine, allocation or request-context change of this filter's own.
    public Task Invoke(IIncomingGrainCallContext context)
    {
        var rule = RuleOf(context.InterfaceMethod);
        if (rule.LocalOnly || rule.Level == Access.Anonymous || security.Tokens.IsSiloMark(RequestContext.Get(SecurityContextKeys.SiloMark) as string))
        {
            return context.Invoke();
        }

        var principal = security.Tokens.Verify(RequestContext.Get(SecurityContextKeys.Token) as string);
        if (principal is null)
        {
            return Task.FromException(Deny(context, null, "the call carries no valid session (a client logs in with a certificate of this cluster)"));
        }

        switch (rule.Level)
        {
            case Access.SiloOnly:
                return Task.FromException(Deny(context, principal, "it is for silos only"));
            case Access.Admin when !principal.IsAdmin:
                return Task.FromException(Deny(context, principal, "it needs an admin identity"));
            case Access.Read or Access.Write:
                if (MountOf(context, rule) is not { } mount)
                {
                    return Task.FromException(Deny(context, principal, "the call names no mount"));
                }

                var check = access.CheckAsync(principal, mount, rule.Level == Access.Write);
                if (!check.IsCompletedSuccessfully)
                {
                    return CheckedAsync(check, context, principal, rule);
                }

                if (check.Result is { } reason)
                {
                    return Task.FromException(Deny(context, principal, reason));
                }

                break;
        }

        return rule.Audit ? AuditedAsync(context, principal) : context.Invoke();
    }

    private async Task CheckedAsync(ValueTask<string?> check, IIncomingGrainCallContext context, Principal principal, Rule rule)
    {
        if (await check is { } reason)
        {
            throw Deny(context, principal, reason);
        }

        await (rule.Audit ? AuditedAsync(context, principal) : context.Invoke());
    }

    private async Task AuditedAsync(IIncomingGrainCallContext context, Principal principal)
    {
        try
        {
            await context.Invoke();
            audit.Record(principal, Describe(context), Outcome(context.Result));
        }
        catch (Exception e)
        {
            audit.Record(principal, Describe(context), "failed: " + e.Message);
            throw;
        }
    }

    /// <summary>The rule of a grain interface method (for tests: every client-facing method has one).</summary>
    public static (Access Level, bool Audit) RuleFor(MethodInfo method)
    {
        var rule = RuleOf(method);
        return (rule.Level, rule.Audit);
    }

    private static Rule RuleOf(MethodInfo method) => Rules.GetOrAdd(method, static m =>
    {
        // Timer ticks come through the call filters too; they are local by construction (their invoker cannot be sent).
        if (m.DeclaringType?.Name == "IGrainTimerInvoker")
        {
            return new Rule(Access.SiloOnly, false, -1, LocalOnly: true, []);
        }

        // The one system target a client calls before it can log in: the cluster's type manifest (no data, no effects).
        if (m.DeclaringType?.Name == "IClusterManifestSystemTarget")
        {
            return new Rule(Access.Anonymous, false, -1, false, []);
        }

        var attribute = m.GetCustomAttribute<AccessAttribute>();
        if (attribute is null)
        {
            // Interfaces not GrainFS's own (the management grain, the dashboard's) are for silos and admins.
            var ours = m.DeclaringType?.Namespace?.StartsWith("GrainFs", StringComparison.Ordinal) == true;
            return new Rule(ours ? Access.SiloOnly : Access.Admin, false, -1, false, []);
        }

        var parameters = m.GetParameters();
        var mountParameter = Array.FindIndex(parameters, p => p.Name == "mountId" && p.ParameterType == typeof(long));
        var scoped = Enumerable.Range(0, parameters.Length).Where(i => typeof(IMountScoped).IsAssignableFrom(parameters[i].ParameterType)).ToArray();
        return new Rule(attribute.Level, attribute.Audit, mountParameter, false, scoped);
    });

    private static long? MountOf(IIncomingGrainCallContext context, Rule rule)
    {
        var request = context.Request;
        foreach (var i in rule.ScopedParameters)
        {
            if (request.GetArgument(i) is IMountScoped scoped)
            {
                return scoped.MountId;
            }
        }

        if (rule.MountParameter >= 0 && request.GetArgument(rule.MountParameter) is long id)
        {
            return id;
        }

        var type = context.InterfaceMethod.DeclaringType;
        if (type == typeof(IDirectoryGrain))
        {
            return DirectoryMount(context.TargetId);
        }

        return type == typeof(IMountUsageGrain) ? context.TargetId.GetIntegerKey() : null;
    }

    // The mount of a directory grain, parsed from its key once per grain (a bounded cache: directories in use).
    private static long? DirectoryMount(GrainId grain)
    {
        if (DirectoryMounts.TryGetValue(grain, out var known))
        {
            return known;
        }

        long mount;
        try
        {
            mount = DirectoryKey.Parse(grain.Key.ToString()!).MountId;
        }
        catch (FormatException)
        {
            return null;
        }

        if (DirectoryMounts.Count >= 100_000)
        {
            DirectoryMounts.Clear();
        }

        DirectoryMounts[grain] = mount;
        return mount;
    }

    private GrainFsAccessDeniedException Deny(IIncomingGrainCallContext context, Principal? principal, string reason)
    {
        var who = principal?.ToString() ?? "an unauthenticated caller";
        var message = $"EACCES: {who} may not call {Describe(context)}: {reason}";
        SiloSecurity.CountDenied("grain-call");
        LogDenied(logger, message);
        if (principal is not null)
        {
            audit.Record(principal, Describe(context), "denied: " + reason);
        }

        return new GrainFsAccessDeniedException(message);
    }

    private static string Describe(IIncomingGrainCallContext context)
    {
        var method = context.InterfaceMethod;
        var target = context.TargetId.Key.ToString();
        var arguments = new List<string>();
        var request = context.Request;
        for (var i = 0; i < request.GetArgumentCount() && i < 4; i++)
        {
            arguments.Add(AuditLog.Summarize(request.GetArgument(i)));
        }

        return $"{method.DeclaringType?.Name}.{method.Name}({string.Join(", ", arguments)}) on {target}";
    }

    private static string Outcome(object? result) => result switch
    {
        MountResult { Status: not FsStatus.Ok } r => $"{r.Status.ErrnoName()}: {r.Message}",
        _ => "ok",
    };

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Message}")]
    private static partial void LogDenied(ILogger logger, string message);

    private sealed record Rule(Access Level, bool Audit, int MountParameter, bool LocalOnly, int[] ScopedParameters);
}

/// <summary>
/// Marks every call a silo makes as a silo's (so the callee's <see cref="AccessFilter"/> lets it through), except calls
/// to clients (observers), which get neither the mark nor the session token of the call being served.
/// </summary>
public sealed class SiloCallMarker(SiloSecurity security) : IOutgoingGrainCallFilter
{
    public Task Invoke(IOutgoingGrainCallContext context)
    {
        if (context.TargetId.IsClient())
        {
            RequestContext.Remove(SecurityContextKeys.SiloMark);
            RequestContext.Remove(SecurityContextKeys.Token);
        }
        else if (security.Tokens.CurrentMark() is var mark && !ReferenceEquals(RequestContext.Get(SecurityContextKeys.SiloMark), mark))
        {
            // Set only when it changes (once a minute per call chain): each Set copies the request context.
            RequestContext.Set(SecurityContextKeys.SiloMark, mark);
        }

        return context.Invoke();
    }
}
