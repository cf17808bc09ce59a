namespace GrainFs.Client;

/// <summary>
/// A file being written: positional writes at any offset until it is closed; the file becomes visible to every
/// client at <see cref="CloseAsync"/>, whole. Not thread-safe for concurrent writes of overlapping ranges.
/// </summary>
public sealed partial class GrainFsWriter : IAsyncDisposable
{
    /// <summary>The full GrainFS path.</summary>
    public string Path { get; private set; } = string.Empty;

    /// <summary>Bytes written so far (the highest offset written).</summary>
    public long Length { get; private set; }

    /// <summary>The write type in effect.</summary>
    public WriteType WriteType { get; private set; }

    /// <summary>True once closed (committed) or aborted.</summary>
    public bool IsClosed { get; private set; }
}
