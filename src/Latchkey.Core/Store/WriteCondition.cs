namespace Latchkey.Store;

/// <summary>
/// A precondition checked atomically with a write. <see cref="Version"/> is a compare-and-swap on the record's
/// version; <see cref="RefreshToken"/> is a compare-and-swap on the fingerprint of the refresh token the write
/// replaces, the fence that makes a refresh commit only if nobody rotated the token since it was read.
/// </summary>
internal sealed record WriteCondition
{
    private WriteCondition()
    {
    }

    /// <summary>No precondition: the write applies to whatever is stored.</summary>
    public static WriteCondition None { get; } = new();

    public long? ExpectedVersion { get; private init; }

    public bool ChecksRefreshToken { get; private init; }

    /// <summary>The expected refresh-token fingerprint; <see langword="null"/> means "no refresh token stored".</summary>
    public string? ExpectedRefreshTokenFingerprint { get; private init; }

    public static WriteCondition Version(long version) => new() { ExpectedVersion = version };

    public static WriteCondition RefreshToken(string? fingerprint) =>
        new() { ChecksRefreshToken = true, ExpectedRefreshTokenFingerprint = fingerprint };

    /// <summary>Whether a row with this version and fingerprint satisfies the condition.</summary>
    public bool IsSatisfiedBy(long version, string? refreshTokenFingerprint) =>
        (ExpectedVersion is null || ExpectedVersion == version)
        && (!ChecksRefreshToken || string.Equals(ExpectedRefreshTokenFingerprint, refreshTokenFingerprint, StringComparison.Ordinal));
}
