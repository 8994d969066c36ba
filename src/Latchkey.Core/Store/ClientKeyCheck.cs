namespace Latchkey.Store;

/// <summary>The outcome of checking a presented client key.</summary>
internal enum ClientKeyStatus
{
    /// <summary>The key is known, unexpired and not revoked.</summary>
    Valid,

    /// <summary>The value does not have the shape of a Latchkey client key (<c>lk_ID_SECRET</c>).</summary>
    Malformed,

    /// <summary>No key has this id, or the secret part does not match.</summary>
    Unknown,

    Revoked,

    Expired,

    /// <summary>The key matched, but its stored row was changed outside Latchkey; it is refused.</summary>
    Tampered,
}

/// <summary>A checked client key: its status, and the stored record when the id was known.</summary>
internal sealed record ClientKeyCheck(ClientKeyStatus Status, ClientKey? Key)
{
    public static ClientKeyCheck Malformed { get; } = new(ClientKeyStatus.Malformed, null);

    public static ClientKeyCheck Unknown { get; } = new(ClientKeyStatus.Unknown, null);
}
