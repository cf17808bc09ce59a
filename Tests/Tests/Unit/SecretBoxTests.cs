using System.Security.Cryptography;
using System.Text;
using GrainFs.DataPlane.Security;
using GrainFs.Grains.Namespace;

namespace GrainFs.Tests.Unit;

/// <summary>Mount secrets sealed under the cluster key: the box alone, and the mount options as the mount table stores them.</summary>
public class SecretBoxTests
{
    private static readonly byte[] Old = RandomNumberGenerator.GetBytes(32);
    private static readonly byte[] New = RandomNumberGenerator.GetBytes(32);

    private static string Open(SecretBox box, string value, string context)
    {
        Assert.True(box.TryOpen(value, context, out var plaintext, out var problem), problem.ToString());
        Assert.Equal(UnsealProblem.None, problem);
        return plaintext;
    }

    [Fact]
    public void A_sealed_value_describes_itself_hides_the_secret_and_opens_again()
    {
        var box = new SecretBox([Old]);
        var secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY-ü";
        var value = box.Seal(secret, "s3://b\n\nsecret-key");

        var derived = HKDF.DeriveKey(HashAlgorithmName.SHA256, Old, 32, [], Encoding.UTF8.GetBytes("grainfs-mount-secrets-v1"));
        var id = Convert.ToHexStringLower(SHA256.HashData(derived))[..8];
        Assert.StartsWith($"gfs-sealed:v1:{id}:", value, StringComparison.Ordinal);
        Assert.Equal(id, box.CurrentKeyId);
        Assert.Equal(id, SecretBox.KeyIdOf(value));
        Assert.True(SecretBox.IsSealed(value));
        Assert.DoesNotContain("EXAMPLEKEY", value, StringComparison.Ordinal);
        Assert.Equal(12 + Encoding.UTF8.GetByteCount(secret) + 16, Convert.FromBase64String(value.Split(':')[3]).Length);
        Assert.Equal(secret, Open(box, value, "s3://b\n\nsecret-key"));
        Assert.Equal(string.Empty, Open(box, box.Seal(string.Empty, "c"), "c"));

        // A fresh nonce per value: the same secret never seals to the same text.
        Assert.NotEqual(value, box.Seal(secret, "s3://b\n\nsecret-key"));
        Assert.False(SecretBox.IsSealed(secret));
    }

    [Fact]
    public void A_changed_byte_or_context_is_detected()
    {
        var box = new SecretBox([Old]);
        var value = box.Seal("the secret", "ctx");
        var head = value[..value.LastIndexOf(':')];
        var bytes = Convert.FromBase64String(value[(value.LastIndexOf(':') + 1)..]);
        for (var i = 0; i < bytes.Length; i++)
        {
            var changed = (byte[])bytes.Clone();
            changed[i] ^= 0x01;
            Assert.False(box.TryOpen($"{head}:{Convert.ToBase64String(changed)}", "ctx", out var plaintext, out var problem));
            Assert.Equal(UnsealProblem.Altered, problem);
            Assert.Equal(string.Empty, plaintext);
        }

        Assert.False(box.TryOpen(value, "another ctx", out _, out var moved));
        Assert.Equal(UnsealProblem.Altered, moved);
        Assert.False(box.TryOpen(value[..(head.Length + 10)], "ctx", out _, out var cut));
        Assert.Equal(UnsealProblem.Malformed, cut);
        Assert.False(box.TryOpen($"{head}:not base64!", "ctx", out _, out var garbled));
        Assert.Equal(UnsealProblem.Malformed, garbled);
        Assert.False(box.TryOpen("gfs-sealed:v1:", "ctx", out _, out var empty));
        Assert.Equal(UnsealProblem.Malformed, empty);
    }

