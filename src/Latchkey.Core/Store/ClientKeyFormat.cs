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

    /// <summary>How many characters a key has.</summary>
    public const int Length = 3 + IdLength + 1 + SecretLength;

    private static readonly System.Buffers.SearchValues<char> SecretChars =
        System.Buffers.SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");

    /// <summary>The id of a well-formed key value, or null.</summary>
    public static string? TryGetId(ReadOnlySpan<char> value) =>
        IsWellFormed(value) ? value.Slice(Prefix.Length, IdLength).ToString() : null;

    /// <summary>Whether <paramref name="value"/> is exactly a key's shape (without allocating).</summary>
    public static bool IsWellFormed(ReadOnlySpan<char> value) =>
        value.Length == Length && value.StartsWith(Prefix, StringComparison.Ordinal) && value[Prefix.Length + IdLength] == '_'
        && !value.Slice(Prefix.Length, IdLength).ContainsAnyExcept(IdChars)
        && !value[(Prefix.Length + IdLength + 1)..].ContainsAnyExcept(SecretChars);

    /// <summary>
    /// Where the first key-shaped run of characters in <paramref name="text"/> starts (<c>lk_</c> followed by exactly
    /// the shape above, whatever comes before or after it), or -1. One ordinal search for <c>lk_</c> when there is
    /// none, so it is cheap enough for every header value of every request.
    /// </summary>
    public static int IndexOfKey(ReadOnlySpan<char> text)
    {
        var offset = 0;
        while (true)
        {
            var found = text[offset..].IndexOf(Prefix, StringComparison.Ordinal);
            if (found < 0)
            {
                return -1;
            }

            var at = offset + found;
            if (text.Length - at >= Length && IsWellFormed(text.Slice(at, Length)))
            {
                return at;
            }

            offset = at + 1;
        }
    }
}
