using GrainFs.Grains.Namespace;

namespace GrainFs.Grains;

/// <summary>Grain classes the host configures by type (collection age, placement), without making them public.</summary>
public static class GrainTypes
{
    /// <summary>The directory grain class.</summary>
    public static Type Directory => typeof(DirectoryGrain);

    /// <summary>The mount table grain class.</summary>
    public static Type MountTable => typeof(MountTableGrain);
}
