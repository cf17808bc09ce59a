using GrainFs.DataPlane.Blocks;

namespace GrainFs.Client;

/// <summary>The write side of the SDK: create and write files, directories, removals, renames, copies, attributes, persist.</summary>
public sealed partial class GrainFsClient
{
    /// <summary>The data-port connections (shared by readers and writers).</summary>
    internal DataPortClient DataPort => _blocks.DataPort;

    /// <summary>This client's data-port write capabilities, per mount.</summary>
    internal WriteCapabilities WriteCapabilities { get; }

    /// <summary>A path inside a writable mount, or why it is not one.</summary>
    private async ValueTask<(ResolvedPath Place, FsStatus Status, string? Message)> WritablePathAsync(string path, CancellationToken cancellationToken)
    {
        var resolved = await Mounts.ResolveAsync(path, cancellationToken).ConfigureAwait(false);
        switch (resolved.Place)
        {
            case PathPlace.Invalid:
            case PathPlace.Missing:
                return (resolved, resolved.Status, resolved.Message);
            case PathPlace.InMount:
                return resolved.Mount!.Options.ReadOnly
                    ? (resolved, FsStatus.ReadOnly, $"{resolved.Path}: the mount {resolved.Mount.Path} is read-only")
                    : (resolved, FsStatus.Ok, null);
            default:
                return (resolved, FsStatus.NotPermitted, $"{resolved.Path}: mount points and the folders above them are made with 'grainfs fs mount', not written");
        }
    }

    /// <summary>
    /// The write worker of a new file: a write-role silo on this host, else one chosen by the file's tag; any silo when
    /// none has the role; a suspected one only when no other is left.
    /// </summary>
    /// <summary>A write worker's data port failed: new files go to other workers for a while (the cluster declares it dead soon).</summary>
    internal void SuspectWorker(string siloName) => _cluster.Suspect(siloName);

    private bool Avoided(SiloInfo silo) => silo.Draining || _cluster.IsSuspected(silo.Name);

    private async ValueTask<SiloInfo?> WriteWorkerAsync(string tag, CancellationToken cancellationToken)
    {
        var view = await _cluster.GetAsync(cancellationToken).ConfigureAwait(false);
        var writers = view.Silos.Where(s => s.Roles.Contains("write", StringComparer.Ordinal) && s.DataEndpoint.Length > 0).ToArray();
        if (writers.Length == 0)
        {
            writers = [.. view.Silos.Where(s => s.DataEndpoint.Length > 0)];
        }

        if (writers.Length == 0)
        {
            return null;
        }

        // A worker whose data port just failed (killed, not yet declared dead) or that is being drained takes no new
        // file while others can.
        if (writers.Any(s => !Avoided(s)) && writers.Any(Avoided))
        {
            writers = [.. writers.Where(s => !Avoided(s))];
        }

        var local = Array.Find(writers, s => s.Host == _options.Host);
        if (local is not null)
        {
            return local;
        }

        var key = BlockKey.For(BlockKey.FileId(string.Empty, string.Empty, tag, 0, 0), 0);
        return writers[Rendezvous.Pick(key, [.. writers.Select(w => w.Name)])];
    }

