using System.Collections.Concurrent;

namespace GrainFs.Client;

/// <summary>
/// The client's bounded cache of resolved paths: entries and negative answers, each with an expiry.
/// When full, the entries closest to expiry are dropped in one sweep (amortised: a sweep frees a tenth). The size is
/// kept in a counter of its own: a concurrent dictionary's Count takes every one of its locks, and a listing puts
/// every entry it reads (a FUSE listing of 100,000 names spent most of its time there).
/// </summary>
internal sealed class MetadataCache(int capacity, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, Item> _items = new(StringComparer.Ordinal);
    private readonly Lock _sweepLock = new();
    private int _count;

    private sealed record Item(FsStatus Status, FsEntry? Entry, long ExpiresTicks, long MountId);

    public int Count => _items.Count;

    public bool TryGet(string path, out FsStatus status, out FsEntry? entry)
    {
        if (_items.TryGetValue(path, out var item))
        {
            if (item.ExpiresTicks > time.GetUtcNow().UtcTicks)
            {
                status = item.Status;
                entry = item.Entry;
                return true;
            }

            Remove(path);
        }

        status = FsStatus.Ok;
        entry = null;
        return false;
    }

    public void Put(string path, FsStatus status, FsEntry? entry, TimeSpan ttl, long mountId)
    {
        if (capacity <= 0 || ttl <= TimeSpan.Zero)
        {
            return;
        }

        if (Volatile.Read(ref _count) >= capacity)
        {
            Sweep();
        }

        var item = new Item(status, entry, time.GetUtcNow().UtcTicks + ttl.Ticks, mountId);
        if (_items.TryAdd(path, item))
        {
            Interlocked.Increment(ref _count);
        }
        else
        {
            _items[path] = item;
        }
    }

    /// <summary>Forgets everything cached for a mount (after an unmount or remount).</summary>
    public void ForgetMount(long mountId)
    {
        foreach (var (key, item) in _items)
        {
            if (item.MountId == mountId)
            {
                Remove(key);
            }
        }
    }

    public void Clear()
    {
        _items.Clear();
        Volatile.Write(ref _count, 0);
    }

    /// <summary>Forgets one path (this client changed it).</summary>
    public void Forget(string path) => Remove(path);

    /// <summary>Forgets a path and everything under it (a directory renamed or removed).</summary>
    public void ForgetUnder(string path)
    {
        Remove(path);
        var prefix = path.EndsWith('/') ? path : path + "/";
        foreach (var key in _items.Keys)
        {
            if (key.StartsWith(prefix, StringComparison.Ordinal))
            {
                Remove(key);
            }
        }
    }

    private void Remove(string path)
    {
        if (_items.TryRemove(path, out _))
        {
            Interlocked.Decrement(ref _count);
        }
    }

    private void Sweep()
    {
        if (!_sweepLock.TryEnter())
        {
            return;
        }

        try
        {
            var now = time.GetUtcNow().UtcTicks;
            var snapshot = _items.ToArray();
            Array.Sort(snapshot, static (a, b) => a.Value.ExpiresTicks.CompareTo(b.Value.ExpiresTicks));
            var drop = Math.Max(1, snapshot.Length / 10);
            for (var i = 0; i < snapshot.Length && (i < drop || snapshot[i].Value.ExpiresTicks <= now); i++)
            {
                Remove(snapshot[i].Key);
            }

            // A put that raced a removal of its path may have counted itself or not: the count is set right here.
            Volatile.Write(ref _count, _items.Count);
        }
        finally
        {
            _sweepLock.Exit();
        }
    }
}
