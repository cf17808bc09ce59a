using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using GrainFs.DataPlane.Security;

namespace GrainFs.Tests.Security;

/// <summary>
/// The data port's record layer over a real loopback TCP connection after a real TLS 1.3 handshake: bytes of every size
/// cross both ways intact, whatever the reader's buffer; a frame altered, forged or too long is refused, not delivered.
/// </summary>
public sealed class SealedStreamTests
{
    private sealed class Pair : IAsyncDisposable
    {
        public required SealedStream Client { get; init; }

        public required SealedStream Server { get; init; }

        public required NetworkStream ClientTransport { get; init; }

        public required NetworkStream ServerTransport { get; init; }

        public async ValueTask DisposeAsync()
        {
            await Client.DisposeAsync();
            await Server.DisposeAsync();
        }
    }

    private static async Task<Pair> ConnectAsync()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=sealed-stream-test", key, HashAlgorithmName.SHA256);
        using var ephemeral = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddHours(1));
        var certificate = X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pkcs12), null);

        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var accept = listener.AcceptSocketAsync();
        var clientSocket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await clientSocket.ConnectAsync((IPEndPoint)listener.LocalEndpoint);
        var serverSocket = await accept;

        var clientTransport = new NetworkStream(clientSocket, ownsSocket: true);
        var serverTransport = new NetworkStream(serverSocket, ownsSocket: true);
        var clientTls = new SslStream(clientTransport, leaveInnerStreamOpen: true, (_, _, _, _) => true);
        var serverTls = new SslStream(serverTransport, leaveInnerStreamOpen: true, (_, _, _, _) => true);
        await Task.WhenAll(
            clientTls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "test", EnabledSslProtocols = SslProtocols.Tls13, ClientCertificates = [certificate] }),
            serverTls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = certificate, ClientCertificateRequired = true, EnabledSslProtocols = SslProtocols.Tls13 }));
        var client = SealedStream.EstablishAsync(clientTls, clientTransport, isClient: true, CancellationToken.None);
        var server = SealedStream.EstablishAsync(serverTls, serverTransport, isClient: false, CancellationToken.None);
        return new Pair { Client = await client, Server = await server, ClientTransport = clientTransport, ServerTransport = serverTransport };
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(12, 4096)]
    [InlineData(SealedStream.MaxFrame, SealedStream.MaxFrame)]
    [InlineData(SealedStream.MaxFrame + 1, 1000)]
    [InlineData(3 * 1024 * 1024 + 7, 1 << 20)]
    public async Task Bytes_cross_both_ways_intact_whatever_the_readers_buffer(int size, int readSize)
    {
        await using var pair = await ConnectAsync();
        var data = RandomNumberGenerator.GetBytes(size);
        foreach (var (writer, reader) in new[] { (pair.Client, pair.Server), (pair.Server, pair.Client) })
        {
            var write = writer.WriteAsync(data).AsTask();
            var received = new byte[size];
            var buffer = new byte[readSize];
            for (var at = 0; at < size;)
            {
                var n = await reader.ReadAsync(buffer.AsMemory(0, Math.Min(readSize, size - at)));
                Assert.True(n > 0, $"the stream ended after {at} of {size} bytes");
                buffer.AsSpan(0, n).CopyTo(received.AsSpan(at));
                at += n;
            }

            await write;
            Assert.Equal(data, received);
        }
    }

    [Fact]
    public async Task A_message_header_travels_in_its_own_frame_so_the_body_reads_straight_into_the_callers_buffer()
    {
        await using var pair = await ConnectAsync();
        var header = RandomNumberGenerator.GetBytes(12);
        var body = RandomNumberGenerator.GetBytes((2 * SealedStream.MaxFrame) + 5);
        var write = pair.Server.WriteMessageAsync(header, body).AsTask();

        // A 12-byte read takes exactly the header; a read as large as the body then gets whole frames of it.
        var gotHeader = new byte[64];
        Assert.Equal(12, await pair.Client.ReadAsync(gotHeader));
        Assert.Equal(header, gotHeader[..12]);
        var gotBody = new byte[body.Length];
        Assert.Equal(SealedStream.MaxFrame, await pair.Client.ReadAsync(gotBody));
        await pair.Client.ReadExactlyAsync(gotBody.AsMemory(SealedStream.MaxFrame));
        await write;
        Assert.Equal(body, gotBody);
    }

    [Fact]
    public async Task The_sealed_bytes_on_the_wire_are_not_the_plaintext()
    {
        // What the server's socket receives, read past the sealed stream: the length, then no trace of the data.
        await using var pair = await ConnectAsync();
        var data = "training sample 0001: a cat on a mat"u8.ToArray();
        await pair.Client.WriteAsync(data);
        var wire = new byte[4 + data.Length + 16];
        await pair.ServerTransport.ReadExactlyAsync(wire);
        Assert.Equal(data.Length, BitConverter.ToInt32(wire, 0));
        Assert.True(wire.AsSpan(4).IndexOf("training"u8) < 0, "plaintext on the wire");
    }

    [Fact]
    public async Task A_forged_frame_is_refused()
    {
        // Someone who can write on the TCP connection (not party to the keys) injects a well-formed frame of their own.
        await using var pair = await ConnectAsync();
        var forged = new byte[4 + 100 + 16];
        BitConverter.TryWriteBytes(forged, 100);
        RandomNumberGenerator.Fill(forged.AsSpan(4));
        await pair.ClientTransport.WriteAsync(forged);
        var error = await Assert.ThrowsAsync<IOException>(async () => await pair.Server.ReadExactlyAsync(new byte[100]));
        Assert.Contains("authentication tag", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_replayed_frame_is_refused()
    {
        // A genuine frame sent twice: the second opens under the next sequence number, so it fails.
        await using var pair = await ConnectAsync();
        await pair.Client.WriteAsync(new byte[] { 1, 2, 3 });
        var frame = new byte[4 + 3 + 16];
        await pair.ServerTransport.ReadExactlyAsync(frame);
        await pair.ClientTransport.WriteAsync(frame);
        await pair.ClientTransport.WriteAsync(frame);

        // The first copy is read as the frame it is; the second is refused.
        Assert.Equal(3, await pair.Server.ReadAsync(new byte[3]));
        await Assert.ThrowsAsync<IOException>(async () => await pair.Server.ReadExactlyAsync(new byte[3]));
    }

    [Fact]
    public async Task An_absurd_frame_length_is_refused_before_any_memory_is_taken()
    {
        await using var pair = await ConnectAsync();
        await pair.ClientTransport.WriteAsync(BitConverter.GetBytes(int.MaxValue));
        var error = await Assert.ThrowsAsync<InvalidDataException>(async () => await pair.Server.ReadExactlyAsync(new byte[16]));
        Assert.Contains($"at most {SealedStream.MaxFrame}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_connection_closed_between_frames_ends_the_stream_and_inside_one_is_an_error()
    {
        await using (var pair = await ConnectAsync())
        {
            await pair.Client.DisposeAsync();
            Assert.Equal(0, await pair.Server.ReadAsync(new byte[16]));
        }

        await using (var pair = await ConnectAsync())
        {
            await pair.ClientTransport.WriteAsync(BitConverter.GetBytes(1000));
            await pair.ClientTransport.WriteAsync(new byte[10]);
            pair.ClientTransport.Socket.Shutdown(SocketShutdown.Send);
            await Assert.ThrowsAnyAsync<IOException>(async () => await pair.Server.ReadExactlyAsync(new byte[1000]));
        }
    }
}