    /// <summary>Creates (or, without <see cref="CreateOptions.Exclusive"/>, replaces at close) the file at <paramref name="path"/> for writing.
    /// EEXIST (exclusive and it exists), EISDIR, ENOENT (no parent), EROFS (read-only mount).</summary>
    public async ValueTask<FsResult<GrainFsWriter>> CreateAsync(string path, CreateOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new CreateOptions();
        var (place, status, message) = await WritablePathAsync(path, cancellationToken).ConfigureAwait(false);
        if (status != FsStatus.Ok)
        {
            return FsResult<GrainFsWriter>.Fail(status, message);
        }

        var mount = place.Mount!;
        var writeType = options.WriteType ?? mount.Options.WriteType;
        var tag = WriteTag.New();
        var worker = await WriteWorkerAsync(tag, cancellationToken).ConfigureAwait(false);
        if (worker is null)
        {
            return FsResult<GrainFsWriter>.Fail(FsStatus.IoError, $"{place.Path}: no silo is available to take the write");
        }

        SiloInfo? standby = null;
        if (writeType == WriteType.AsyncThrough && mount.Options.WriteReplicas > 1)
        {
            var view = await _cluster.GetAsync(cancellationToken).ConfigureAwait(false);
            standby = view.Silos.Where(s => s.Host != worker.Host && s.Roles.Contains("write", StringComparer.Ordinal) && s.DataEndpoint.Length > 0)
                .OrderBy(s => s.Name, StringComparer.Ordinal).FirstOrDefault();
            if (standby is null)
            {
                return FsResult<GrainFsWriter>.Fail(FsStatus.IoError, $"{place.Path}: the mount {mount.Path} keeps write-replicas=2, and no write worker on another host than {worker.Host} is up to take the second copy");
            }
        }

        var writer = new GrainFsWriter(this, mount, place.Path, place.Relative, options, writeType, worker, standby);
        var reserved = await Namespace.CallDirectoryAsync(mount, place.Relative, place.Path, (grain, name) => grain.ReserveAsync(name, writer.WriterId, options.Exclusive)).ConfigureAwait(false);
        if (reserved.Status != FsStatus.Ok)
        {
            return FsResult<GrainFsWriter>.Fail(reserved.Status, reserved.Message);
        }

        var quota = await writer.ReserveFileAsync().ConfigureAwait(false);
        if (!quota.IsOk)
        {
            await writer.AbortAsync().ConfigureAwait(false);
            return FsResult<GrainFsWriter>.Fail(quota.Status, quota.Message);
        }

        return FsResult<GrainFsWriter>.Ok(writer);
    }

