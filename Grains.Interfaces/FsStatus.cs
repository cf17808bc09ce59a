namespace GrainFs;

/// <summary>
/// The outcome of a file-system operation. Values are Linux errno numbers so that the FUSE adapter,
/// the CLI and the SDK map them 1:1; expected outcomes travel as values, never as exceptions.
/// </summary>
public enum FsStatus
{
    /// <summary>The operation succeeded.</summary>
    Ok = 0,

    /// <summary>EPERM: the operation is not permitted on this object.</summary>
    NotPermitted = 1,

    /// <summary>ENOENT: no such file or directory.</summary>
    NotFound = 2,

    /// <summary>EIO: under-storage or the cluster failed; the message names the path and the cause.</summary>
    IoError = 5,

    /// <summary>EACCES: access denied by the under-storage or by the mount's permissions.</summary>
    AccessDenied = 13,

    /// <summary>EBADF: the handle is not open for this operation (for example a read of a file opened only for writing).</summary>
    BadHandle = 9,

    /// <summary>EBUSY: the object is in use (for example a mount point with clients attached).</summary>
    Busy = 16,

    /// <summary>EEXIST: the object already exists (for example a mount point already in use).</summary>
    Exists = 17,

    /// <summary>EXDEV: a rename across mounts (copy, then remove, instead).</summary>
    CrossDevice = 18,

    /// <summary>ENOTDIR: a path component is not a directory.</summary>
    NotADirectory = 20,

    /// <summary>EISDIR: the path is a directory where a file was expected.</summary>
    IsADirectory = 21,

    /// <summary>EINVAL: an argument (path, URI, option) is invalid; the message names it.</summary>
    InvalidArgument = 22,

    /// <summary>ENOSPC: the write tier is full of files not yet persisted (nothing can be evicted to make room).</summary>
    NoSpace = 28,

    /// <summary>EROFS: the mount is read-only.</summary>
    ReadOnly = 30,

    /// <summary>ENAMETOOLONG: a path component or the whole path is too long.</summary>
    NameTooLong = 36,

    /// <summary>ENOTEMPTY: the directory is not empty.</summary>
    NotEmpty = 39,

    /// <summary>EOPNOTSUPP: the under-storage cannot do this (for example rename a directory in an object store).</summary>
    NotSupported = 95,

    /// <summary>ETIMEDOUT: the operation did not finish before its deadline.</summary>
    TimedOut = 110,

    /// <summary>ESTALE: the caller's view of the mount table is out of date; refresh it and retry.</summary>
    Stale = 116,

    /// <summary>EDQUOT: the mount's quota (quota-bytes, quota-files) would be exceeded.</summary>
    QuotaExceeded = 122,
}

/// <summary>Helpers for <see cref="FsStatus"/>.</summary>
public static class FsStatusExtensions
{
    /// <summary>The errno name of a status, as a user would look it up (ENOENT, EIO, …).</summary>
    public static string ErrnoName(this FsStatus status) => status switch
    {
        FsStatus.Ok => "OK",
        FsStatus.NotPermitted => "EPERM",
        FsStatus.NotFound => "ENOENT",
        FsStatus.IoError => "EIO",
        FsStatus.AccessDenied => "EACCES",
        FsStatus.BadHandle => "EBADF",
        FsStatus.Busy => "EBUSY",
        FsStatus.CrossDevice => "EXDEV",
        FsStatus.NoSpace => "ENOSPC",
        FsStatus.NotSupported => "EOPNOTSUPP",
        FsStatus.QuotaExceeded => "EDQUOT",
        FsStatus.Exists => "EEXIST",
        FsStatus.NotADirectory => "ENOTDIR",
        FsStatus.IsADirectory => "EISDIR",
        FsStatus.InvalidArgument => "EINVAL",
        FsStatus.ReadOnly => "EROFS",
        FsStatus.NameTooLong => "ENAMETOOLONG",
        FsStatus.NotEmpty => "ENOTEMPTY",
        FsStatus.TimedOut => "ETIMEDOUT",
        FsStatus.Stale => "ESTALE",
        _ => "E" + ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>A short human description of a status, used when no message is given.</summary>
    public static string Describe(this FsStatus status) => status switch
    {
        FsStatus.Ok => "ok",
        FsStatus.NotPermitted => "operation not permitted",
        FsStatus.NotFound => "no such file or directory",
        FsStatus.IoError => "input/output error",
        FsStatus.AccessDenied => "permission denied",
        FsStatus.BadHandle => "bad file descriptor",
        FsStatus.Busy => "device or resource busy",
        FsStatus.CrossDevice => "invalid cross-device link",
        FsStatus.NoSpace => "no space left on device",
        FsStatus.NotSupported => "operation not supported",
        FsStatus.QuotaExceeded => "disk quota exceeded",
        FsStatus.Exists => "already exists",
        FsStatus.NotADirectory => "not a directory",
        FsStatus.IsADirectory => "is a directory",
        FsStatus.InvalidArgument => "invalid argument",
        FsStatus.ReadOnly => "read-only file system",
        FsStatus.NameTooLong => "file name too long",
        FsStatus.NotEmpty => "directory not empty",
        FsStatus.TimedOut => "timed out",
        FsStatus.Stale => "stale mount table",
        _ => status.ToString(),
    };
}
