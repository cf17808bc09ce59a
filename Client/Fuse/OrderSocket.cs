using System.Buffers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using GrainFs.Client;
using Microsoft.Extensions.Logging;

namespace GrainFs.Fuse;

/// <summary>
/// The mount daemon's local socket for announced read orders (a training loader's epoch order, from the Python
/// package or any program): a request is a JSON header line (<c>{"v":1,"job":"…","window":bytes,"share":0.25,"parallel":16,"cancel":false}</c>; window, share and parallel optional)
/// followed by the files' paths under the mount point, each ended by a NUL byte, up to the end of the client's
/// stream; the answer is one JSON line (<c>{"ok":true,"job":"…","accepted":N,"outside":M}</c>). The order is
/// prefetched by this daemon's client and outlives the connection. The socket sits at
/// <see cref="PathFor"/> (from the mount point and the daemon's uid, which a client reads from /proc/self/mountinfo),
/// mode 0600, or 0666 on a mount with allow_other, where every local user may use the mount anyway; an announced
/// file is only cached, never handed to a process that could not open it.
/// </summary>
public sealed partial class OrderSocket : IAsyncDisposable
{
    /// <summary>The largest announcement taken (bytes of paths).</summary>
    public const int MaxRequestBytes = 512 << 20;

    private static readonly JsonSerializerOptions Json = new() { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    private readonly Socket _listener;
    private readonly string _mountPoint;
    private readonly string _root;
    private readonly GrainFsClient _client;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Task, byte> _serving = new();
    private readonly string? _keepIn;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, PrefetchOrder> _kept = new(StringComparer.Ordinal);

    private OrderSocket(Socket listener, string path, string mountPoint, string root, GrainFsClient client, ILogger logger, string? keepIn)
    {
        _keepIn = keepIn;
        _listener = listener;
        SocketPath = path;
        _mountPoint = mountPoint;
        _root = root;
        _client = client;
        _logger = logger;
        _accepting = AcceptAsync(_stop.Token);
    }

    /// <summary>Where the socket is.</summary>
    public string SocketPath { get; }

    /// <summary>
    /// The socket of the mount at <paramref name="mountPoint"/> served by a daemon of user <paramref name="uid"/>:
    /// /run/grainfs for root, /tmp/grainfs-UID otherwise; named by the first 16 hex digits of the SHA-256 of the mount point.
    /// </summary>
    public static string PathFor(string mountPoint, uint uid) => MountState.PathOf(mountPoint, uid, ".sock");

    /// <summary>
    /// Listens for orders for the mount at <paramref name="mountPoint"/> (showing GrainFS path <paramref name="root"/>).
    /// With <paramref name="keepIn"/> (a supervised mount's orders folder) every active order is kept there, one file per
    /// job, and the orders a previous serving process kept are announced again (<see cref="RestoreKept"/>).
    /// </summary>
    public static OrderSocket Listen(string mountPoint, string root, bool allowOther, GrainFsClient client, ILogger logger, string? keepIn = null)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("read orders need a Unix socket");
        }