    /// <summary>Writes all of <paramref name="source"/> to a new version of <paramref name="path"/> and closes it (fs put).</summary>
    public async ValueTask<FsResult<FsEntry>> WriteFileAsync(string path, Stream source, CreateOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        var created = await CreateAsync(path, options, cancellationToken).ConfigureAwait(false);
        if (!created.IsOk)
        {
            return FsResult<FsEntry>.Fail(created.Status, created.Message);
        }

        await using var writer = created.Value!;
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            long offset = 0;
            while (true)
            {
                var read = await source.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                var wrote = await writer.WriteAsync(offset, buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                if (!wrote.IsOk)
                {
                    return FsResult<FsEntry>.Fail(wrote.Status, wrote.Message);
                }

                offset += read;
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }

        return await writer.CloseAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Makes a directory; with <paramref name="parents"/> also its missing parents and no error when it exists (mkdir -p).</summary>
    public async ValueTask<FsResult<FsEntry>> MakeDirectoryAsync(string path, bool parents = false, int mode = 0x1ED, CancellationToken cancellationToken = default)
    {
        var (place, status, message) = await WritablePathAsync(path, cancellationToken).ConfigureAwait(false);
        if (status != FsStatus.Ok)
        {
            if (parents && place.Place is PathPlace.MountRoot or PathPlace.Root or PathPlace.Virtual)
            {
                return await StatAsync(path, cancellationToken).ConfigureAwait(false);
            }

            return FsResult<FsEntry>.Fail(status, message);
        }

        var mount = place.Mount!;
        if (parents)
        {
            var existing = await StatAsync(place.Path, cancellationToken).ConfigureAwait(false);
            if (existing.IsOk)
            {
                return existing.Value!.IsDirectory ? existing : FsResult<FsEntry>.Fail(FsStatus.Exists, $"{place.Path}: exists and is not a directory");
            }

            var (parentRelative, _) = FsPath.SplitRelative(place.Relative);
            if (parentRelative.Length > 0)
            {
                var parent = await MakeDirectoryAsync(FsPath.Combine(mount.Path, parentRelative), parents: true, mode, cancellationToken).ConfigureAwait(false);
                if (!parent.IsOk)
                {
                    return parent;
                }
            }
        }

        var made = await Namespace.CallDirectoryAsync(mount, place.Relative, place.Path, (grain, name) => grain.MakeDirectoryAsync(name, mode & 0xFFF, -1, -1)).ConfigureAwait(false);
        Namespace.Changed(place.Path, subtree: true);
        if (made.Status == FsStatus.Exists && parents)
        {
            return await StatAsync(place.Path, cancellationToken).ConfigureAwait(false);
        }

        return made.Status == FsStatus.Ok ? FsResult<FsEntry>.Ok(made.Entry!) : FsResult<FsEntry>.Fail(made.Status, made.Message);
    }

    /// <summary>Removes a file or an empty directory; with <paramref name="recursive"/> a directory and everything under it. The count removed.</summary>
    public async ValueTask<FsResult<int>> RemoveAsync(string path, bool recursive = false, CancellationToken cancellationToken = default)
    {
        var (place, status, message) = await WritablePathAsync(path, cancellationToken).ConfigureAwait(false);
        if (status != FsStatus.Ok)
        {
            return FsResult<int>.Fail(status, message);
        }

        var stat = await StatAsync(place.Path, cancellationToken).ConfigureAwait(false);
        if (!stat.IsOk)
        {
            return FsResult<int>.Fail(stat.Status, stat.Message);
        }

        var removed = 0;
        if (stat.Value!.IsDirectory && recursive)
        {
            var children = new List<FsEntry>();
            await foreach (var child in ListAsync(place.Path, cancellationToken).ConfigureAwait(false))
            {
                children.Add(child);
            }

            foreach (var child in children)
            {
                var inner = await RemoveAsync(FsPath.Combine(place.Path, child.Name), recursive: true, cancellationToken).ConfigureAwait(false);
                if (!inner.IsOk)
                {
                    return inner;
                }

                removed += inner.Value;
            }
        }

        var isDirectory = stat.Value.IsDirectory;
        var result = await Namespace.CallDirectoryAsync(place.Mount!, place.Relative, place.Path, (grain, name) => grain.RemoveAsync(name, isDirectory)).ConfigureAwait(false);
        Namespace.Changed(place.Path, subtree: isDirectory);
        return result.Status == FsStatus.Ok ? FsResult<int>.Ok(removed + 1) : FsResult<int>.Fail(result.Status, result.Message);
    }

    /// <summary>mkdir(2) with an owner: one directory whose parent exists (EEXIST when it exists).</summary>
    public async ValueTask<FsResult<FsEntry>> MakeDirectoryAsync(string path, int mode, int uid, int gid, CancellationToken cancellationToken = default)
    {
        var (place, status, message) = await WritablePathAsync(path, cancellationToken).ConfigureAwait(false);
        if (status != FsStatus.Ok)
        {
            return FsResult<FsEntry>.Fail(status == FsStatus.NotPermitted ? FsStatus.Exists : status, message);
        }

        var made = await Namespace.CallDirectoryAsync(place.Mount!, place.Relative, place.Path, (grain, name) => grain.MakeDirectoryAsync(name, mode & 0xFFF, uid, gid)).ConfigureAwait(false);
        Namespace.Changed(place.Path, subtree: true);
        return made.Status == FsStatus.Ok ? FsResult<FsEntry>.Ok(made.Entry!) : FsResult<FsEntry>.Fail(made.Status, made.Message);
    }

    /// <summary>unlink(2) (<paramref name="directory"/> false: EISDIR for a directory) or rmdir(2) (true: ENOTDIR for a file, ENOTEMPTY).</summary>
    public async ValueTask<FsResult<FsEntry>> RemoveEntryAsync(string path, bool directory, CancellationToken cancellationToken = default)
    {
        var (place, status, message) = await WritablePathAsync(path, cancellationToken).ConfigureAwait(false);
        if (status != FsStatus.Ok)
        {
            return FsResult<FsEntry>.Fail(status, message);
        }

        var removed = await Namespace.CallDirectoryAsync(place.Mount!, place.Relative, place.Path, (grain, name) => grain.RemoveAsync(name, directory)).ConfigureAwait(false);
        Namespace.Changed(place.Path, subtree: directory);
        return removed.Status == FsStatus.Ok ? FsResult<FsEntry>.Ok(removed.Entry!) : FsResult<FsEntry>.Fail(removed.Status, removed.Message);
    }

    /// <summary>Renames within a mount (EXDEV across mounts; a directory on an object store: EOPNOTSUPP). With <paramref name="noReplace"/>, EEXIST when the destination exists.</summary>
    public async ValueTask<FsResult<FsEntry>> RenameAsync(string source, string destination, bool noReplace = false, CancellationToken cancellationToken = default)
    {
        var (from, status, message) = await WritablePathAsync(source, cancellationToken).ConfigureAwait(false);
        if (status != FsStatus.Ok)
        {
            return FsResult<FsEntry>.Fail(status, message);
        }

        var (to, toStatus, toMessage) = await WritablePathAsync(destination, cancellationToken).ConfigureAwait(false);
        if (toStatus != FsStatus.Ok)
        {
            return FsResult<FsEntry>.Fail(toStatus, toMessage);
        }

        if (to.Mount!.Id != from.Mount!.Id)
        {
            return FsResult<FsEntry>.Fail(FsStatus.CrossDevice, $"{from.Path} → {to.Path}: a rename cannot cross mounts (copy, then remove)");
        }

        var (toParent, toName) = FsPath.SplitRelative(to.Relative);
        var target = Namespace.DirectoryKeyOf(to.Mount.Id, toParent, toName);
        var moved = await Namespace.CallDirectoryAsync(from.Mount, from.Relative, from.Path, (grain, name) => grain.RenameAsync(name, target.ToString(), toName, noReplace)).ConfigureAwait(false);
        Namespace.Changed(from.Path, subtree: true);
        Namespace.Changed(to.Path, subtree: true);
        return moved.Status == FsStatus.Ok ? FsResult<FsEntry>.Ok(moved.Entry!) : FsResult<FsEntry>.Fail(moved.Status, moved.Message);
    }

    /// <summary>Copies a file to a new file (any mounts); the copy is written with <paramref name="options"/>.</summary>
    public async ValueTask<FsResult<FsEntry>> CopyAsync(string source, string destination, CreateOptions? options = null, CancellationToken cancellationToken = default)
    {
        var opened = await OpenReadStreamAsync(source, cancellationToken).ConfigureAwait(false);
        if (!opened.IsOk)
        {
            return FsResult<FsEntry>.Fail(opened.Status, opened.Message);
        }

        await using var stream = opened.Value!;
        try
        {
            return await WriteFileAsync(destination, stream, options, cancellationToken).ConfigureAwait(false);
        }
        catch (GrainFsException e)
        {
            return FsResult<FsEntry>.Fail(e.Status, e.Message);
        }
    }

    /// <summary>Waits until the file at <paramref name="path"/> (or every file under a directory) is persisted; EIO with the reason when its upload failed and
    /// <paramref name="timeout"/> passed, ETIMEDOUT when it is still pending then, EINVAL for a MUST_CACHE file.</summary>
    public async ValueTask<FsResult<FsEntry>> PersistAsync(string path, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromMinutes(10));
        var delay = TimeSpan.FromMilliseconds(50);
        var stat = await StatAsync(path, cancellationToken).ConfigureAwait(false);
        if (stat.IsOk && stat.Value!.IsDirectory)
        {
            await foreach (var child in ListAsync(path, cancellationToken).ConfigureAwait(false))
            {
                var inner = await PersistAsync(FsPath.Combine(path, child.Name), deadline - DateTime.UtcNow, cancellationToken).ConfigureAwait(false);
                if (!inner.IsOk)
                {
                    return inner;
                }
            }

            return stat;
        }

        while (true)
        {
            Namespace.Changed(path);
            stat = await StatAsync(path, cancellationToken).ConfigureAwait(false);
            if (!stat.IsOk)
            {
                return stat;
            }

            var entry = stat.Value!;
            switch (entry.Persistence)
            {
                case Persistence.Persisted:
                    return stat;
                case Persistence.CacheOnly:
                    return FsResult<FsEntry>.Fail(FsStatus.InvalidArgument, $"{path}: written with MUST_CACHE, it is never persisted");
            }

            if (DateTime.UtcNow >= deadline)
            {
                return entry.Persistence == Persistence.Failed
                    ? FsResult<FsEntry>.Fail(FsStatus.IoError, $"{path}: not persisted yet, the last upload failed: {entry.PersistError}")
                    : FsResult<FsEntry>.Fail(FsStatus.TimedOut, $"{path}: still waiting to be persisted");
            }

            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            delay = TimeSpan.FromMilliseconds(Math.Min(1000, delay.TotalMilliseconds * 2));
        }
    }

    /// <summary>Changes mode, owner, group, mtime, or truncates to 0 (a new, empty version).</summary>
    public async ValueTask<FsResult<FsEntry>> SetAttributesAsync(string path, AttributeChange change, CancellationToken cancellationToken = default)
    {
        var (place, status, message) = await WritablePathAsync(path, cancellationToken).ConfigureAwait(false);
        if (status != FsStatus.Ok)
        {
            return FsResult<FsEntry>.Fail(status, message);
        }

        var result = await Namespace.CallDirectoryAsync(place.Mount!, place.Relative, place.Path, (grain, name) => grain.SetAttributesAsync(name, change)).ConfigureAwait(false);
        Namespace.Changed(place.Path);
        return result.Status == FsStatus.Ok ? FsResult<FsEntry>.Ok(result.Entry!) : FsResult<FsEntry>.Fail(result.Status, result.Message);
    }
}
