namespace GrainFs.Client;

/// <summary>The outcome of an SDK call: a status (errno-like) and, when it is <see cref="FsStatus.Ok"/>, a value.</summary>
/// <typeparam name="T">The value type.</typeparam>
/// <param name="Status">The outcome.</param>
/// <param name="Value">The value when <see cref="IsOk"/>.</param>
/// <param name="Message">Why it failed, naming the path (null on success).</param>
public readonly record struct FsResult<T>(FsStatus Status, T? Value, string? Message)
{
    /// <summary>True when the call succeeded.</summary>
    public bool IsOk => Status == FsStatus.Ok;

    /// <summary>A success.</summary>
    public static FsResult<T> Ok(T value) => new(FsStatus.Ok, value, null);

    /// <summary>A failure.</summary>
    public static FsResult<T> Fail(FsStatus status, string? message) => new(status, default, message);

    /// <summary>The value, or a <see cref="GrainFsException"/> carrying the status and message.</summary>
    public T GetValueOrThrow() => IsOk ? Value! : throw new GrainFsException(Status, Message);

    /// <summary>The message, or the status's description when there is none.</summary>
    public string Describe() => Message ?? Status.Describe();
}

/// <summary>Thrown by the SDK's enumerating helpers when a file-system call fails.</summary>
public sealed class GrainFsException(FsStatus status, string? message)
    : Exception($"{message ?? status.Describe()} ({status.ErrnoName()})")
{
    /// <summary>The outcome.</summary>
    public FsStatus Status { get; } = status;
}

/// <summary>A page of a directory listing.</summary>
/// <param name="Entries">The entries of this page.</param>
/// <param name="NextCursor">Pass to the next call; null when the listing is complete.</param>
public sealed record DirectoryPage(IReadOnlyList<FsEntry> Entries, string? NextCursor);
