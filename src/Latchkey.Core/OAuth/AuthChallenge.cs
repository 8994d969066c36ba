namespace Latchkey.OAuth;

/// <summary>
/// One challenge of a <c>WWW-Authenticate</c> field (RFC 9110 §11.2): a scheme with either a token68 or
/// auth-parameters. Parameter names match case-insensitively; quoted values are already unescaped.
/// </summary>
internal sealed record AuthChallenge(string Scheme, string? Token68, IReadOnlyDictionary<string, string> Parameters)
{
    public bool IsScheme(string scheme) => string.Equals(Scheme, scheme, StringComparison.OrdinalIgnoreCase);

    /// <summary>A parameter's value, or <see langword="null"/> when absent.</summary>
    public string? this[string name] => Parameters.TryGetValue(name, out var value) ? value : null;
}
