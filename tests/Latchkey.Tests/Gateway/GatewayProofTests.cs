using Latchkey.Gateway;

namespace Latchkey.Tests.Gateway;

/// <summary>
/// <see cref="GatewayProof"/>: an answer verifies only under the key, the challenge and the port it was made for,
/// so a squatter without the key cannot forge one, and an answer relayed from a gateway on another port, or recorded
/// for another challenge, does not verify. Malformed challenges get no answer at all.
/// </summary>
public sealed class GatewayProofTests
{
    private readonly byte[] _key = GatewayProof.NewKey();

    [Fact]
    public void Verify_AnswerForTheSameKeyChallengeAndPort_True()
    {
        var challenge = GatewayProof.NewChallenge();

        Assert.True(GatewayProof.Verify(_key, challenge, 7400, GatewayProof.Answer(_key, challenge, 7400)));
    }

    [Fact]
    public void Verify_AnswerFromAnotherPort_False()
    {
        var challenge = GatewayProof.NewChallenge();

        Assert.False(GatewayProof.Verify(_key, challenge, 7400, GatewayProof.Answer(_key, challenge, 7401)));
    }

    [Fact]
    public void Verify_AnswerUnderAnotherKeyOrForAnotherChallenge_False()
    {
        var challenge = GatewayProof.NewChallenge();

        Assert.False(GatewayProof.Verify(_key, challenge, 7400, GatewayProof.Answer(GatewayProof.NewKey(), challenge, 7400)));
        Assert.False(GatewayProof.Verify(_key, challenge, 7400, GatewayProof.Answer(_key, GatewayProof.NewChallenge(), 7400)));
        Assert.False(GatewayProof.Verify(_key, challenge, 7400, null));
        Assert.False(GatewayProof.Verify(_key, challenge, 7400, string.Empty));
    }

    [Fact]
    public void Verify_TamperedAnswer_False()
    {
        var challenge = GatewayProof.NewChallenge();
        var answer = GatewayProof.Answer(_key, challenge, 7400)!;

        Assert.False(GatewayProof.Verify(_key, challenge, 7400, (answer[0] == 'A' ? 'B' : 'A') + answer[1..]));
        Assert.False(GatewayProof.Verify(_key, challenge, 7400, answer + "A"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("short")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")] // 42 characters
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")] // 44 characters
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+")] // not base64url
    [InlineData(null)]
    public void Answer_MalformedChallenge_NoAnswer(string? challenge) => Assert.Null(GatewayProof.Answer(_key, challenge, 7400));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("not-a-key")]
    [InlineData("AAAA")]
    public void Decode_NotARecordedKey_Null(string? recorded) => Assert.Null(GatewayProof.Decode(recorded));

    [Fact]
    public void Decode_EncodedKey_RoundTrips() => Assert.Equal(_key, GatewayProof.Decode(GatewayProof.Encode(_key)));
}
