using System.Buffers;
using System.IO.Pipelines;
using System.Security.Cryptography;
using GrainFs.DataPlane.Security;
using GrainFs.Tests.Infrastructure;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;

namespace GrainFs.Tests.Security;

/// <summary>
/// The cluster's connection middleware between two ends joined by in-memory pipes (the wire), each end with real
/// credentials of a cluster: bytes of every size cross both ways intact and never in clear on the wire; a peer of
/// another CA is refused before the application sees the connection; a frame altered on the wire ends the connection.
/// The same middleware carries every silo and gateway connection of the cluster tests.
/// </summary>
public sealed class SealedConnectionTests
{
    private static readonly IServiceProvider Services = new ServiceCollection().BuildServiceProvider();

    // One direction of the wire: what one end writes, copied to what the other end reads, with a record of every byte
    // carried and, when asked, one byte flipped on the way. The wire waits a moment before each delivery and delivers
    // all that was written meanwhile at once, as TCP coalesces: the client's hello and its first messages arrive
    // together, and the server must not lose the messages while it reads the hello.
    private sealed class Direction
    {
        private readonly Pipe _sent = new();
        private readonly Pipe _received = new();
        private readonly MemoryStream _carried = new();

        public Direction() => Carrying = CarryAsync();

        public PipeWriter Writer => _sent.Writer;

        public PipeReader Reader => _received.Reader;

        public Task Carrying { get; }

        public long? FlipAt { get; set; }

        public byte[] Carried
        {
            get
            {
                lock (_carried)
                {
                    return _carried.ToArray();
                }
            }
        }

        private async Task CarryAsync()
        {
            while (true)
            {
                await Task.Delay(20);
                var result = await _sent.Reader.ReadAsync();
                foreach (var segment in result.Buffer)
                {
                    var bytes = segment.ToArray();
                    lock (_carried)
                    {
                        if (FlipAt is { } at && at >= _carried.Length && at < _carried.Length + bytes.Length)
                        {
                            bytes[at - _carried.Length] ^= 0x40;
                        }

                        _carried.Write(bytes);
                    }

                    _received.Writer.Write(bytes);
                }

                await _received.Writer.FlushAsync();

                _sent.Reader.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted)
                {
                    await _received.Writer.CompleteAsync();
                    return;
                }
            }
        }
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input => input;

