using System.Net;

namespace GrainFs.Tests.Infrastructure;

/// <summary>
/// An HTTP proxy on loopback in front of a real S3 server that answers the first <c>failures</c> requests
/// with 503 SlowDown, the throttling reply of a busy object store, which moto itself never sends.
/// </summary>
public sealed class FaultProxy : IAsyncDisposable
{
    private readonly HttpListener _listener = new();
    private readonly HttpClient _upstream = new();
    private readonly string _target;
    private readonly Task _loop;
    private readonly List<Task> _handlers = [];
    private int _failuresLeft;
    private int _requests;

    /// <summary>Listens on a free port at once, in front of <paramref name="target"/>, throttling its first <paramref name="failures"/> requests.</summary>
    public FaultProxy(string target, int failures)
    {
        _target = target.TrimEnd('/');
        _failuresLeft = failures;
        Port = Ports.Free();
        _listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>The proxy's port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>The proxy's endpoint URL, given to a client in place of the server's.</summary>
    public string Endpoint => $"http://127.0.0.1:{Port}";

    /// <summary>Requests seen, throttled or not.</summary>
    public int Requests => Volatile.Read(ref _requests);

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            // Requests are served concurrently, as a real server would; each is awaited on dispose.
            lock (_handlers)
            {
                _handlers.RemoveAll(h => h.IsCompleted);
                _handlers.Add(HandleAsync(context));
            }
        }
    }

    private async Task HandleAsync(HttpListenerContext context)
    {
        // Off the accept loop's thread before any work.
        await Task.Yield();
        Interlocked.Increment(ref _requests);
        var response = context.Response;
        try
        {
            if (Interlocked.Decrement(ref _failuresLeft) >= 0)
            {
                response.StatusCode = 503;
                response.ContentType = "application/xml";
                var body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"u8.ToArray();
                await response.OutputStream.WriteAsync(body).ConfigureAwait(false);
                return;
            }

            using var request = new HttpRequestMessage(new HttpMethod(context.Request.HttpMethod), _target + context.Request.RawUrl);
            if (context.Request.HasEntityBody)
            {
                using var buffer = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(buffer).ConfigureAwait(false);
                request.Content = new ByteArrayContent(buffer.ToArray());
            }

            foreach (var name in context.Request.Headers.AllKeys)
            {
                if (name is null || name.Equals("Host", StringComparison.OrdinalIgnoreCase) || name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }

                var values = context.Request.Headers.GetValues(name) ?? [];
                if (!request.Headers.TryAddWithoutValidation(name, values))
                {
                    request.Content?.Headers.TryAddWithoutValidation(name, values);
                }
            }

            using var upstream = await _upstream.SendAsync(request).ConfigureAwait(false);
            response.StatusCode = (int)upstream.StatusCode;
            foreach (var header in upstream.Headers.Concat(upstream.Content.Headers))
            {
                if (!header.Key.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase) && !header.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                {
                    response.Headers[header.Key] = string.Join(",", header.Value);
                }
            }

            var bytes = await upstream.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
            if (context.Request.HttpMethod == "HEAD")
            {
                // A HEAD reply carries the object's length and no body.
                response.ContentLength64 = upstream.Content.Headers.ContentLength ?? 0;
            }
            else
            {
                response.ContentLength64 = bytes.Length;
                await response.OutputStream.WriteAsync(bytes).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is HttpListenerException or HttpRequestException or IOException or ObjectDisposedException)
        {
            // The client or the server went away mid-request: the client sees a broken reply, as it would without the proxy.
        }
        finally
        {
            try
            {
                response.Close();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException)
            {
                // The proxy is stopping.
            }
        }
    }

    /// <summary>Stops listening and waits for the requests in flight.</summary>
    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        _listener.Close();
        await _loop.ConfigureAwait(false);
        Task[] handlers;
        lock (_handlers)
        {
            handlers = [.. _handlers];
        }

        await Task.WhenAll(handlers).ConfigureAwait(false);
        _upstream.Dispose();
    }
}
