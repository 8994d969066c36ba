namespace Latchkey.Store;

/// <summary>
/// One credential as stored: a name chosen by the user, metadata, secret material and a version that grows by
/// one on every content write. A record read from a row that cannot be decoded comes back with
/// <see cref="CredentialState.Quarantined"/>, a <see cref="Reason"/>, and <see cref="CredentialSecrets.Empty"/>.
/// </summary>
internal sealed record CredentialRecord
{
    /// <summary>The user-given name; the only key routes and commands use.</summary>
    public required string Name { get; init; }

    /// <summary>An immutable random identifier, bound into the encryption so ciphertexts cannot move between rows.</summary>
    public required string Id { get; init; }

    public required CredentialKind Kind { get; init; }

    public required long Version { get; init; }

    public required CredentialState State { get; init; }

    /// <summary>Why the credential is in its state; <see langword="null"/> when it is <see cref="CredentialState.Ok"/>.</summary>
    public StateReason? Reason { get; init; }

    public required CredentialMetadata Metadata { get; init; }

    public required CredentialSecrets Secrets { get; init; }

    /// <summary>HMAC fingerprint of the refresh token, the fence for refreshes; <see langword="null"/> without one.</summary>
    public string? RefreshTokenFingerprint { get; init; }

    /// <summary>HMAC fingerprint of the access token, so a caller that saw a 401 for token X can ask for a refresh
    /// only if X is still the stored one.</summary>
    public string? AccessTokenFingerprint { get; init; }

    /// <summary>Refresh coordination: lease, in-flight attempt, backoff (see <see cref="RefreshCoordination"/>).</summary>
    public RefreshCoordination Coordination { get; init; } = RefreshCoordination.None;

    /// <summary>The last authentication failure an upstream answered the gateway with, or null.</summary>
    public UpstreamFailure? LastUpstreamFailure { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    public required DateTimeOffset UpdatedAt { get; init; }
}
