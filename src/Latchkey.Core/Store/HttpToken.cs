namespace Latchkey.Store;

/// <summary>RFC 9110 §5.6.2 <c>token</c> characters, used for header names.</summary>
internal static class HttpToken
{
    private static readonly System.Buffers.SearchValues<char> TokenChars =
        System.Buffers.SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");

    public static bool IsToken(string? value) =>
        !string.IsNullOrEmpty(value) && !value.AsSpan().ContainsAnyExcept(TokenChars);
}
