namespace GrainFs;

/// <summary>
/// The metadata store (PostgreSQL) failed a silo's request: unreachable, stopped, restarting. Thrown to callers in place
/// of the database driver's exception (which does not cross the wire); an <see cref="OrleansException"/>, so every client
/// path that handles a cluster error handles it. The message names the store and the cause, never credentials.
/// </summary>
[GenerateSerializer, Alias("grainfs.MetadataStoreException")]
public sealed class GrainFsStoreException : OrleansException
{
    /// <summary>A store failure with its cause.</summary>
    public GrainFsStoreException(string message)
        : base(message)
    {
    }

    /// <summary>For serializers.</summary>
    public GrainFsStoreException()
    {
    }

    /// <summary>For serializers.</summary>
    public GrainFsStoreException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
