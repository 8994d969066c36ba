using System.Security.Cryptography;
using System.Text;

namespace Latchkey.OAuth;

/// <summary>RFC 7636 with S256 only, and the <c>state</c> value: fresh per sign-in, never shared.</summary>
internal sealed record Pkce(string Verifier, string Challenge)
{
    public static Pkce Create()
    {
        var verifier = Base64Url(RandomNumberGenerator.GetBytes(32));
        return new Pkce(verifier, Base64Url(SHA256.HashData(Encoding.ASCII.GetBytes(verifier))));
    }

    /// <summary>A <c>state</c> value with 256 bits of randomness.</summary>
    public static string NewState() => Base64Url(RandomNumberGenerator.GetBytes(32));

    public static string Base64Url(ReadOnlySpan<byte> bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public override string ToString() => "Pkce(***)";
}
