using System.Buffers.Text;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Latchkey.Gateway;

/// <summary>
/// How a gateway proves it is the one its home folder recorded, before <c>latchkey run</c>, <c>env</c>, <c>ssh</c> or
/// <c>dashboard</c> hands it a client key, a sign-in link or an agent. A port alone proves nothing: after a gateway
/// dies, any local user can listen on its port and answer <c>/healthz</c> exactly as it did.
/// </summary>
/// <remarks>
/// <para><b>Protocol.</b> At start the gateway draws a 256-bit key and records it in <c>gateway.json</c> (0600 in the
/// 0700 home, so only the owner reads it). A client sends <c>GET /healthz</c> with a fresh random
/// <see cref="ChallengeHeader"/>; the gateway answers with <see cref="ProofHeader"/> = HMAC-SHA256(key, label, port,
/// challenge), where port is the local port the connection arrived on. The key never travels; a new challenge each
/// time makes recorded answers useless; the port in the MAC makes an answer relayed from a live gateway on another
/// port useless too.</para>
/// <para><b>Security.</b> The client compares in constant time. A gateway restart draws a new key.</para>
/// </remarks>
internal static class GatewayProof
{
    /// <summary>The request header carrying the client's challenge (43 base64url characters: 32 random bytes).</summary>
    public const string ChallengeHeader = "Latchkey-Challenge";

    /// <summary>The response header carrying the gateway's answer.</summary>
    public const string ProofHeader = "Latchkey-Proof";

    private const int KeyBytes = 32;
    private const int ChallengeChars = 43;

    /// <summary>A new gateway key (256 random bits).</summary>
    public static byte[] NewKey() => RandomNumberGenerator.GetBytes(KeyBytes);

    /// <summary>A new challenge (256 random bits, base64url).</summary>
    public static string NewChallenge() => Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));

    public static string Encode(byte[] key) => Base64Url.EncodeToString(key);

    /// <summary>The key recorded in <c>gateway.json</c>, or null when it is missing or not a key.</summary>
    public static byte[]? Decode(string? recorded)
    {
        if (string.IsNullOrEmpty(recorded) || recorded.Length > 64 || !Base64Url.IsValid(recorded, out var length) || length != KeyBytes)
        {
            return null;
        }

        return Base64Url.DecodeFromChars(recorded);
    }

    /// <summary>The gateway's answer to <paramref name="challenge"/> on <paramref name="port"/>, or null when the
    /// challenge is not one a client sends (so the gateway is never an oracle for arbitrary messages).</summary>
    public static string? Answer(byte[] key, string? challenge, int port)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (challenge is not { Length: ChallengeChars } || !Base64Url.IsValid(challenge, out var length) || length != 32)
        {
            return null;
        }

        var message = Encoding.ASCII.GetBytes($"latchkey-gateway-proof/1\n{port.ToString(CultureInfo.InvariantCulture)}\n{challenge}");
        return Base64Url.EncodeToString(HMACSHA256.HashData(key, message));
    }

    /// <summary>Whether <paramref name="proof"/> answers <paramref name="challenge"/> on <paramref name="port"/> under
    /// <paramref name="key"/> (constant-time compare).</summary>
    public static bool Verify(byte[] key, string challenge, int port, string? proof)
    {
        if (proof is null || Answer(key, challenge, port) is not { } expected)
        {
            return false;
        }

        return CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(proof));
    }
}
