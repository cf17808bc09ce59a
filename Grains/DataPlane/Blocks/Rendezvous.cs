using System.IO.Hashing;
using System.Text;

namespace GrainFs.DataPlane.Blocks;

/// <summary>
/// Rendezvous (highest random weight) hashing: a block's home is the candidate whose hash with the block key is
/// highest. Clients and the placement director compute the same answer from the same silo names, and when a silo
/// joins or leaves only the blocks that pick it move.
/// </summary>
public static class Rendezvous
{
    /// <summary>The index of the winning candidate, or -1 when there are none.</summary>
    public static int Pick(BlockKey key, IReadOnlyList<string> candidates)
    {
        var best = -1;
        ulong bestWeight = 0;
        var keyHash = key.Hash64();
        Span<byte> scratch = stackalloc byte[512];
        for (var i = 0; i < candidates.Count; i++)
        {
            var weight = Weight(keyHash, candidates[i], scratch);
            if (best < 0 || weight > bestWeight || (weight == bestWeight && string.CompareOrdinal(candidates[i], candidates[best]) < 0))
            {
                best = i;
                bestWeight = weight;
            }
        }

        return best;
    }

    private static ulong Weight(ulong keyHash, string candidate, Span<byte> scratch)
    {
        var max = Encoding.UTF8.GetMaxByteCount(candidate.Length);
        var bytes = max <= scratch.Length ? scratch : new byte[max];
        var length = Encoding.UTF8.GetBytes(candidate, bytes);
        return XxHash3.HashToUInt64(bytes[..length], (long)keyHash);
    }
}

/// <summary>
/// Which silos may be a block's home: those with the <see cref="Role"/> role (GPU hosts, so blocks sit where they are
/// read), or every silo when none has it. The one rule the placement director and the clients both apply.
/// </summary>
public static class BlockHomes
{
    /// <summary>The role of silos that hold block homes.</summary>
    public const string Role = "gpu";

    /// <summary>The candidates among <paramref name="silos"/>, in their order.</summary>
    public static List<T> Candidates<T>(IReadOnlyList<T> silos, Func<T, IEnumerable<string>> rolesOf)
    {
        var homes = new List<T>(silos.Count);
        foreach (var silo in silos)
        {
            if (HasRole(rolesOf(silo)))
            {
                homes.Add(silo);
            }
        }

        return homes.Count > 0 ? homes : [.. silos];
    }

    /// <summary>True when the roles include <see cref="Role"/>.</summary>
    public static bool HasRole(IEnumerable<string> roles)
    {
        foreach (var role in roles)
        {
            if (string.Equals(role.Trim(), Role, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}
