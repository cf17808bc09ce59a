using GrainFs.DataPlane;
using GrainFs.DataPlane.Blocks;
using GrainFs.Storage.Metadata;
using GrainFs.Storage.UnderStorage;
using Microsoft.Extensions.Logging;

namespace GrainFs.Grains.Namespace;

/// <summary>
/// The write side of a directory: what GrainFS wrote or changed on top of the under-storage listing (the overlay:
/// written files with their owners, holders and persistence, attributes set on listed entries, tombstones of removed
/// ones), stored next to the listing in the metadata store, and the namespace operations that change it. Under-storage
/// is changed first (a directory, a removal, a rename of a persisted file), then the overlay, so a failure leaves the
/// namespace as it was.
/// </summary>
internal sealed partial class DirectoryGrain
{
    private const string CreatedMarker = ".";
    private static readonly TimeSpan ReservationTime = TimeSpan.FromHours(1);
    private readonly Dictionary<string, OverlayEntry> _overlay = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Writer, DateTime Until)> _reservations = new(StringComparer.Ordinal);
    private string[]? _overlayOrder;

    /// <summary>This directory was made by GrainFS (it exists even where under-storage has no trace of it).</summary>
    private bool IsCreated => _overlay.ContainsKey(CreatedMarker);

    private void LoadOverlay(IReadOnlyList<OverlayEntry> entries)
    {
        _overlay.Clear();
        foreach (var entry in entries)
        {
            _overlay[entry.Name] = entry;
        }

        _overlayOrder = null;
    }

    /// <summary>The child <paramref name="name"/>: the overlay's word first (a tombstone hides the listing's), then the listing.</summary>
    private FsEntry? Find(string name)
    {
        if (_overlay.TryGetValue(name, out var written))
        {
            return written.Deleted ? null : ToEntry(written);
        }

        var table = _snapshot?.Table;
        var index = table?.IndexOf(name) ?? -1;
        return index < 0 ? null : ToEntry(table![index]);
    }

    private static (FsEntry[] Entries, bool More) PageOfTable(DirectoryTable table, string? after, int count)
    {
        var start = table.IndexAfter(after);
        var end = Math.Min(table.Count, start + count);
        var entries = new FsEntry[Math.Max(0, end - start)];
        for (var i = start; i < end; i++)
        {
            entries[i - start] = ToEntry(table[i]);
        }

        return (entries, end < table.Count);
    }

    /// <summary>A page of the listing with the overlay merged in, both in UTF-8 name order.</summary>
    private (FsEntry[] Entries, bool More) MergedPage(DirectoryTable table, string? after, int count)
    {
        var order = _overlayOrder ??= [.. _overlay.Keys.Where(n => n != CreatedMarker).Order(Utf8Order.Instance)];
        var ti = table.IndexAfter(after);
        var oi = 0;
        if (after is not null)
        {
            while (oi < order.Length && Utf8Order.Instance.Compare(order[oi], after) <= 0)
            {
                oi++;
            }
        }

        var page = new List<FsEntry>(Math.Min(count, 1024));
        while (page.Count < count)
        {
            var tableName = ti < table.Count ? table.NameAt(ti) : null;
            var overlayName = oi < order.Length ? order[oi] : null;
            if (tableName is null && overlayName is null)
            {
                break;
            }

            var cmp = tableName is null ? 1 : overlayName is null ? -1 : Utf8Order.Instance.Compare(tableName, overlayName);
            if (cmp < 0)
            {
                page.Add(ToEntry(table[ti++]));
                continue;
            }

            var written = _overlay[overlayName!];
            if (!written.Deleted)
            {
                page.Add(ToEntry(written));
            }

            oi++;
            if (cmp == 0)
            {
                ti++;
            }
        }

        return ([.. page], ti < table.Count || oi < order.Length);
    }

    /// <summary>
    /// After a re-list: tombstones go (the removal reached under-storage), entries of files not yet persisted stay, and
    /// attributes kept for a persisted file stay only while under-storage still holds that version.
    /// </summary>
    private async ValueTask ReconcileOverlayAsync(DirectoryTable table)
    {
        foreach (var (name, written) in _overlay.ToList())
        {
            if (name == CreatedMarker)
            {
                continue;
            }

            bool keep;
            if (written.Deleted)
            {
                keep = false;
            }
            else if ((EntryKind)written.Kind == EntryKind.Directory)
            {
                var index = table.IndexOf(name);
                keep = index < 0 || table[index].Kind == EntryKind.Directory;
            }
            else if ((Persistence)written.Persistence != Persistence.Persisted)
            {
                keep = true;
            }
            else
            {
                var index = table.IndexOf(name);
                keep = index >= 0 && string.Equals(table[index].ETag, WriteTag.UnderStorageETag(written.ETag), StringComparison.Ordinal);
            }

            if (!keep)
            {
                _overlay.Remove(name);
                await store.RemoveOverlayAsync(_key.ToString(), name);
            }
        }

        _overlayOrder = null;
    }

    private async ValueTask PutAsync(FsEntry entry, bool deleted = false)
    {
        var record = new OverlayEntry(entry.Name, (EntryKind)entry.Kind, entry.Size, entry.MtimeUtc.Ticks, entry.ETag, entry.Mode, entry.Uid, entry.Gid,
            entry.Holders ?? [], (byte)entry.Persistence, entry.PersistError, deleted);
        await store.PutOverlayAsync(_key.ToString(), _key.MountId, record);
        _overlay[entry.Name] = record;
        _overlayOrder = null;
        Publish(entry.Name);
    }

    /// <summary>Tells subscribed clients the child changed (their kernels drop what they cached of it).</summary>
    private void Publish(string name) =>
        Forget(GrainFactory.GetGrain<INamespaceWatchGrain>(INamespaceWatchGrain.Key).PublishAsync([FsPath.Combine(_mount!.Path, RelativeOf(name))]), "publish a change");

    /// <summary>The child is gone: a tombstone hides the listing's entry, or the overlay entry goes.</summary>
    private async ValueTask ForgetChildAsync(FsEntry entry)
    {
        if (_snapshot?.Table.IndexOf(entry.Name) >= 0)
        {
            await PutAsync(entry, deleted: true);
            return;
        }

        if (_overlay.Remove(entry.Name))
        {
            _overlayOrder = null;
            await store.RemoveOverlayAsync(_key.ToString(), entry.Name);
        }

        Publish(entry.Name);
    }

    private static FsEntry ToEntry(OverlayEntry e) =>
        new(e.Name, (FsKind)e.Kind, e.Size, new DateTime(e.MtimeTicks, DateTimeKind.Utc), e.ETag, e.Mode, e.Uid, e.Gid,
            e.Holders.Length == 0 ? null : e.Holders, (Persistence)e.Persistence, e.Error);

    // ------------------------------------------------------------------ operations

    /// <summary>The checks every write makes before it changes anything; null when it may go on.</summary>
    private async ValueTask<LookupResult?> PrepareWriteAsync(string name)
    {
        if (_mount is null)
        {
            return new LookupResult(FsStatus.Stale, null, 1, $"mount {_key.MountId} no longer exists");
        }

        var nameStatus = FsPath.CheckName(name, out var nameError);
        if (nameStatus != FsStatus.Ok)
        {
            return new LookupResult(nameStatus, null, 1, $"{DisplayPath}: {nameError}");
        }

        if (_mount.Options.ReadOnly)
        {
            return new LookupResult(FsStatus.ReadOnly, null, 1, $"{FsPath.Combine(DisplayPath, name)}: the mount {_mount.Path} is read-only");
        }

        var state = await EnsureFreshAsync();
        if (state.Status != FsStatus.Ok)
        {
            return Unavailable(state);
        }

        var snapshot = _snapshot!;
        if (IsHead && snapshot.ShardCount > 1)
        {
            return new LookupResult(FsStatus.Stale, null, snapshot.ShardCount, $"{DisplayPath}: split into {snapshot.ShardCount} shards");
        }

        if (!IsHead && DirectoryKey.ShardOf(name, snapshot.ShardCount) != _key.Shard)
        {
            return new LookupResult(FsStatus.Stale, null, snapshot.ShardCount, $"{DisplayPath}: shard layout changed");
        }

        return null;
    }

    private LookupResult Done(FsEntry? entry) => new(FsStatus.Ok, entry, _snapshot?.ShardCount ?? 1, null);

    private LookupResult Refused(FsStatus status, string name, string reason) =>
        new(status, null, _snapshot?.ShardCount ?? 1, $"{FsPath.Combine(DisplayPath, name)}: {reason}");

    private LookupResult Failed(string name, UnderStorageException e)
    {
        LogUnderStorageFailed(logger, FsPath.Combine(DisplayPath, name), e.Message);
        return new LookupResult(Errors.ToStatus(e.Error), null, _snapshot?.ShardCount ?? 1, $"{FsPath.Combine(DisplayPath, name)}: {e.Message}");
    }

    private string RelativeOf(string name) => FsPath.CombineRelative(_key.Path, name);

    private IMountUsageGrain? Usage =>
        _mount!.Options.QuotaBytes > 0 || _mount.Options.QuotaFiles > 0 ? GrainFactory.GetGrain<IMountUsageGrain>(_key.MountId) : null;

    public async ValueTask<LookupResult> ReserveAsync(string name, string writer, bool exclusive)
    {
        if (await PrepareWriteAsync(name) is { } refused)
        {
            return refused;
        }

        // open(2) with O_CREAT|O_EXCL is EEXIST for any existing name, a directory too; without O_EXCL a directory is EISDIR.
        var existing = Find(name);
        if (exclusive)
        {
            var now = time.GetUtcNow().UtcDateTime;
            if (existing is not null || (_reservations.TryGetValue(name, out var held) && held.Writer != writer && held.Until > now))
            {
                return Refused(FsStatus.Exists, name, "already exists");
            }

            _reservations[name] = (writer, now + ReservationTime);
        }

        if (existing is { IsDirectory: true })
        {
            return Refused(FsStatus.IsADirectory, name, "is a directory");
        }

        return Done(existing);
    }

    public ValueTask UnreserveAsync(string name, string writer)
    {
        if (_reservations.TryGetValue(name, out var held) && held.Writer == writer)
        {
            _reservations.Remove(name);
        }

        return ValueTask.CompletedTask;
    }

    public async ValueTask<LookupResult> CommitAsync(string name, FsEntry entry, string writer, bool exclusive)
    {
        if (await PrepareWriteAsync(name) is { } refused)
        {
            return refused;
        }

        var existing = Find(name);
        if (existing is not null && !existing.IsDirectory && SameCommit(existing, entry))
        {
            // This very commit is done already (a commit made again because its answer was lost): answered as it was,
            // without taking the entry back to what the commit said (its upload may have finished since).
            _reservations.Remove(name);
            return Done(existing);
        }

        if (exclusive)
        {
            var ours = _reservations.TryGetValue(name, out var held) && held.Writer == writer;
            if (!ours && (existing is not null || held.Writer is not null))
            {
                return Refused(FsStatus.Exists, name, "already exists (another writer created it first)");
            }
        }

        if (existing is { IsDirectory: true })
        {
            return Refused(FsStatus.IsADirectory, name, "is a directory");
        }

        var committed = entry with { Name = name, Kind = FsKind.File };
        await PutAsync(committed);
        _reservations.Remove(name);
        if (existing is not null && !SameVersion(existing, committed))
        {
            await DropVersionAsync(existing, deleteObject: false);
        }

        if (committed.Persistence is Persistence.Pending or Persistence.Failed && committed.Holders is [var primary, ..])
        {
            await GrainFactory.GetGrain<IWorkerGrain>(primary).CommittedAsync(WriteTag.IdOf(committed.ETag), RelativeOf(name));
        }

        GrainFsMetrics.FilesCommitted.Add(1, new KeyValuePair<string, object?>("persistence", committed.Persistence.Name()));
        LogCommitted(logger, FsPath.Combine(DisplayPath, name), committed.Size, committed.Persistence.Name());
        return Done(committed);
    }

    private static bool SameVersion(FsEntry a, FsEntry b) =>
        string.Equals(WriteTag.IdOf(a.ETag), WriteTag.IdOf(b.ETag), StringComparison.Ordinal);

    // The same version with the same size, time and attributes: a later commit of the same writer (more bytes written
    // after a flush, a chmod) differs in one of them.
    private static bool SameCommit(FsEntry stored, FsEntry commit) =>
        SameVersion(stored, commit) && stored.Size == commit.Size && stored.MtimeUtc == commit.MtimeUtc && stored.Mode == commit.Mode && stored.Uid == commit.Uid && stored.Gid == commit.Gid;

    /// <summary>
    /// A written version is replaced or removed: its quota is returned before the change is acknowledged (so a write right
    /// after a remove finds the room), its blocks go from its holders and its persist is cancelled in the background.
    /// </summary>
    private async Task DropVersionAsync(FsEntry old, bool deleteObject)
    {
        if (!WriteTag.IsWritten(old.ETag) || old.IsDirectory)
        {
            return;
        }

        if (Usage is { } usage)
        {
            try
            {
                await usage.ReleaseAsync(old.Size, 1);
            }
            catch (Exception e) when (e is OrleansException or TimeoutException or System.Data.Common.DbException or InvalidOperationException)
            {
                // The change stands; the mount's usage keeps this file's share (logged), as when the release was sent in the background.
                LogBestEffortFailed(logger, DisplayPath, "release quota", e.Message);
            }
        }

        if (old.Holders is not { Length: > 0 } holders)
        {
            return;
        }

        var keys = WriteTag.Keys(_mount!.BlockNamespace, old.ETag, old.Size, _mount.Options.BlockSize);

        foreach (var holder in holders)
        {
            Forget(GrainFactory.GetGrain<IWorkerGrain>(holder).DropWrittenAsync(_key.MountId, WriteTag.IdOf(old.ETag), keys, deleteObject), $"free {old.Name} on {holder}");
        }
    }

    private void Forget(ValueTask task, string what) => Forget(task.AsTask(), what);

    private void Forget<T>(ValueTask<T> task, string what) => Forget(task.AsTask(), what);

    private void Forget(Task task, string what)
    {
        if (!task.IsCompleted)
        {
            // Best effort and off this turn: a holder that is gone has lost the blocks anyway.
            _ = task.ContinueWith(t => LogBestEffortFailed(logger, DisplayPath, what, t.Exception!.GetBaseException().Message), CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        }
    }

    public async ValueTask<LookupResult> MakeDirectoryAsync(string name, int mode, int uid, int gid)
    {
        if (await PrepareWriteAsync(name) is { } refused)
        {
            return refused;
        }

        if (Find(name) is not null)
        {
            return Refused(FsStatus.Exists, name, "already exists");
        }

        var cacheOnly = _mount!.Options.WriteType == WriteType.MustCache;
        if (!cacheOnly)
        {
            try
            {
                await Storage().MakeDirectoryAsync(RelativeOf(name));
            }
            catch (UnderStorageException e)
            {
                return Failed(name, e);
            }
        }

        var entry = new FsEntry(name, FsKind.Directory, 0, time.GetUtcNow().UtcDateTime, string.Empty, mode & 0xFFF, uid, gid, null,
            cacheOnly ? Persistence.CacheOnly : Persistence.Persisted);
        await PutAsync(entry);
        await GrainFactory.GetGrain<IDirectoryGrain>(new DirectoryKey(_key.MountId, 0, RelativeOf(name)).ToString()).MarkCreatedAsync();
        return Done(entry);
    }

    public async ValueTask<LookupResult> RemoveAsync(string name, bool directory)
    {
        if (await PrepareWriteAsync(name) is { } refused)
        {
            return refused;
        }

        if (Find(name) is not { } existing)
        {
            return Refused(FsStatus.NotFound, name, "no such file or directory");
        }

        if (directory != existing.IsDirectory)
        {
            return directory ? Refused(FsStatus.NotADirectory, name, "not a directory") : Refused(FsStatus.IsADirectory, name, "is a directory");
        }

        var relative = RelativeOf(name);
        try
        {
            if (directory)
            {
                var child = GrainFactory.GetGrain<IDirectoryGrain>(new DirectoryKey(_key.MountId, 0, relative).ToString());
                var empty = await child.IsEmptyAsync();
                if (empty.Status != FsStatus.Ok)
                {
                    return empty.Status == FsStatus.NotFound ? Done(existing) : empty;
                }

                if (existing.Persistence != Persistence.CacheOnly)
                {
                    await RemoveDirectoryInStorageAsync(relative);
                }

                // Its grain still holds its listing (and its made-by-GrainFS mark): a later create inside would find it there.
                await child.ForgetAsync();
            }
            else if (!WriteTag.IsWritten(existing.ETag) || existing.Persistence == Persistence.Persisted)
            {
                await Storage().DeleteAsync(relative);
            }
            else
            {
                await DeleteShadowedAsync(relative);
            }
        }
        catch (UnderStorageException e)
        {
            return Failed(name, e);
        }

        await DropVersionAsync(existing, deleteObject: true);
        await ForgetChildAsync(existing);
        return Done(existing);
    }

    /// <summary>
    /// A file whose version is not in under-storage (MUST_CACHE, or an upload still pending) goes from its path: an older
    /// version may be there (it replaced a persisted or listed file), which the next listing would bring back. Best effort:
    /// the name is gone from GrainFS either way, and an under-storage that cannot take the delete only keeps that old copy.
    /// </summary>
    private async ValueTask DeleteShadowedAsync(string relative)
    {
        try
        {
            await Storage().DeleteAsync(relative);
        }
        catch (UnderStorageException e) when (e.Error != UnderStorageError.NotFound)
        {
            LogBestEffortFailed(logger, FsPath.Combine(_mount!.Path, relative), "delete the older version in under-storage", e.Message);
        }
        catch (UnderStorageException)
        {
            // Nothing there: nothing to come back.
        }
    }

    private async ValueTask RemoveDirectoryInStorageAsync(string relative)
    {
        try
        {
            await Storage().RemoveDirectoryAsync(relative);
        }
        catch (UnderStorageException e) when (e.Error == UnderStorageError.NotFound)
        {
            // An object store keeps no trace of a directory whose marker is gone: nothing to remove.
        }
    }

    public async ValueTask<LookupResult> SetAttributesAsync(string name, AttributeChange change)
    {
        if (await PrepareWriteAsync(name) is { } refused)
        {
            return refused;
        }

        if (Find(name) is not { } existing)
        {
            return Refused(FsStatus.NotFound, name, "no such file or directory");
        }

        var updated = existing;
        if (change.Size is { } size && size != existing.Size)
        {
            if (existing.IsDirectory)
            {
                return Refused(FsStatus.IsADirectory, name, "is a directory");
            }

            if (size != 0)
            {
                return Refused(FsStatus.NotPermitted, name, $"a closed file can only be truncated to 0 bytes, not to {size} (write a new version instead)");
            }

            var tag = WriteTag.New();
            if (_mount!.Options.WriteType == WriteType.MustCache)
            {
                updated = updated with { ETag = tag, Persistence = Persistence.CacheOnly };
            }
            else
            {
                try
                {
                    var put = await Storage().PutAsync(RelativeOf(name), Stream.Null, 0);
                    updated = updated with { ETag = WriteTag.Persisted(tag, put.ETag), Persistence = Persistence.Persisted };
                }
                catch (UnderStorageException e)
                {
                    return Failed(name, e);
                }
            }

            await DropVersionAsync(existing, deleteObject: false);
            updated = updated with { Size = 0, Holders = null, PersistError = null, MtimeUtc = time.GetUtcNow().UtcDateTime };
        }

        updated = updated with
        {
            Mode = change.Mode is { } mode ? mode & 0xFFF : updated.Mode,
            Uid = change.Uid ?? updated.Uid,
            Gid = change.Gid ?? updated.Gid,
            MtimeUtc = change.MtimeUtc?.ToUniversalTime() ?? updated.MtimeUtc,
        };
        await PutAsync(updated);
        return Done(updated);
    }

    public async ValueTask<LookupResult> RenameAsync(string name, string target, string newName, bool noReplace)
    {
        if (await PrepareWriteAsync(name) is { } refused)
        {
            return refused;
        }

        if (!DirectoryKey.TryParse(target, out var targetKey, out var targetError))
        {
            return Refused(FsStatus.InvalidArgument, name, $"rename target: {targetError}");
        }

        if (FsPath.CheckName(newName, out var newNameError) != FsStatus.Ok)
        {
            return Refused(FsStatus.InvalidArgument, name, $"rename target: {newNameError}");
        }

        if (targetKey.MountId != _key.MountId)
        {
            return Refused(FsStatus.CrossDevice, name, "a rename cannot cross mounts (copy, then remove)");
        }

        // The errors come in the order of rename(2) (fs/namei.c): both parents resolved, the source, RENAME_NOREPLACE, the
        // source as an ancestor of the target, the target as an ancestor of the source, the same name, then the target's kind.
        var source = Find(name);
        var local = targetKey == _key;
        var targetGrain = local ? null : GrainFactory.GetGrain<IDirectoryGrain>(target);
        var kind = source?.Kind ?? FsKind.File;
        var check = targetGrain is null ? await CheckAdoptAsync(newName, kind, noReplace) : await targetGrain.CheckAdoptAsync(newName, kind, noReplace);
        if (check.Status != FsStatus.Ok && (check.MissingDirectory is not null || check.Status is not (FsStatus.Exists or FsStatus.IsADirectory or FsStatus.NotADirectory or FsStatus.NotEmpty)))
        {
            // The target's directory is missing, not a directory, sharded or failing.
            return check;
        }

        if (source is null)
        {
            return Refused(FsStatus.NotFound, name, "no such file or directory");
        }

        if (check.Status == FsStatus.Exists)
        {
            return check;
        }

        var from = RelativeOf(name);
        var to = FsPath.CombineRelative(targetKey.Path, newName);
        if (source.IsDirectory && FsPath.IsSameOrBelow("/" + targetKey.Path, "/" + from))
        {
            return Refused(FsStatus.InvalidArgument, name, $"cannot move a directory into itself ({to})");
        }

        if (to != from && FsPath.IsSameOrBelow("/" + from, "/" + to))
        {
            return Refused(FsStatus.NotEmpty, name, $"cannot replace {to}, which holds it");
        }

        if (local && newName == name)
        {
            return Done(source);
        }

        if (check.Status != FsStatus.Ok)
        {
            return check;
        }

        FsEntry? inStorage;
        try
        {
            inStorage = await MoveInStorageAsync(source, from, to);
        }
        catch (UnderStorageException e)
        {
            return Failed(name, e);
        }

        if (inStorage is null)
        {
            return Refused(FsStatus.NotSupported, name, $"renaming a directory is not supported on {_mount!.Uri.Split(':')[0]} under-storage (copy it, then remove the old one)");
        }

        if (source.IsDirectory)
        {
            await MoveSubtreeAsync(from, to);
        }

        var moved = inStorage with { Name = newName };
        var adopted = targetGrain is null ? await AdoptAsync(newName, moved) : await targetGrain.AdoptAsync(newName, moved);
        if (adopted.Status != FsStatus.Ok)
        {
            return adopted;
        }

        await ForgetChildAsync(source);
        return Done(moved);
    }

    /// <summary>Moves the child in under-storage, as far as it is there; the entry it has after the move, or null when the
    /// under-storage cannot rename a directory.</summary>
    private async ValueTask<FsEntry?> MoveInStorageAsync(FsEntry source, string from, string to)
    {
        var storage = Storage();
        if (source.IsDirectory)
        {
            if (source.Persistence == Persistence.CacheOnly)
            {
                return source;
            }

            if (!storage.Capabilities.HasFlag(UnderStorageCapabilities.DirectoryRename))
            {
                return null;
            }

            await storage.RenameAsync(from, to);
            return source;
        }

        var written = WriteTag.IsWritten(source.ETag);
        if (written && source.Persistence != Persistence.Persisted)
        {
            if (source.Persistence is Persistence.Pending or Persistence.Failed && source.Holders is [var primary, .. var standbys])
            {
                var retarget = await GrainFactory.GetGrain<IWorkerGrain>(primary).RetargetAsync(WriteTag.IdOf(source.ETag), to);
                if (retarget.Status != FsStatus.Ok)
                {
                    throw new UnderStorageException(UnderStorageError.Other, to, retarget.Message ?? "the write worker could not retarget the upload");
                }

                foreach (var standby in standbys)
                {
                    Forget(GrainFactory.GetGrain<IWorkerGrain>(standby).RetargetAsync(WriteTag.IdOf(source.ETag), to), $"retarget the copy on {standby}");
                }
            }

            await DeleteShadowedAsync(from);
            return source;
        }

        var record = await storage.MoveFileAsync(from, to);

        return written
            ? source with { ETag = WriteTag.Persisted(source.ETag, record.ETag) }
            : source with { ETag = record.ETag, Size = record.Size, MtimeUtc = new DateTime(record.MtimeTicks, DateTimeKind.Utc) };
    }

    /// <summary>
    /// After a directory moved in under-storage from <paramref name="from"/> to <paramref name="to"/>, level by level: each
    /// directory grain (and shard) of the old path forgets what it held and hands its overlay (files not yet persisted, with
    /// their uploads retargeted, made directories, attributes) to the same path under the new one, whose grains first forget
    /// what they held from before (the listing of nothing, or of a directory since removed). Directory grains are keyed by
    /// path, so a rename costs a few calls per directory moved.
    /// </summary>
    private async ValueTask MoveSubtreeAsync(string from, string to)
    {
        var pending = new Queue<string>();
        pending.Enqueue(string.Empty);
        while (pending.TryDequeue(out var below))
        {
            var oldPath = below.Length == 0 ? from : FsPath.CombineRelative(from, below);
            var newPath = below.Length == 0 ? to : FsPath.CombineRelative(to, below);
            var parts = await ForgetDirectoryAsync(oldPath);
            await ForgetDirectoryAsync(newPath);
            var written = parts.SelectMany(p => p.Written).ToArray();
            foreach (var file in written)
            {
                if (!file.IsDirectory && file.Persistence is Persistence.Pending or Persistence.Failed && file.Holders is [var primary, ..])
                {
                    var target = FsPath.CombineRelative(newPath, file.Name);
                    var retarget = await GrainFactory.GetGrain<IWorkerGrain>(primary).RetargetAsync(WriteTag.IdOf(file.ETag), target);
                    if (retarget.Status != FsStatus.Ok)
                    {
                        LogBestEffortFailed(logger, target, "retarget the upload", retarget.Message ?? retarget.Status.ErrnoName());
                    }
                }
            }

            var head = GrainFactory.GetGrain<IDirectoryGrain>(new DirectoryKey(_key.MountId, 0, newPath).ToString());
            var taken = await head.TakeOverlayAsync(written, parts[0].Created);
            if (taken.Status == FsStatus.Stale && taken.ShardCount > 1)
            {
                foreach (var shard in written.GroupBy(e => DirectoryKey.ShardOf(e.Name, taken.ShardCount)))
                {
                    await GrainFactory.GetGrain<IDirectoryGrain>(new DirectoryKey(_key.MountId, shard.Key, newPath).ToString()).TakeOverlayAsync([.. shard], created: false);
                }
            }

            foreach (var part in parts)
            {
                foreach (var child in part.Directories)
                {
                    pending.Enqueue(FsPath.CombineRelative(below, child));
                }
            }
        }
    }

    /// <summary>Tells the directory at <paramref name="path"/> and its shards to forget themselves; what each dropped.</summary>
    private async ValueTask<List<ForgottenDirectory>> ForgetDirectoryAsync(string path)
    {
        var head = await GrainFactory.GetGrain<IDirectoryGrain>(new DirectoryKey(_key.MountId, 0, path).ToString()).ForgetAsync();
        var parts = new List<ForgottenDirectory> { head };
        for (var shard = 1; head.ShardCount > 1 && shard <= head.ShardCount; shard++)
        {
            parts.Add(await GrainFactory.GetGrain<IDirectoryGrain>(new DirectoryKey(_key.MountId, shard, path).ToString()).ForgetAsync());
        }

        return parts;
    }

    public async ValueTask<ForgottenDirectory> ForgetAsync()
    {
        if (_mount is null)
        {
            return new ForgottenDirectory(1, [], [], false);
        }

        if (_sync is { IsCompleted: false } sync)
        {
            // A listing in flight would hold its snapshot after this forgets.
            await sync;
        }

        var shards = IsHead ? _snapshot?.ShardCount ?? 1 : 1;
        var directories = new List<string>();
        var table = _snapshot?.Table;
        for (var i = 0; table is not null && i < table.Count; i++)
        {
            if (table[i].Kind == EntryKind.Directory && !_overlay.ContainsKey(table.NameAt(i)))
            {
                directories.Add(table.NameAt(i));
            }
        }

        var written = new List<FsEntry>();
        foreach (var (name, entry) in _overlay)
        {
            if (name == CreatedMarker || entry.Deleted)
            {
                continue;
            }

            written.Add(ToEntry(entry));
            if ((EntryKind)entry.Kind == EntryKind.Directory)
            {
                directories.Add(name);
            }
        }

        var created = IsCreated;
        foreach (var name in _overlay.Keys.ToList())
        {
            await store.RemoveOverlayAsync(_key.ToString(), name);
        }

        _overlay.Clear();
        _overlayOrder = null;
        _reservations.Clear();
        if (IsHead)
        {
            // A new listing now, with a new generation (which the shards load when next asked).
            await SyncOnceAsync();
        }
        else
        {
            Hold(null);
        }

        return new ForgottenDirectory(shards, [.. directories], [.. written], created);
    }

    public async ValueTask<LookupResult> TakeOverlayAsync(FsEntry[] entries, bool created)
    {
        if (_mount is null)
        {
            return new LookupResult(FsStatus.Stale, null, 1, $"mount {_key.MountId} no longer exists");
        }

        foreach (var entry in entries)
        {
            // The names become paths of later under-storage calls: a bad one is refused before anything is taken.
            if (FsPath.CheckName(entry.Name, out var nameError) != FsStatus.Ok)
            {
                return new LookupResult(FsStatus.InvalidArgument, null, 1, $"{DisplayPath}: {nameError}");
            }
        }

        if (created)
        {
            await MarkCreatedAsync();
        }

        await EnsureFreshAsync();
        if (IsHead && _snapshot is { ShardCount: > 1 } snapshot)
        {
            return new LookupResult(FsStatus.Stale, null, snapshot.ShardCount, $"{DisplayPath}: split into {snapshot.ShardCount} shards");
        }

        foreach (var entry in entries)
        {
            await PutAsync(entry);
        }

        return Done(null);
    }

    public async ValueTask<LookupResult> CheckAdoptAsync(string name, FsKind kind, bool noReplace)
    {
        if (await PrepareWriteAsync(name) is { } refused)
        {
            return refused;
        }

        if (Find(name) is not { } existing)
        {
            return Done(null);
        }

        if (noReplace)
        {
            return Refused(FsStatus.Exists, name, "already exists");
        }

        if (existing.IsDirectory && kind == FsKind.File)
        {
            return Refused(FsStatus.IsADirectory, name, "is a directory");
        }

        if (!existing.IsDirectory && kind == FsKind.Directory)
        {
            return Refused(FsStatus.NotADirectory, name, "not a directory");
        }

        if (existing.IsDirectory)
        {
            var empty = await GrainFactory.GetGrain<IDirectoryGrain>(new DirectoryKey(_key.MountId, 0, RelativeOf(name)).ToString()).IsEmptyAsync();
            if (empty.Status != FsStatus.Ok)
            {
                return empty;
            }
        }

        return Done(existing);
    }

    public async ValueTask<LookupResult> AdoptAsync(string name, FsEntry entry)
    {
        if (await PrepareWriteAsync(name) is { } refused)
        {
            return refused;
        }

        var existing = Find(name);
        await PutAsync(entry with { Name = name });
        if (existing is not null && !existing.IsDirectory && !SameVersion(existing, entry))
        {
            await DropVersionAsync(existing, deleteObject: false);
        }

        return Done(entry);
    }

    public async ValueTask<LookupResult> PersistedAsync(string name, string writeTag, long size, string? underStorageETag, string? error)
    {
        if (_mount is null)
        {
            return new LookupResult(FsStatus.Stale, null, 1, $"mount {_key.MountId} no longer exists");
        }

        if (!_overlay.TryGetValue(name, out var written) || written.Deleted || WriteTag.IdOf(written.ETag) != WriteTag.IdOf(writeTag) || written.Size != size)
        {
            return Refused(FsStatus.NotFound, name, "this version is no longer there (replaced, renamed or removed)");
        }

        var entry = ToEntry(written);
        entry = underStorageETag is not null
            ? entry with { ETag = WriteTag.Persisted(entry.ETag, underStorageETag), Persistence = Persistence.Persisted, PersistError = null }
            : entry with { Persistence = Persistence.Failed, PersistError = error };
        await PutAsync(entry);
        return Done(entry);
    }

    public async ValueTask MarkCreatedAsync()
    {
        if (_mount is null)
        {
            return;
        }

        var marker = new OverlayEntry(CreatedMarker, EntryKind.Directory, 0, time.GetUtcNow().UtcTicks, string.Empty, 0, -1, -1, [], 0, null, false);
        await store.PutOverlayAsync(_key.ToString(), _key.MountId, marker);
        _overlay[CreatedMarker] = marker;
        if (_snapshot is null || _snapshot.State != DirectoryState.Listed)
        {
            var snapshot = new DirectorySnapshot(DirectoryState.Listed, DirectoryTable.Empty, time.GetUtcNow().UtcDateTime, (_snapshot?.Generation ?? 0) + 1, 1);
            await store.SaveDirectoryAsync(_key.ToString(), _key.MountId, snapshot);
            Hold(snapshot);
        }
    }

    public async ValueTask<LookupResult> IsEmptyAsync()
    {
        if (_mount is null)
        {
            return new LookupResult(FsStatus.Stale, null, 1, $"mount {_key.MountId} no longer exists");
        }

        var state = await EnsureFreshAsync();
        if (state.Status != FsStatus.Ok)
        {
            return Unavailable(state);
        }

        var table = _snapshot!.Table;
        var empty = _snapshot.ShardCount <= 1
            && _overlay.All(o => o.Key == CreatedMarker || o.Value.Deleted)
            && Enumerable.Range(0, table.Count).All(i => _overlay.TryGetValue(table.NameAt(i), out var o) && o.Deleted);
        return empty
            ? new LookupResult(FsStatus.Ok, null, 1, null)
            : new LookupResult(FsStatus.NotEmpty, null, _snapshot.ShardCount, $"{DisplayPath}: directory not empty");
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Committed {Path}: {Size} bytes, {Persistence}")]
    private static partial void LogCommitted(ILogger logger, string path, long size, string persistence);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Path}: could not {What}: {Reason}")]
    private static partial void LogBestEffortFailed(ILogger logger, string path, string what, string reason);
}

/// <summary>Names in UTF-8 byte order (the order of listings and of PostgreSQL's C collation), by code point.</summary>
internal sealed class Utf8Order : IComparer<string>
{
    public static Utf8Order Instance { get; } = new();

    public int Compare(string? x, string? y)
    {
        if (ReferenceEquals(x, y))
        {
            return 0;
        }

        if (x is null || y is null)
        {
            return x is null ? -1 : 1;
        }

        var a = x.EnumerateRunes();
        var b = y.EnumerateRunes();
        while (true)
        {
            var hasA = a.MoveNext();
            var hasB = b.MoveNext();
            if (!hasA || !hasB)
            {
                return hasA == hasB ? 0 : hasA ? 1 : -1;
            }

            var cmp = a.Current.Value.CompareTo(b.Current.Value);
            if (cmp != 0)
            {
                return cmp;
            }
        }
    }
}