        var uid = Native.GetUid();
        var path = PathFor(mountPoint, uid);
        var folder = Path.GetDirectoryName(path)!;
        Directory.CreateDirectory(folder);
        File.SetUnixFileMode(folder, uid == 0 || allowOther
            ? UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute
            : UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        if (File.Exists(path))
        {
            File.Delete(path); // left by a daemon that died: this mount point is ours now
        }

        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(path));
            File.SetUnixFileMode(path, allowOther
                ? UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite
                : UnixFileMode.UserRead | UnixFileMode.UserWrite);
            listener.Listen(64);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        LogListening(logger, path);
        return new OrderSocket(listener, path, Path.TrimEndingDirectorySeparator(mountPoint), root, client, logger, keepIn);
    }

    /// <summary>As <see cref="Listen"/>, or null with a warning when the socket cannot be made: the mount works without read orders.</summary>
    public static OrderSocket? TryListen(string mountPoint, string root, bool allowOther, GrainFsClient client, ILogger logger, string? keepIn = null)
    {
        try
        {
            return Listen(mountPoint, root, allowOther, client, logger, keepIn);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SocketException or PlatformNotSupportedException)
        {
            LogNoOrders(logger, PathFor(mountPoint, Native.GetUid()), e.Message);
            return null;
        }
    }

    private async Task AcceptAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket connection;
            try
            {
                connection = await _listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            // Each connection is served on its own (a slow client holds up no other); the disposal awaits them.
            var serving = ServeAsync(connection, cancellationToken);
            _serving.TryAdd(serving, 0);
            _ = serving.ContinueWith(t => _serving.TryRemove(t, out _), TaskScheduler.Default);
        }
    }

    private async Task ServeAsync(Socket connection, CancellationToken cancellationToken)
    {
        using (connection)
        {
            Reply reply;
            try
            {
                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                deadline.CancelAfter(TimeSpan.FromMinutes(1));
                var request = await ReadAllAsync(connection, deadline.Token).ConfigureAwait(false);
                reply = Handle(request);
            }
            catch (Exception e) when (e is InvalidDataException or JsonException or IOException or SocketException or OperationCanceledException)
            {
                reply = new Reply(false, null, 0, 0, e is OperationCanceledException ? "the request did not arrive within a minute" : e.Message);
            }

            try
            {
                await connection.SendAsync(JsonSerializer.SerializeToUtf8Bytes(reply, Json).Append((byte)'\n').ToArray(), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // The client went away: the order stands.
            }
        }
    }

    private static async Task<byte[]> ReadAllAsync(Socket connection, CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>(64 << 10);
        while (true)
        {
            var memory = buffer.GetMemory(64 << 10);
            var n = await connection.ReceiveAsync(memory, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                return buffer.WrittenSpan.ToArray();
            }

            buffer.Advance(n);
            if (buffer.WrittenCount > MaxRequestBytes)
            {
                throw new InvalidDataException($"an announcement of more than {MaxRequestBytes} bytes");
            }
        }
    }

    private Reply Handle(byte[] request)
    {
        var newline = Array.IndexOf(request, (byte)'\n');
        if (newline < 0)
        {
            throw new InvalidDataException("no header line (a JSON object ended by a newline)");
        }

        var header = JsonSerializer.Deserialize<Header>(request.AsSpan(0, newline), Json) ?? throw new InvalidDataException("an empty header");
        if (header.V != 1)
        {
            throw new InvalidDataException($"protocol version {header.V} (this daemon speaks 1)");
        }

        if (header.Cancel)
        {
            var job = header.Job ?? throw new InvalidDataException("a cancel names no job");
            var cancelled = _client.PrefetchOrders.Where(o => o.Job == job).ToList();
            cancelled.ForEach(o => o.Cancel());
            Unkeep(job, null);
            return new Reply(true, job, cancelled.Count, 0, null);
        }

        if (header.Share is { } share && share is not (> 0 and <= 1))
        {
            throw new InvalidDataException($"share {share} is not a share of the cache (0 < share <= 1)");
        }

        if (header.Parallel is { } parallel && parallel is < 1 or > PrefetchOptions.MAX_PARALLEL)
        {
            throw new InvalidDataException($"parallel {parallel} is not a number of fetches from 1 to {PrefetchOptions.MAX_PARALLEL}");
        }

        var paths = new List<string>();
        var outside = 0;
        var prefix = _mountPoint + "/";
        var start = newline + 1;
        while (start < request.Length)
        {
            var end = Array.IndexOf(request, (byte)0, start);
            if (end < 0)
            {
                end = request.Length;
            }

            var path = Encoding.UTF8.GetString(request, start, end - start);
            start = end + 1;
            if (path.Length == 0)
            {
                continue;
            }

            if (!path.StartsWith(prefix, StringComparison.Ordinal) || FsPath.TryNormalize(FsPath.Combine(_root, path[prefix.Length..]), out var grainfsPath, out _) != FsStatus.Ok)
            {
                outside++;
                continue;
            }

            paths.Add(grainfsPath);
        }

        if (outside > 0)
        {
            LogOutside(_logger, outside, _mountPoint);
        }

        var options = new PrefetchOptions
        {
            Job = header.Job,
            WindowBytes = header.Window is > 0 ? header.Window.Value : PrefetchOptions.DEFAULT_WINDOW_BYTES,
            WindowShare = header.Share ?? PrefetchOptions.DEFAULT_WINDOW_SHARE,
            Parallel = header.Parallel ?? PrefetchOptions.DEFAULT_PARALLEL,
        };
        var order = _client.Prefetch(paths, options);
        Keep(order, DateTimeOffset.UtcNow);
        return new Reply(true, order.Job, paths.Count, outside, null);
    }

    // ------------------------------------------------------------------ orders kept across serving processes

    /// <summary>
    /// Announces again the orders a previous serving process kept (those not expired, with the time they had left):
    /// they start again from their first file (files the cache holds already cost nothing), as the new process has
    /// not seen the reader's reads. Returns how many.
    /// </summary>
    public int RestoreKept()
    {
        if (_keepIn is null || !Directory.Exists(_keepIn))
        {
            return 0;
        }

        var restored = 0;
        foreach (var file in Directory.EnumerateFiles(_keepIn, "*.order"))
        {
            try
            {
                var bytes = File.ReadAllBytes(file);
                var newline = Array.IndexOf(bytes, (byte)'\n');
                var kept = newline > 0 ? JsonSerializer.Deserialize<Kept>(bytes.AsSpan(0, newline), Json) : null;
                var left = kept is null ? TimeSpan.Zero : PrefetchOptions.DEFAULT_EXPIRY - (DateTimeOffset.UtcNow - DateTimeOffset.FromUnixTimeMilliseconds(kept.At));
                if (kept is null || left <= TimeSpan.Zero)
                {
                    File.Delete(file);
                    continue;
                }

                var paths = Encoding.UTF8.GetString(bytes, newline + 1, bytes.Length - newline - 1).Split('\0', StringSplitOptions.RemoveEmptyEntries);
                var order = _client.Prefetch(paths, new PrefetchOptions { Job = kept.Job, WindowBytes = kept.Window, WindowShare = kept.Share, Parallel = kept.Parallel, Expiry = left });
                Keep(order, DateTimeOffset.FromUnixTimeMilliseconds(kept.At));
                LogRestoredOrder(_logger, order.Job, paths.Length, left.TotalMinutes);
                restored++;
            }
            catch (Exception e) when (e is IOException or JsonException or ArgumentException)
            {
                LogBadKept(_logger, file, e.Message);
            }
        }

        return restored;
    }

    private void Keep(PrefetchOrder order, DateTimeOffset announced)
    {
        if (_keepIn is null)
        {
            return;
        }

        _kept[order.Job] = order;
        var header = JsonSerializer.SerializeToUtf8Bytes(new Kept(order.Job, announced.ToUnixTimeMilliseconds(), order.Options.WindowBytes, order.Options.WindowShare, order.Options.Parallel), Json);
        var buffer = new ArrayBufferWriter<byte>(header.Length + 1 + (order.Paths.Count * 64));
        buffer.Write(header);
        buffer.Write("\n"u8);
        foreach (var path in order.Paths)
        {
            buffer.Write(Encoding.UTF8.GetBytes(path));
            buffer.Write([(byte)0]);
        }

        try
        {
            MountState.WriteAtomically(KeptFile(order.Job), buffer.WrittenSpan);
        }
        catch (IOException e)
        {
            LogBadKept(_logger, KeptFile(order.Job), e.Message);
        }

        // An order over (read to the end, expired, cancelled) is not announced again; one replaced by a newer order of
        // its job leaves the newer one's file.
        _ = order.Completion.ContinueWith(_ => Unkeep(order.Job, order), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private void Unkeep(string job, PrefetchOrder? order)
    {
        if (_keepIn is null || (order is not null && !_kept.TryRemove(new KeyValuePair<string, PrefetchOrder>(job, order))))
        {
            return;
        }

        if (order is null)
        {
            _kept.TryRemove(job, out _);
        }

        try
        {
            File.Delete(KeptFile(job));
        }
        catch (IOException)
        {
        }
    }

    private string KeptFile(string job) => Path.Combine(_keepIn!, MountState.Hex16(job) + ".order");

    private sealed record Kept(
        [property: JsonPropertyName("job")] string Job,
        [property: JsonPropertyName("at")] long At,
        [property: JsonPropertyName("window")] long Window,
        [property: JsonPropertyName("share")] double Share,
        [property: JsonPropertyName("parallel")] int Parallel);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _accepting.ConfigureAwait(false);
        await Task.WhenAll(_serving.Keys).ConfigureAwait(false);
        try
        {
            File.Delete(SocketPath);
        }
        catch (IOException)
        {
        }

        _stop.Dispose();
    }

    private sealed record Header(
        [property: JsonPropertyName("v")] int V,
        [property: JsonPropertyName("job")] string? Job,
        [property: JsonPropertyName("window")] long? Window,
        [property: JsonPropertyName("cancel")] bool Cancel,
        [property: JsonPropertyName("share")] double? Share = null,
        [property: JsonPropertyName("parallel")] int? Parallel = null);

    private sealed record Reply(
        [property: JsonPropertyName("ok")] bool Ok,
        [property: JsonPropertyName("job")] string? Job,
        [property: JsonPropertyName("accepted")] int Accepted,
        [property: JsonPropertyName("outside")] int Outside,
        [property: JsonPropertyName("error")] string? Error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Read orders are not taken: cannot listen at {Path}: {Reason}")]
    private static partial void LogNoOrders(ILogger logger, string path, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Read orders are taken at {Path}")]
    private static partial void LogListening(ILogger logger, string path);

    [LoggerMessage(Level = LogLevel.Information, Message = "Read order of job {Job} ({Files} files) announced again for this serving process ({Minutes:F0} min left)")]
    private static partial void LogRestoredOrder(ILogger logger, string job, int files, double minutes);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A kept read order {File} is not taken up: {Reason}")]
    private static partial void LogBadKept(ILogger logger, string file, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A read order named {Count} path(s) outside {MountPoint}: skipped")]
    private static partial void LogOutside(ILogger logger, int count, string mountPoint);
}
