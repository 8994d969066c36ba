namespace Latchkey.Store;

/// <summary>
/// How the gateway puts a credential's secret on an upstream request: the header to set and its value, where
/// <c>{secret}</c> stands for the secret. Defaults to <c>Authorization: Bearer {secret}</c>.
/// </summary>
internal sealed record InjectionRule(string Header, string Format)
{
    public const string SecretPlaceholder = "{secret}";

    public static InjectionRule Default { get; } = new("Authorization", "Bearer {secret}");

    /// <summary>Checks the rule, returning a sentence naming what is wrong, or <see langword="null"/>.</summary>
    public string? Validate()
    {
        if (!HttpToken.IsToken(Header))
        {
            return $"'{Header}' is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only).";
        }

        if (!Format.Contains(SecretPlaceholder, StringComparison.Ordinal))
        {
            return $"The format must contain {SecretPlaceholder} where the secret goes, e.g. 'Bearer {SecretPlaceholder}'.";
        }

        if (Format.AsSpan().IndexOfAny('\r', '\n') >= 0 || Format.Contains('\0', StringComparison.Ordinal))
        {
            return "The format must not contain CR, LF or NUL characters.";
        }

        return null;
    }
}
