using GrainFs.Storage.UnderStorage;

namespace GrainFs.Grains.Namespace;

/// <summary>Maps under-storage failures to file-system outcomes.</summary>
internal static class Errors
{
    public static FsStatus ToStatus(UnderStorageError error) => error switch
    {
        UnderStorageError.NotFound => FsStatus.NotFound,
        UnderStorageError.NoSuchBucket => FsStatus.NotFound,
        UnderStorageError.NotADirectory => FsStatus.NotADirectory,
        UnderStorageError.IsADirectory => FsStatus.IsADirectory,
        UnderStorageError.AccessDenied => FsStatus.AccessDenied,
        UnderStorageError.InvalidArgument => FsStatus.InvalidArgument,
        UnderStorageError.AlreadyExists => FsStatus.Exists,
        UnderStorageError.NotEmpty => FsStatus.NotEmpty,
        UnderStorageError.NotSupported => FsStatus.NotSupported,
        UnderStorageError.NoSpace => FsStatus.NoSpace,
        _ => FsStatus.IoError,
    };
}
