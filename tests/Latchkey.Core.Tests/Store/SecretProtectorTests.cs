using System.Security.Cryptography;
using System.Text;
using Latchkey.Store;

namespace Latchkey.Tests.Store;

public sealed class SecretProtectorTests
{
    private static SecretProtector NewProtector() => new(RandomNumberGenerator.GetBytes(32));

    [Fact]
    public void Seal_ThenOpenForSameRecord_RoundTrips()
    {
        using var protector = NewProtector();
        var sealedBlob = protector.Seal("hello"u8, "rec-1");

        Assert.True(protector.TryOpen(sealedBlob, "rec-1", protector.KeyId, out var plaintext, out _));
        Assert.Equal("hello", Encoding.UTF8.GetString(plaintext));
    }

    [Fact]
    public void TryOpen_CiphertextMovedToAnotherRecord_Fails()
    {
        using var protector = NewProtector();
        var sealedBlob = protector.Seal("hello"u8, "rec-1");

        Assert.False(protector.TryOpen(sealedBlob, "rec-2", protector.KeyId, out _, out var failure));
        Assert.Contains("integrity", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void TryOpen_AnyFlippedByte_Fails()
    {
        using var protector = NewProtector();
        var sealedBlob = protector.Seal("a secret value"u8, "rec");
        for (var i = 0; i < sealedBlob.Length; i++)
        {
            var copy = sealedBlob.ToArray();
            copy[i] ^= 1;
            Assert.False(protector.TryOpen(copy, "rec", protector.KeyId, out _, out _));
        }
    }

    [Fact]
    public void Seal_SamePlaintextTwice_DifferentCiphertexts()
    {
        using var protector = NewProtector();

        Assert.NotEqual(protector.Seal("x"u8, "r"), protector.Seal("x"u8, "r"));
    }

    [Fact]
    public void Fingerprint_SameTokenSameKey_StableAndNotTheToken()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        using var one = new SecretProtector(key);
        using var two = new SecretProtector(key);
        using var other = NewProtector();

        Assert.Equal(one.Fingerprint("rt-1"), two.Fingerprint("rt-1"));
        Assert.NotEqual(one.Fingerprint("rt-1"), one.Fingerprint("rt-2"));
        Assert.NotEqual(one.Fingerprint("rt-1"), other.Fingerprint("rt-1"));
        Assert.DoesNotContain("rt-1", one.Fingerprint("rt-1"), StringComparison.Ordinal);
    }
}
