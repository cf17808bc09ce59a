using GrainFs.DataPlane.Blocks;

namespace GrainFs;

/// <summary>The wire form of a <see cref="BlockKey"/> (an Orleans-free type of the data plane) in grain calls.</summary>
[GenerateSerializer, Immutable, Alias("grainfs.BlockKey")]
public struct BlockKeySurrogate
{
    /// <summary>High half of the file version id.</summary>
    [Id(0)]
    public ulong FileHi;

    /// <summary>Low half of the file version id.</summary>
    [Id(1)]
    public ulong FileLo;

    /// <summary>The block's index in the file.</summary>
    [Id(2)]
    public int Index;
}

/// <summary>Lets grain calls carry <see cref="BlockKey"/> values as they are, never as text to parse.</summary>
[RegisterConverter]
public sealed class BlockKeySurrogateConverter : IConverter<BlockKey, BlockKeySurrogate>
{
    /// <inheritdoc />
    public BlockKey ConvertFromSurrogate(in BlockKeySurrogate surrogate) => new(surrogate.FileHi, surrogate.FileLo, surrogate.Index);

    /// <inheritdoc />
    public BlockKeySurrogate ConvertToSurrogate(in BlockKey value) => new() { FileHi = value.FileHi, FileLo = value.FileLo, Index = value.Index };
}
