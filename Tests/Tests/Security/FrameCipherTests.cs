using System.Security.Cryptography;
using GrainFs.DataPlane.Security;

namespace GrainFs.Tests.Security;

/// <summary>The frame construction's key update: both ends replace their key at the same frame, and the old key no longer opens frames.</summary>
public sealed class FrameCipherTests
{
    [Fact]
    public void Keys_are_replaced_at_the_same_frame_on_both_ends()
    {
        var toServer = RandomNumberGenerator.GetBytes(32);
        var toClient = RandomNumberGenerator.GetBytes(32);
        using var client = FrameCipher.FromKeys(toServer, toClient, maxFrame: 1024, framesPerKey: 3);
        using var server = FrameCipher.FromKeys(toClient, toServer, maxFrame: 1024, framesPerKey: 3);
        // An end that never updates its key: it opens the first three frames and no more.
        using var stale = FrameCipher.FromKeys(toClient, toServer, maxFrame: 1024);

        for (var i = 0; i < 10; i++)
        {
            var plaintext = RandomNumberGenerator.GetBytes(1 + (i * 37));
            var frame = new byte[FrameCipher.FrameSize(plaintext.Length)];
            client.Seal(plaintext, frame);
            var length = server.ReadLength(frame.AsSpan(0, FrameCipher.LengthSize));
            var opened = new byte[length];
            server.Open(frame.AsSpan(0, FrameCipher.LengthSize), frame.AsSpan(FrameCipher.LengthSize), opened);
            Assert.Equal(plaintext, opened);

            if (i < 3)
            {
                stale.Open(frame.AsSpan(0, FrameCipher.LengthSize), frame.AsSpan(FrameCipher.LengthSize), new byte[length]);
            }
            else if (i == 3)
            {
                var error = Assert.Throws<IOException>(() => stale.Open(frame.AsSpan(0, FrameCipher.LengthSize), frame.AsSpan(FrameCipher.LengthSize), new byte[length]));
                Assert.Contains("authentication tag", error.Message, StringComparison.Ordinal);
            }
        }

        // The other direction is independent of this one and updates on its own count.
        var reply = "reply"u8.ToArray();
        var back = new byte[FrameCipher.FrameSize(reply.Length)];
        server.Seal(reply, back);
        var got = new byte[reply.Length];
        client.Open(back.AsSpan(0, FrameCipher.LengthSize), back.AsSpan(FrameCipher.LengthSize), got);
        Assert.Equal(reply, got);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    [InlineData(1025)]
    [InlineData(int.MaxValue)]
    public void An_absurd_length_is_refused(int length)
    {
        using var cipher = FrameCipher.FromKeys(new byte[32], new byte[32], maxFrame: 1024);
        var field = BitConverter.GetBytes(length);
        var error = Assert.Throws<InvalidDataException>(() => cipher.ReadLength(field));
        Assert.Contains("at most 1024", error.Message, StringComparison.Ordinal);
    }
}
