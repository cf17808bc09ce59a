using System.Text.Json;
using System.Text.Json.Serialization;
using GrainFs.Storage.Cache;

namespace GrainFs.Grains.Writes;

/// <summary>A written file a write worker holds until it is persisted: what its journal entry records.</summary>
/// <param name="WriteTag">The version's write id ("gfs:…").</param>
/// <param name="MountId">The mount.</param>
/// <param name="Path">Where it is uploaded to (relative to the mount root; a rename before the upload changes it).</param>
/// <param name="Size">Bytes.</param>
/// <param name="BlockSize">The mount's block size.</param>
/// <param name="WriteType">How it was written.</param>
/// <param name="SealedUtc">When its writer closed it.</param>
/// <param name="Committed">Its commit (visibility) is known to have happened: it may be uploaded.</param>
/// <param name="Primary">For a standby copy: the silo that persists the file; this worker takes over only if that silo leaves.</param>
public sealed record PersistJob(string WriteTag, long MountId, string Path, long Size, int BlockSize, WriteType WriteType, DateTime SealedUtc, bool Committed, string? Primary = null);

/// <summary>
/// The persist journal of a write worker: one small JSON file per written file not yet persisted, next to its blocks on
/// the write tier. An entry is written (synced, then renamed into place and its folder synced) before a close is
/// acknowledged, and removed once the file is in under-storage, so a crash loses no acknowledged file.
/// </summary>
public sealed class WriteJournal
{
    private static readonly JsonSerializerOptions Json = new() { Converters = { new JsonStringEnumConverter() } };
    private readonly string _root;

    /// <summary>A journal in <paramref name="root"/> (created when missing).</summary>
    public WriteJournal(string root)
    {
        _root = root;
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(Path.Combine(_root, "tmp"));
            return;
        }

        // The silo's alone, even in a tier folder a short-circuit group may read: it names the files being written.
        var owner = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        Directory.CreateDirectory(Path.Combine(_root, "tmp"), owner);
        File.SetUnixFileMode(_root, owner);
        File.SetUnixFileMode(Path.Combine(_root, "tmp"), owner);
    }

    /// <summary>The journal's folder.</summary>
    public string Root => _root;

    private string FileOf(string writeTag) => Path.Combine(_root, writeTag.Replace(':', '-') + ".json");

    /// <summary>Records (or replaces) an entry durably.</summary>
    public void Save(PersistJob job)
    {
        var temp = Path.Combine(_root, "tmp", Guid.NewGuid().ToString("N"));
        using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
        {
            JsonSerializer.Serialize(file, job, Json);
            file.Flush(flushToDisk: true);
        }

        File.Move(temp, FileOf(job.WriteTag), overwrite: true);
        DiskSync.Directory(_root);
    }

    /// <summary>Removes an entry (the file is persisted, or dropped).</summary>
    public void Delete(string writeTag)
    {
        try
        {
            File.Delete(FileOf(writeTag));
        }
        catch (DirectoryNotFoundException)
        {
            // The tier folder is gone with everything in it.
        }
    }

    /// <summary>Every entry on disk; unreadable ones (a torn write cannot happen, a hand edit can) are returned as errors.</summary>
    public (List<PersistJob> Jobs, List<string> Unreadable) LoadAll()
    {
        var jobs = new List<PersistJob>();
        var unreadable = new List<string>();
        foreach (var path in Directory.EnumerateFiles(_root, "*.json"))
        {
            try
            {
                using var file = File.OpenRead(path);
                if (JsonSerializer.Deserialize<PersistJob>(file, Json) is { } job)
                {
                    jobs.Add(job);
                }
            }
            catch (JsonException e)
            {
                unreadable.Add($"{path}: {e.Message}");
            }
        }

        foreach (var stale in Directory.EnumerateFiles(Path.Combine(_root, "tmp")))
        {
            File.Delete(stale);
        }

        return (jobs, unreadable);
    }
}
