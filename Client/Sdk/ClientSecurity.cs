using System.Security.Cryptography;
using GrainFs.DataPlane.Security;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;

namespace GrainFs.Client;

/// <summary>
/// A client's side of the trust model: sealed connections to the gateways (a mutual TLS 1.3 handshake with its
/// certificate, then AES-256-GCM frames), and a session token on every grain call, got by a login that proves its
/// certificate's key and renewed at half its life.
/// </summary>
public static class ClientSecurityExtensions
{
    /// <summary>
    /// Adds TLS and sessions to an Orleans client with the credentials in <paramref name="credentials"/> (null: the
    /// cluster's default folder, created on first use). Throws <see cref="CredentialException"/> naming a missing or unsafe file.
    /// </summary>
    public static IClientBuilder UseGrainFsSecurity(this IClientBuilder builder, string? credentials, string clusterId) =>
        builder.UseGrainFsSecurity(new ClientSession(ClusterTrust.Open(credentials, clusterId, IdentityKind.Client), clusterId));

    /// <summary>Adds TLS and sessions to an Orleans client for <paramref name="session"/>.</summary>
    public static IClientBuilder UseGrainFsSecurity(this IClientBuilder builder, ClientSession session)
    {
        var trust = session.Trust;
        builder.Services.AddSingleton(session);
        builder.AddOutgoingGrainCallFilter<SessionCallFilter>();
        builder.Configure<ClientConnectionOptions>(connections => connections.ConfigureConnection(c => c.UseSealedClient(new SealedConnectionOptions(trust, Accepts.Silos, failure =>
        {
            switch (failure.Kind)
            {
                case HandshakeFailureKind.PeerRefused:
                    session.LastRefusal = $"the gateway's certificate is not one of this cluster's ({failure.Reason}; credentials {trust.Folder})";
                    break;
                case HandshakeFailureKind.RefusedByPeer:
                    session.LastRefusal = $"{failure.Reason}; the credentials ({trust.Folder}) are not this cluster's";
                    break;
            }
        }))));
        return builder;
    }
}

/// <summary>A client's session with the cluster: its token, renewed by logging in again before it expires.</summary>
public sealed class ClientSession(ClusterTrust trust, string clusterId)
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private string? _token;
    private DateTime _renewUtc;

    /// <summary>The credentials the session logs in with.</summary>
    public ClusterTrust Trust => trust;

    /// <summary>Who the cluster says this client is, once logged in.</summary>
    public string? Identity { get; private set; }

    /// <summary>Why the last TLS handshake was refused on this side, if one was.</summary>
    public string? LastRefusal { get; internal set; }

    /// <summary>The current token, logging in first when there is none or it is past half its life.</summary>
    public async ValueTask<string> TokenAsync(IGrainFactory grains)
    {
        if (_token is { } token && DateTime.UtcNow < _renewUtc)
        {
            return token;
        }

        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_token is { } again && DateTime.UtcNow < _renewUtc)
            {
                return again;
            }

            var certificate = trust.Certificate;
            var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            var nonce = RandomNumberGenerator.GetBytes(16);
            var signature = IdentityProof.Sign(certificate, LoginProof.Data(clusterId, now, nonce));
            var grant = await grains.GetGrain<IAuthGrain>(0).LoginAsync(new LoginRequest(certificate.RawData, now, nonce, signature)).ConfigureAwait(false);
            _token = grant.Token;
            Identity = $"{grant.Name} ({grant.Kind})";
            _renewUtc = DateTime.UtcNow + ((grant.ExpiresUtc - DateTime.UtcNow) / 2);
            return grant.Token;
        }
        finally
        {
            _gate.Release();
        }
    }
}

/// <summary>Puts the session token on every grain call the client makes (the login itself goes without).</summary>
internal sealed class SessionCallFilter(ClientSession session, IServiceProvider services) : IOutgoingGrainCallFilter
{
    private IGrainFactory? _grains;

    // With a current token (nearly always) the call goes on with no state machine of this filter's own.
    public Task Invoke(IOutgoingGrainCallContext context)
    {
        // The login itself, and the type manifest the client fetches while it connects (before it can log in), go without.
        var type = context.InterfaceMethod.DeclaringType;
        if ((type == typeof(IAuthGrain) && context.InterfaceMethod.Name == nameof(IAuthGrain.LoginAsync)) || type?.Name == "IClusterManifestSystemTarget")
        {
            return context.Invoke();
        }

        _grains ??= services.GetRequiredService<IGrainFactory>();
        var token = session.TokenAsync(_grains);
        if (!token.IsCompletedSuccessfully)
        {
            return WithTokenAsync(token, context);
        }

        SetToken(token.Result);
        return context.Invoke();
    }

    private static async Task WithTokenAsync(ValueTask<string> token, IOutgoingGrainCallContext context)
    {
        SetToken(await token.ConfigureAwait(false));
        await context.Invoke().ConfigureAwait(false);
    }

    // Set only when it changes: each Set copies the request context.
    private static void SetToken(string token)
    {
        if (!ReferenceEquals(RequestContext.Get(SecurityContextKeys.Token), token))
        {
            RequestContext.Set(SecurityContextKeys.Token, token);
        }
    }
}
