namespace Latchkey.Store;

/// <summary>
/// The stored state of a credential. <c>expiring</c> is not stored: it is derived from the expiry when shown.
/// </summary>
internal enum CredentialState
{
    /// <summary>Usable.</summary>
    Ok,

    /// <summary>Someone must sign in again; <see cref="CredentialRecord.Reason"/> says why.</summary>
    NeedsAuth,

    /// <summary>The row cannot be decoded or decrypted. Its bytes are kept; restore a version or remove it.</summary>
    Quarantined,
}