    [Fact]
    public void A_rotated_ring_opens_old_values_and_seals_under_its_new_key()
    {
        var before = new SecretBox([Old]);
        var sealedBefore = before.Seal("old secret", "ctx");
        var rotated = new SecretBox([New, Old]);
        Assert.Equal("old secret", Open(rotated, sealedBefore, "ctx"));

        var sealedAfter = rotated.Seal("new secret", "ctx");
        Assert.Equal(new SecretBox([New]).CurrentKeyId, SecretBox.KeyIdOf(sealedAfter));
        Assert.NotEqual(before.CurrentKeyId, rotated.CurrentKeyId);
        Assert.Equal([rotated.CurrentKeyId, before.CurrentKeyId], rotated.KeyIds);

        // Once the old key is dropped from the ring, its values no longer open, and the box says the key does not match.
        var retired = new SecretBox([New]);
        Assert.False(retired.TryOpen(sealedBefore, "ctx", out _, out var problem));
        Assert.Equal(UnsealProblem.KeyMismatch, problem);
        Assert.Equal("new secret", Open(retired, sealedAfter, "ctx"));
    }

    [Fact]
    public void A_box_over_a_changing_ring_follows_it()
    {
        IReadOnlyList<byte[]> ring = [Old];
        var box = new SecretBox(() => ring);
        var first = box.Seal("x", "c");
        ring = [New, Old];
        Assert.Equal(new SecretBox([New]).CurrentKeyId, SecretBox.KeyIdOf(box.Seal("y", "c")));
        Assert.Equal("x", Open(box, first, "c"));
        Assert.Throws<CredentialException>(() => new SecretBox([]).Seal("z", "c"));
    }

    private static MountInfo S3Mount(MountOptions options, string uri = "s3://bucket/prefix") => new(7, "/data", uri, options, DateTime.UtcNow);