        public PipeWriter Output => output;
    }

    private sealed record Ends(Task Server, Task Client, Direction ToServer, Direction ToClient);

    private static Ends Connect(ClusterTrust server, ClusterTrust client, Func<ConnectionContext, Task> serverApp, Func<ConnectionContext, Task> clientApp,
        Action<HandshakeFailure>? serverFailed = null, Action<HandshakeFailure>? clientFailed = null)
    {
        var toServer = new Direction();
        var toClient = new Direction();
        var serverSide = new ConnectionBuilder(Services).UseSealedServer(new SealedConnectionOptions(server, Accepts.Anyone, serverFailed)).Run(serverApp).Build();
        var clientSide = new ConnectionBuilder(Services).UseSealedClient(new SealedConnectionOptions(client, Accepts.Silos, clientFailed)).Run(clientApp).Build();
        var serverContext = new DefaultConnectionContext("server") { Transport = new DuplexPipe(toServer.Reader, toClient.Writer) };
        var clientContext = new DefaultConnectionContext("client") { Transport = new DuplexPipe(toClient.Reader, toServer.Writer) };
        clientContext.Items["to-server"] = toServer;
        return new Ends(serverSide(serverContext), clientSide(clientContext), toServer, toClient);
    }

    // A cluster's credentials folder: a CA, a silo identity, a client identity named `who` and a cluster key; the CAs
    // of `alsoTrusting` are trusted too.
    private static string Credentials(string clusterId, string who, string? alsoTrusting = null)
    {
        var folder = TestProcess.NewFolder("sealed-credentials");
        using var ca = CertificateAuthority.Create(folder, clusterId, CertificateAuthority.DefaultCaLifetime, alsoTrusting is null ? null : CredentialFolder.ReadTrustedCas(alsoTrusting));
        ca.Issue(folder, IdentityKind.Silo, "silo-1", CertificateAuthority.DefaultLeafLifetime);
        ca.Issue(folder, IdentityKind.Client, who, CertificateAuthority.DefaultLeafLifetime);
        CredentialFolder.WriteClusterKeys(folder, [CredentialFolder.NewClusterKey()]);
        return folder;
    }

    private static async Task EchoAsync(ConnectionContext context)
    {
        var input = context.Transport.Input;
        while (true)
        {
            var result = await input.ReadAsync();
            foreach (var segment in result.Buffer)
            {
                await context.Transport.Output.WriteAsync(segment);
            }

            input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                await context.Transport.Output.CompleteAsync();
                return;
            }
        }
    }

    [Fact]
    public async Task Bytes_of_every_size_cross_both_ways_intact_and_never_in_clear()
    {
        var folder = Credentials("sealed-test", "alice");
        var sizes = new[] { 1, 100, 4095, SealedConnection.MaxFrame, SealedConnection.MaxFrame + 1, 1 << 20 };
        var sent = sizes.Select(size => RandomNumberGenerator.GetBytes(size)).ToList();
        var ends = Connect(ClusterTrust.Open(folder, "sealed-test", IdentityKind.Silo), ClusterTrust.Open(folder, "sealed-test", IdentityKind.Client), EchoAsync, async context =>
        {
            // Written and read back at once, as a connection's two loops do (the echo cannot keep more than the pipes hold).
            var reading = Task.Run(async () =>
            {
                var input = context.Transport.Input.AsStream(leaveOpen: true);
                foreach (var bytes in sent)
                {
                    var back = new byte[bytes.Length];
                    await input.ReadExactlyAsync(back);
                    Assert.Equal(bytes, back);
                }
            });
            foreach (var bytes in sent)
            {
                await context.Transport.Output.WriteAsync(bytes);
            }

            await reading;
            await context.Transport.Output.CompleteAsync();
        });
        await ends.Client.WaitAsync(TimeSpan.FromSeconds(30));
        await ends.Server.WaitAsync(TimeSpan.FromSeconds(30));

        // The wire carried more than the bytes (the handshake, frame headers and tags) and none of them in clear.
        foreach (var direction in new[] { ends.ToServer, ends.ToClient })
        {
            var wire = direction.Carried;
            Assert.True(wire.Length > sent.Sum(b => b.Length), $"the wire carried {wire.Length} bytes");
            foreach (var bytes in sent.Where(b => b.Length >= 100))
            {
                Assert.Equal(-1, wire.AsSpan().IndexOf(bytes.AsSpan(0, 64)));
            }
        }
    }

    [Fact]
    public async Task A_first_message_that_arrives_with_the_hello_is_answered()
    {
        // Orleans's client sends its preamble and waits for the answer: the message comes with the hello and no more
        // bytes follow it, so a server that lost sight of it would wait for ever.
        var folder = Credentials("sealed-test", "alice");
        var ends = Connect(ClusterTrust.Open(folder, "sealed-test", IdentityKind.Silo), ClusterTrust.Open(folder, "sealed-test", IdentityKind.Client), EchoAsync, async context =>
        {
            await context.Transport.Output.WriteAsync("preamble"u8.ToArray());
            var back = new byte[8];
            await context.Transport.Input.AsStream(leaveOpen: true).ReadExactlyAsync(back);
            Assert.Equal("preamble"u8.ToArray(), back);
            await context.Transport.Output.CompleteAsync();
        });
        await ends.Client.WaitAsync(TimeSpan.FromSeconds(10));
        await ends.Server.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_peer_of_another_cluster_is_refused_before_the_application_sees_it()
    {
        // Mallory's folder trusts the cluster's CA (so her end accepts the silo) but her certificate is of her own CA.
        var ours = Credentials("sealed-test", "alice");
        var theirs = Credentials("sealed-test", "mallory", alsoTrusting: ours);
        HandshakeFailure? serverSaw = null;
        HandshakeFailure? clientSaw = null;
        var served = false;
        var ends = Connect(ClusterTrust.Open(ours, "sealed-test", IdentityKind.Silo), ClusterTrust.Open(theirs, "sealed-test", IdentityKind.Client),
            _ =>
            {
                served = true;
                return Task.CompletedTask;
            },
            _ => throw new InvalidOperationException("the client's application ran"),
            f => serverSaw = f, f => clientSaw = f);
        await ends.Server.WaitAsync(TimeSpan.FromSeconds(30));
        await ends.Client.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(served);

        // The silo refuses her certificate, and her end learns that it was refused.
        Assert.Equal(HandshakeFailureKind.PeerRefused, serverSaw?.Kind);
        Assert.Contains("mallory", serverSaw!.Reason, StringComparison.Ordinal);
        Assert.Contains("not valid for this cluster", serverSaw.Reason, StringComparison.Ordinal);
        Assert.Equal(HandshakeFailureKind.RefusedByPeer, clientSaw?.Kind);
    }

    [Fact]
    public async Task A_frame_altered_on_the_wire_ends_the_connection()
    {
        var folder = Credentials("sealed-test", "alice");
        var payload = RandomNumberGenerator.GetBytes(10_000);
        Exception? serverError = null;
        var ends = Connect(ClusterTrust.Open(folder, "sealed-test", IdentityKind.Silo), ClusterTrust.Open(folder, "sealed-test", IdentityKind.Client),
            async context =>
            {
                try
                {
                    await context.Transport.Input.AsStream(leaveOpen: true).ReadExactlyAsync(new byte[payload.Length]);
                }
                catch (Exception e)
                {
                    serverError = e;
                }
            },
            async context =>
            {
                // Flip a byte inside the first application frame, past the handshake already carried.
                var ends = (Direction)context.Items["to-server"]!;
                ends.FlipAt = ends.Carried.Length + 100;
                await context.Transport.Output.WriteAsync(payload);
                await context.Transport.Output.FlushAsync();
            });
        await ends.Server.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.IsType<IOException>(serverError);
        Assert.Contains("authentication tag", serverError!.Message, StringComparison.Ordinal);
    }
}
