using GrainFs.DataPlane.Security;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;

namespace GrainFs.Grains.Security;

/// <summary>Logs clients in on the silo they call: checks the certificate and a fresh signature, then issues a session token.</summary>
[StatelessWorker]
internal sealed partial class AuthGrain(SiloSecurity security, CallerIdentity caller, ILogger<AuthGrain> logger) : Grain, IAuthGrain
{
    public ValueTask<SessionGrant> LoginAsync(LoginRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Certificate is not { Length: > 0 and < 16384 } || request.Nonce is not { Length: >= 16 and <= 64 } || request.Signature is not { Length: > 0 and < 1024 })
        {
            return Refuse("a malformed login");
        }

        System.Security.Cryptography.X509Certificates.X509Certificate2 certificate;
        try
        {
            certificate = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificate(request.Certificate);
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            return Refuse("a login whose certificate does not parse");
        }

        using (certificate)
        {
            var principal = security.Trust.Validate(certificate, Accepts.Anyone, out var reason);
            if (principal is null)
            {
                return Refuse(reason);
            }

            var now = DateTimeOffset.UtcNow;
            var signed = DateTimeOffset.FromUnixTimeSeconds(Math.Clamp(request.UnixSeconds, 0, 253402300799));
            if ((now - signed).Duration() > LoginProof.MaxSkew)
            {
                return Refuse($"a login by {principal} signed at {signed:u}, more than {LoginProof.MaxSkew.TotalMinutes:0} minutes from this silo's clock ({now:u})");
            }

            if (!IdentityProof.Verify(certificate, LoginProof.Data(security.ClusterId, request.UnixSeconds, request.Nonce), request.Signature))
            {
                return Refuse($"a login by {principal} whose signature does not match its certificate");
            }

            var (token, expires) = security.Tokens.Issue(principal, SessionTokens.DefaultLifetime);
            LogLogin(logger, principal.ToString());
            return ValueTask.FromResult(new SessionGrant(token, principal.Name, principal.Kind.Unit(), expires.UtcDateTime));
        }
    }

    public ValueTask<string> WhoAmIAsync() => ValueTask.FromResult(caller.Current?.ToString() ?? "a silo");

    // The access filter has checked that the caller may write the mount.
    public ValueTask<WriteCapability> GrantWritesAsync(long mountId)
    {
        var (expires, mac) = security.Tokens.IssueWriteCapability(mountId);
        return ValueTask.FromResult(new WriteCapability(mountId, expires, mac));
    }

    private ValueTask<SessionGrant> Refuse(string reason)
    {
        SiloSecurity.CountDenied("login");
        LogRefused(logger, reason);
        throw new GrainFsAccessDeniedException($"login refused: {reason}");
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Session issued to {Principal}")]
    private static partial void LogLogin(ILogger logger, string principal);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Login refused: {Reason}")]
    private static partial void LogRefused(ILogger logger, string reason);
}
