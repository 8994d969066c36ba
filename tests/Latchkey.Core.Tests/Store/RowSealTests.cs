using System.Security.Cryptography;
using FsCheck.Xunit;
using Latchkey.Store;

namespace Latchkey.Tests.Store;

/// <summary>The bytes a row seal covers, and the seal itself.</summary>
public sealed class RowSealTests
{
    /// <summary>Moving characters from one field to the next changes the encoding: field boundaries cannot be shifted.</summary>
    [Property(MaxTest = 500)]
    public bool ClientKey_SameTextSplitDifferentlyBetweenFields_EncodesDifferently(string first, string second, string moved)
    {
        first ??= string.Empty;
        second ??= string.Empty;
        moved = string.IsNullOrEmpty(moved) ? "x" : moved;
        var one = RowSeal.ClientKey(first + moved, second, "fp", "[]", 1, null, null, null);
        var other = RowSeal.ClientKey(first, moved + second, "fp", "[]", 1, null, null, null);
        return !one.AsSpan().SequenceEqual(other);
    }

    [Fact]
    public void ClientKey_NullAndZeroAndEmpty_EncodeDifferently()
    {
        var noExpiry = RowSeal.ClientKey("k", "id", "fp", "[]", 1, null, null, null);
        var zeroExpiry = RowSeal.ClientKey("k", "id", "fp", "[]", 1, 0, null, null);
        var revokedAtZero = RowSeal.ClientKey("k", "id", "fp", "[]", 1, null, 0, null);

        Assert.False(noExpiry.AsSpan().SequenceEqual(zeroExpiry));
        Assert.False(zeroExpiry.AsSpan().SequenceEqual(revokedAtZero));
        Assert.False(RowSeal.Credential("i", "n", "oauth", 1, "ok", null, "{}", "k", [], null, null).AsSpan()
            .SequenceEqual(RowSeal.Credential("i", "n", "oauth", 1, "ok", string.Empty, "{}", "k", [], null, null)));
    }

    [Fact]
    public void Credential_AndSavedVersionWithTheSameFields_EncodeDifferently()
    {
        var current = RowSeal.Credential("id", "name", "api-key", 3, "ok", null, "{}", "key", [1, 2, 3], null, null);
        var saved = RowSeal.History("id", "name", "api-key", 3, "ok", null, "{}", "key", [1, 2, 3], null, 0);

        Assert.False(current.AsSpan().SequenceEqual(saved));
    }

    [Fact]
    public void ClientKey_MadeFor_NullEncodesAsBeforeTheFieldAndAnyValueDiffers()
    {
        var none = RowSeal.ClientKey("k", "id", "fp", "[]", 1, null, null, null);
        var empty = RowSeal.ClientKey("k", "id", "fp", "[]", 1, null, null, string.Empty);
        var codex = RowSeal.ClientKey("k", "id", "fp", "[]", 1, null, null, "codex");

        Assert.Contains("latchkey/row/client-key/v1", System.Text.Encoding.UTF8.GetString(none), StringComparison.Ordinal);
        Assert.False(none.AsSpan().SequenceEqual(empty));
        Assert.False(empty.AsSpan().SequenceEqual(codex));
        Assert.False(none.AsSpan().SequenceEqual(codex));
    }

    [Fact]
    public void VerifyRow_SealMadeWithThisKey_OnlyThatRowVerifies()
    {
        using var protector = new SecretProtector(RandomNumberGenerator.GetBytes(32));
        using var other = new SecretProtector(RandomNumberGenerator.GetBytes(32));
        var row = RowSeal.ClientKey("agent", "id", "fp", "[\"a\"]", 1, null, null, null);
        var seal = protector.SealRow(row);

        Assert.True(protector.VerifyRow(row, seal));
        Assert.True(protector.VerifyRow(row, seal.ToUpperInvariant()));
        Assert.False(protector.VerifyRow(RowSeal.ClientKey("agent", "id", "fp", "[\"*\"]", 1, null, null, null), seal));
        Assert.False(other.VerifyRow(row, seal));
        Assert.False(other.VerifyRow(row, other.SealRow(RowSeal.ClientKey("agent", "id", "fp", "[\"*\"]", 1, null, null, null))));
        Assert.False(protector.VerifyRow(row, null));
        Assert.False(protector.VerifyRow(row, string.Empty));
        Assert.False(protector.VerifyRow(row, seal[..^2]));
        Assert.False(protector.VerifyRow(row, new string('z', 64)));
    }

    [Fact]
    public void SealIdentity_SealedBlob_IsTheHeaderThatPinsTheCiphertext()
    {
        using var protector = new SecretProtector(RandomNumberGenerator.GetBytes(32));
        var first = protector.Seal("same secret"u8, "rec");
        var second = protector.Seal("same secret"u8, "rec");

        Assert.Equal(29, SecretProtector.SealIdentity(first).Length);
        Assert.False(SecretProtector.SealIdentity(first).SequenceEqual(SecretProtector.SealIdentity(second)));
        Assert.Equal(3, SecretProtector.SealIdentity([1, 2, 3]).Length);
    }
}
