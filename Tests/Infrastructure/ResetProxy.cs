using System.Net;
using System.Net.Sockets;

namespace GrainFs.Tests.Infrastructure;

/// <summary>
/// A TCP proxy on loopback in front of a server (an S3 server) that, while <see cref="ResetAfterBytes"/> is set, resets
/// each connection (RST, as a failing middlebox or a server crash does) once it has carried that many bytes from the
/// server to the client: responses are cut mid-body, which no real server does on command. Unset, bytes pass unchanged.
/// </summary>
public sealed class ResetProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly int _targetPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private readonly List<Task> _connections = [];
    private long _resetAfter;
    private long _resets;
    private int _resetsLeft = -1;

    /// <summary>Listens on a free port of 127.0.0.1 at once, in front of 127.0.0.1:<paramref name="targetPort"/>.</summary>
    public ResetProxy(int targetPort)
    {
        _targetPort = targetPort;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = Task.Run(AcceptAsync);
    }

    /// <summary>The proxy's port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>The proxy's endpoint URL, given to a client in place of the server's.</summary>
    public string Endpoint => $"http://127.0.0.1:{Port}";

    /// <summary>Reset each connection after it carried this many bytes from the server while this is set (null: never).</summary>
    public long? ResetAfterBytes
    {
        get => Volatile.Read(ref _resetAfter) is > 0 and var n ? n : null;
        set => Volatile.Write(ref _resetAfter, value ?? 0);
    }

    /// <summary>How many more connections may be reset (null: any number); each reset counts one down.</summary>
    public int? ResetsLeft
    {
        get => Volatile.Read(ref _resetsLeft) is >= 0 and var n ? n : null;
        set => Volatile.Write(ref _resetsLeft, value ?? -1);
    }

    /// <summary>Connections reset so far.</summary>
    public long Resets => Interlocked.Read(ref _resets);

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            lock (_connections)
            {
                _connections.RemoveAll(c => c.IsCompleted);
                _connections.Add(Task.Run(() => ServeAsync(client)));
            }
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using var downstream = client;
        using var upstream = new TcpClient();
        try
        {
            await upstream.ConnectAsync(IPAddress.Loopback, _targetPort, _stop.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            // The server is down: the client sees its connection closed, as it would see a refusal.
            Reset(downstream);
            return;
        }

        using var done = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        var up = CopyAsync(downstream.GetStream(), upstream.GetStream(), null, done.Token);
        var down = CopyAsync(upstream.GetStream(), downstream.GetStream(), downstream, done.Token);
        await Task.WhenAny(up, down).ConfigureAwait(false);
        await done.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(up, down).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    // Copies one direction; the server-to-client direction (cut != null) counts its bytes and resets the connection past the limit.
    private async Task CopyAsync(NetworkStream from, NetworkStream to, TcpClient? cut, CancellationToken cancellationToken)
    {
        var buffer = new byte[16 << 10];
        long carried = 0;
        try
        {
            while (true)
            {
                var n = await from.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    return;
                }

                if (cut is not null && ResetAfterBytes is { } limit && carried + n > limit && TakeReset())
                {
                    var part = (int)Math.Max(0, limit - carried);
                    await to.WriteAsync(buffer.AsMemory(0, part), cancellationToken).ConfigureAwait(false);
                    await to.FlushAsync(cancellationToken).ConfigureAwait(false);
                    Interlocked.Increment(ref _resets);
                    Reset(cut);
                    return;
                }

                await to.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                if (ResetAfterBytes is not null)
                {
                    carried += n;
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    // One reset allowed by ResetsLeft (always, when it is unset).
    private bool TakeReset()
    {
        while (true)
        {
            var left = Volatile.Read(ref _resetsLeft);
            if (left < 0)
            {
                return true;
            }

            if (left == 0)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _resetsLeft, left - 1, left) == left)
            {
                return true;
            }
        }
    }

    // Closing with a zero linger sends RST instead of FIN.
    private static void Reset(TcpClient client)
    {
        try
        {
            client.Client.LingerState = new LingerOption(true, 0);
            client.Client.Close();
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        await _accepting.ConfigureAwait(false);
        Task[] open;
        lock (_connections)
        {
            open = [.. _connections];
        }

        await Task.WhenAll(open).ConfigureAwait(false);
        _stop.Dispose();
    }
}