    private static MountOptions WithProperties(params (string Key, string Value)[] properties) =>
        MountOptions.Default with { Properties = properties.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal) };

    [Fact]
    public void Mount_options_are_stored_with_every_secret_sealed_and_loaded_back_open()
    {
        var box = new SecretBox([Old]);
        var options = WithProperties(("endpoint", "http://10.0.0.5:9000"), ("access-key", "AKIDEXAMPLE"), ("secret-key", "s3cr3t"), ("session-token", "tok"), ("region", "eu-west-1"));
        var stored = MountSecrets.Seal(box, "s3://bucket/prefix", options);
        var json = MountOptionsParser.ToJson(stored);
        foreach (var secret in new[] { "AKIDEXAMPLE", "s3cr3t", "\"tok\"" })
        {
            Assert.DoesNotContain(secret, json, StringComparison.Ordinal);
        }

        Assert.Contains("http://10.0.0.5:9000", json, StringComparison.Ordinal);
        Assert.Contains("eu-west-1", json, StringComparison.Ordinal);
        var loaded = MountSecrets.Open(box, S3Mount(MountOptionsParser.FromJson(json)), out var clear, out var problem);
        Assert.Null(problem);
        Assert.Equal(0, clear);
        Assert.Equal(options.Properties.OrderBy(p => p.Key), loaded.Properties.OrderBy(p => p.Key));
        Assert.Null(MountSecrets.Unopened(box, S3Mount(loaded)));

        // Sealed values are not sealed twice.
        Assert.Equal(stored.Properties["secret-key"], MountSecrets.Seal(box, "s3://bucket/prefix", stored).Properties["secret-key"]);
    }

    [Fact]
    public void A_table_in_clear_is_read_as_is_and_counted_for_resealing()
    {
        var box = new SecretBox([Old]);
        var loaded = MountSecrets.Open(box, S3Mount(WithProperties(("access-key", "AKID"), ("secret-key", "plain"))), out var clear, out var problem);
        Assert.Null(problem);
        Assert.Equal(2, clear);
        Assert.Equal("plain", loaded.Properties["secret-key"]);
    }

    [Fact]
    public void Secrets_sealed_for_one_mount_do_not_open_on_another_uri_or_endpoint()
    {
        var box = new SecretBox([Old]);
        var stored = MountSecrets.Seal(box, "s3://bucket/prefix", WithProperties(("endpoint", "http://s3.local"), ("secret-key", "s3cr3t"), ("access-key", "AKID")));
        var elsewhere = stored with { Properties = new Dictionary<string, string>(stored.Properties) { ["endpoint"] = "http://attacker.example" } };
        MountSecrets.Open(box, S3Mount(elsewhere), out _, out var moved);
        Assert.Contains("the stored record was altered", moved, StringComparison.Ordinal);
        MountSecrets.Open(box, S3Mount(stored, "s3://other-bucket"), out _, out var copied);
        Assert.Contains("mount /data (s3://other-bucket)", copied, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cr3t", moved + copied, StringComparison.Ordinal);
    }

    [Fact]
    public void Secrets_sealed_under_another_cluster_key_stay_sealed_with_a_message_naming_the_mount()
    {
        var stored = MountSecrets.Seal(new SecretBox([Old]), "s3://bucket/prefix", WithProperties(("secret-key", "s3cr3t"), ("access-key", "AKID")));
        var other = new SecretBox([New]);
        var loaded = MountSecrets.Open(other, S3Mount(stored), out _, out var problem);
        Assert.NotNull(problem);
        Assert.StartsWith("mount /data (s3://bucket/prefix): its ", problem, StringComparison.Ordinal);
        Assert.Contains("the cluster key does not match", problem, StringComparison.Ordinal);
        Assert.Contains(new SecretBox([Old]).CurrentKeyId, problem, StringComparison.Ordinal);
        Assert.True(SecretBox.IsSealed(loaded.Properties["secret-key"]));

        var unopened = MountSecrets.Unopened(other, S3Mount(loaded));
        Assert.NotNull(unopened);
        Assert.StartsWith("mount /data: its ", unopened, StringComparison.Ordinal);
        Assert.Contains("the cluster key does not match", unopened, StringComparison.Ordinal);

        // Saving the table keeps the value it could not open exactly as it was.
        Assert.Equal(stored.Properties["secret-key"], MountSecrets.Seal(other, "s3://bucket/prefix", loaded).Properties["secret-key"]);
    }

    [Fact]
    public void Secrets_under_an_older_key_of_the_ring_open_and_are_counted_for_sealing_again()
    {
        var stored = MountSecrets.Seal(new SecretBox([Old]), "s3://bucket/prefix", WithProperties(("secret-key", "s3cr3t"), ("access-key", "AKID")));
        var loaded = MountSecrets.Open(new SecretBox([New, Old]), S3Mount(stored), out var stale, out var problem);
        Assert.Null(problem);
        Assert.Equal(2, stale);
        Assert.Equal("s3cr3t", loaded.Properties["secret-key"]);
        MountSecrets.Open(new SecretBox([Old, New]), S3Mount(stored), out var current, out _);
        Assert.Equal(0, current);
    }

    [Fact]
    public void A_box_without_keys_stores_secrets_as_given_and_cannot_open_sealed_ones()
    {
        var none = new SecretBox([]);
        Assert.False(none.HasKeys);
        var options = WithProperties(("secret-key", "s3cr3t"));
        Assert.Same(options, MountSecrets.Seal(none, "s3://b", options));
        MountSecrets.Open(none, S3Mount(options), out var stale, out var clearProblem);
        Assert.Equal((0, (string?)null), (stale, clearProblem));

        var stored = MountSecrets.Seal(new SecretBox([Old]), "s3://b", options);
        MountSecrets.Open(none, S3Mount(stored, "s3://b"), out _, out var problem);
        Assert.Contains("no cluster key to open it", problem, StringComparison.Ordinal);
        Assert.Contains("no cluster key to open it", MountSecrets.Unopened(none, S3Mount(stored, "s3://b")), StringComparison.Ordinal);
    }
}
