namespace Latchkey.Store;

/// <summary>
/// The secret material of a credential, sealed at rest. <see cref="ToString"/> never shows a value, so a record
/// that reaches a log line or an exception message shows only which fields are set.
/// </summary>
internal sealed class CredentialSecrets : IEquatable<CredentialSecrets>
{
    public static CredentialSecrets Empty { get; } = new();

    public string? ApiKey { get; init; }

    public string? AccessToken { get; init; }

    public string? RefreshToken { get; init; }

    public string? ClientSecret { get; init; }

    public string? IdToken { get; init; }

    public bool Equals(CredentialSecrets? other) =>
        other is not null
        && string.Equals(ApiKey, other.ApiKey, StringComparison.Ordinal)
        && string.Equals(AccessToken, other.AccessToken, StringComparison.Ordinal)
        && string.Equals(RefreshToken, other.RefreshToken, StringComparison.Ordinal)
        && string.Equals(ClientSecret, other.ClientSecret, StringComparison.Ordinal)
        && string.Equals(IdToken, other.IdToken, StringComparison.Ordinal);

    public override bool Equals(object? obj) => Equals(obj as CredentialSecrets);

    public override int GetHashCode() => HashCode.Combine(ApiKey, AccessToken, RefreshToken, ClientSecret, IdToken);

    public override string ToString() =>
        $"CredentialSecrets(api_key: {Mask(ApiKey)}, access_token: {Mask(AccessToken)}, refresh_token: {Mask(RefreshToken)}, client_secret: {Mask(ClientSecret)}, id_token: {Mask(IdToken)})";

    private static string Mask(string? value) => value is null ? "unset" : "***";
}
