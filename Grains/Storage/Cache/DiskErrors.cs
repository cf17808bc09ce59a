namespace GrainFs.Storage.Cache;

/// <summary>
/// What an <see cref="IOException"/> from a tier's disk says about the disk. Errno values of Linux, which .NET gives as the
/// HResult of the IOException of a failed read or write; a file created with its size reserved on a full disk fails with
/// .NET's own "disk was full" exception instead.
/// </summary>
public static class DiskErrors
{
    /// <summary>The disk is full (ENOSPC, EDQUOT), whatever the store's accounting said; .NET words a failed preallocation its own way.</summary>
    public static bool IsFull(IOException e)
    {
        ArgumentNullException.ThrowIfNull(e);
        return e is not TierFullException && (e.HResult is 28 or 122 || e.Message.Contains("because the disk was full", StringComparison.Ordinal));
    }

    /// <summary>The disk failed the operation: full, an I/O error (EIO) or read-only (EROFS).</summary>
    public static bool IsFault(IOException e)
    {
        ArgumentNullException.ThrowIfNull(e);
        return IsFull(e) || (e is not TierFullException && e.HResult is 5 or 30);
    }
}
