using System.Security.Cryptography;

namespace Latchkey.Store;

/// <summary>
/// The shape of a client key: <c>lk_</c>, a 12-character id, <c>_</c>, and 43 characters of base64url carrying
/// 256 random bits. The prefix makes a leaked key easy to recognise (and to find with a secret scanner); the id
/// lets the store find the record without comparing against every key.
/// </summary>
internal static class ClientKeyFormat
{
    public const string Prefix = "lk_";
    private const int IdLength = 12;
    private const int SecretLength = 43;
    private const string IdAlphabet = "abcdefghijklmnopqrstuvwxyz234567";
    private static readonly System.Buffers.SearchValues<char> IdChars = System.Buffers.SearchValues.Create(IdAlphabet);

    /// <summary>A new key value and its id.</summary>
    public static (string Value, string KeyId) Generate()
    {
        var id = RandomNumberGenerator.GetString(IdAlphabet, IdLength);
        var secret = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        return ($"{Prefix}{id}_{secret}", id);
    }

    /// <summary>The id of a well-formed key value, or null.</summary>
    public static string? TryGetId(ReadOnlySpan<char> value)
    {
        if (value.Length != Prefix.Length + IdLength + 1 + SecretLength || !value.StartsWith(Prefix, StringComparison.Ordinal) || value[Prefix.Length + IdLength] != '_')
        {
            return null;
        }

        var id = value.Slice(Prefix.Length, IdLength);
        if (id.ContainsAnyExcept(IdChars))
        {
            return null;
        }

        foreach (var c in value[(Prefix.Length + IdLength + 1)..])
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c == '-' || c == '_'))
            {
                return null;
            }
        }

        return id.ToString();
    }
}
