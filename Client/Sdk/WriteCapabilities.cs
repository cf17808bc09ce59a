using System.Collections.Concurrent;

namespace GrainFs.Client;

/// <summary>
/// The data-port write capabilities of this client, one per mount it writes: asked of a silo once (the silo checks that
/// this identity may write the mount) and renewed at half their life, so writing costs no grain call per file or block.
/// A client with <see cref="GrainFsClientOptions.InsecureNoAuth"/> sends none.
/// </summary>
internal sealed class WriteCapabilities(GrainCalls calls, bool insecure, TimeProvider time)
{
    private readonly ConcurrentDictionary<long, (byte[] Wire, DateTimeOffset RenewAfter)> _granted = new();

    /// <summary>The wire form for <paramref name="mount"/> (empty when insecure); EACCES when this identity may not write it.</summary>
    public async ValueTask<FsResult<ReadOnlyMemory<byte>>> GetAsync(MountInfo mount)
    {
        if (insecure)
        {
            return FsResult<ReadOnlyMemory<byte>>.Ok(ReadOnlyMemory<byte>.Empty);
        }

        if (_granted.TryGetValue(mount.Id, out var known) && time.GetUtcNow() < known.RenewAfter)
        {
            return FsResult<ReadOnlyMemory<byte>>.Ok(known.Wire);
        }

        var granted = await calls.CallAsync(() => calls.Grains.GetGrain<IAuthGrain>(0).GrantWritesAsync(mount.Id), $"{mount.Path}: data-port writes").ConfigureAwait(false);
        if (!granted.IsOk)
        {
            return FsResult<ReadOnlyMemory<byte>>.Fail(granted.Status, granted.Message);
        }

        var capability = granted.Value!;
        var wire = new byte[WriteCapability.Size];
        capability.Write(wire);
        var now = time.GetUtcNow();
        var expires = DateTimeOffset.FromUnixTimeSeconds(capability.ExpiresUnix);
        _granted[mount.Id] = (wire, now + ((expires - now) / 2));
        return FsResult<ReadOnlyMemory<byte>>.Ok(wire);
    }
}
