using GrainFs.DataPlane.Security;

namespace GrainFs.Grains.Namespace;

/// <summary>
/// Mount credentials as the metadata store keeps them: every option of <see cref="MountOptions.SecretKeys"/> sealed by
/// the <see cref="SecretBox"/> (under the cluster key, which is never in the database), bound to the mount's URI, its
/// endpoint and the option's name, so a sealed value copied onto another mount, or a mount re-pointed at another
/// endpoint in the database, does not open. Values are opened once, when the mount table grain loads the table; the
/// silos then hold them in memory as before.
/// </summary>
public static class MountSecrets
{
    /// <summary>What a secret of a mount is bound to.</summary>
    public static string Context(string uri, IReadOnlyDictionary<string, string> properties, string key) =>
        $"{uri}\n{(properties.TryGetValue("endpoint", out var endpoint) ? endpoint : string.Empty)}\n{key}";

    /// <summary>
    /// The options to store: each secret sealed. A value still sealed (one this silo could not open at load) is kept as
    /// it is, so saving the table for another mount's sake never loses it.
    /// </summary>
    public static MountOptions Seal(SecretBox box, string uri, MountOptions options)
    {
        if (!box.HasKeys)
        {
            return options;
        }

        Dictionary<string, string>? sealedProperties = null;
        foreach (var (key, value) in options.Properties)
        {
            if (MountOptions.SecretKeys.Contains(key) && !SecretBox.IsSealed(value))
            {
                sealedProperties ??= new Dictionary<string, string>(options.Properties, StringComparer.Ordinal);
                sealedProperties[key] = box.Seal(value, Context(uri, options.Properties, key));
            }
        }

        return sealedProperties is null ? options : options with { Properties = sealedProperties };
    }

    /// <summary>
    /// The stored options of <paramref name="mount"/> with each sealed secret opened. <paramref name="stale"/> counts the
    /// secrets to seal again: found in clear (a table written before sealing: used as they are) or sealed under a key
    /// that is no longer the current one (a rotated cluster key). A secret that does not open stays sealed;
    /// <paramref name="problem"/> then says why, naming the mount.
    /// </summary>
    public static MountOptions Open(SecretBox box, MountInfo mount, out int stale, out string? problem)
    {
        stale = 0;
        problem = null;
        var current = box.HasKeys ? box.CurrentKeyId : null;
        Dictionary<string, string>? opened = null;
        foreach (var (key, value) in mount.Options.Properties)
        {
            if (!MountOptions.SecretKeys.Contains(key))
            {
                continue;
            }

            if (!SecretBox.IsSealed(value))
            {
                stale += current is null ? 0 : 1;
                continue;
            }

            if (current is null)
            {
                problem ??= $"mount {mount.Path} ({mount.Uri}): its {key} is sealed and this silo has no cluster key to open it (--insecure-no-auth)";
                continue;
            }

            if (box.TryOpen(value, Context(mount.Uri, mount.Options.Properties, key), out var plaintext, out var why))
            {
                opened ??= new Dictionary<string, string>(mount.Options.Properties, StringComparer.Ordinal);
                opened[key] = plaintext;
                stale += SecretBox.KeyIdOf(value) == current ? 0 : 1;
            }
            else
            {
                problem ??= $"mount {mount.Path} ({mount.Uri}): {Reason(box, key, value, why)}";
            }
        }

        return opened is null ? mount.Options : mount.Options with { Properties = opened };
    }

    /// <summary>Null when none of the mount's secrets is still sealed; else why it could not be opened, naming the mount (not its URI: the caller's exception does).</summary>
    public static string? Unopened(SecretBox? box, MountInfo mount)
    {
        foreach (var (key, value) in mount.Options.Properties)
        {
            if (!MountOptions.SecretKeys.Contains(key) || !SecretBox.IsSealed(value))
            {
                continue;
            }

            if (box is null || !box.HasKeys)
            {
                return $"mount {mount.Path}: its {key} is sealed and this silo has no cluster key to open it";
            }

            return box.TryOpen(value, Context(mount.Uri, mount.Options.Properties, key), out _, out var why)
                // Opens here: the ring changed since the mount table was loaded, which has to load it again.
                ? $"mount {mount.Path}: its {key} did not open when the mount table was loaded and opens with this silo's cluster key now; restart the silo holding the mount table"
                : $"mount {mount.Path}: {Reason(box, key, value, why)}";
        }

        return null;
    }

    private static string Reason(SecretBox box, string key, string value, UnsealProblem why) => why switch
    {
        UnsealProblem.KeyMismatch =>
            $"its {key} cannot be unsealed: the cluster key does not match the one it was sealed with " +
            $"(sealed under key id {SecretBox.KeyIdOf(value)}; this silo's cluster.key has {string.Join(", ", box.KeyIds)}). " +
            "Give the silos the cluster.key the mount was made with (a later line of cluster.key is still accepted), or unmount it and mount it again",
        UnsealProblem.Altered =>
            $"its {key} cannot be unsealed with cluster key id {SecretBox.KeyIdOf(value)}: the stored record was altered " +
            "(its value, URI or endpoint changed in the database since it was sealed); unmount it and mount it again",
        _ => $"its {key} is not a valid sealed value; unmount it and mount it again",
    };
}
