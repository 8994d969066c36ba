namespace Latchkey.Store;

/// <summary>A saved earlier version of a credential, as listed for <c>latchkey history</c> and restore.</summary>
/// <param name="Version">The version number it had.</param>
/// <param name="State">Its state then.</param>
/// <param name="WrittenAt">When that version was written.</param>
/// <param name="Readable">Whether it matches its seal and decrypts with the current key (only readable versions can be restored).</param>
/// <param name="RefreshTokenFingerprint">The fingerprint of its refresh token, to tell a rotated one apart.</param>
/// <param name="Tampered">Whether it was changed outside Latchkey (it does not match its seal), so it can never be restored.</param>
internal sealed record CredentialVersion(long Version, CredentialState State, DateTimeOffset WrittenAt, bool Readable, string? RefreshTokenFingerprint, bool Tampered = false);
