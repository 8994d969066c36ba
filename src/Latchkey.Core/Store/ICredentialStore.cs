namespace Latchkey.Store;

/// <summary>
/// The one place credentials live: a record per credential, keyed by the name the user gave it.
/// </summary>
/// <remarks>
/// <para><b>Concurrency.</b> An instance is safe to use from many threads at once, and any number of processes
/// (or, for a shared backend, machines) may use the same store together. Every write is one transaction: it
/// commits whole or not at all, and a reader sees either the old record or the new one, never a mix. Writes
/// that must not race carry a <see cref="WriteCondition"/>, checked atomically with the write.</para>
/// <para><b>Null.</b> Arguments are never null. A missing record is a <see langword="null"/> result from
/// <see cref="GetAsync"/> or <see cref="WriteOutcome.NotFound"/> from a write, never an exception.</para>
/// <para><b>Corruption.</b> A row that cannot be decoded or decrypted is returned with
/// <see cref="CredentialState.Quarantined"/> and a reason; it is never deleted or rewritten except by
/// <see cref="RestoreAsync"/> or <see cref="RemoveAsync"/>, and never stops other rows from working.</para>
/// <para><b>History.</b> Each content write keeps the previous content as a version; at least the last
/// <see cref="HistoryDepth"/> versions of each record are kept.</para>
/// <para><b>Security.</b> Secret material is sealed before it reaches the storage medium, bound to the record's
/// id; it never appears in clear in any file the backend writes. Exceptions never carry secret values.</para>
/// <para><b>Failure.</b> A store that cannot be reached or opened throws <see cref="StoreException"/>, whose
/// message names what was wrong and what to do next; callers must not read that as "no credential".</para>
/// </remarks>
internal interface ICredentialStore : IAsyncDisposable
{
    /// <summary>How many earlier versions of each record are kept, at least.</summary>
    int HistoryDepth { get; }

    /// <summary>Reads one record, or <see langword="null"/> when no record has that name.</summary>
    Task<CredentialRecord?> GetAsync(string name, CancellationToken cancellationToken);

    /// <summary>Reads every record, ordered by name; quarantined rows are included with their reason.</summary>
    Task<IReadOnlyList<CredentialRecord>> ListAsync(CancellationToken cancellationToken);

    /// <summary>Creates a record at version 1 in state <see cref="CredentialState.Ok"/>; fails with
    /// <see cref="WriteOutcome.AlreadyExists"/> when the name is taken.</summary>
    Task<WriteResult> CreateAsync(NewCredential credential, CancellationToken cancellationToken);

    /// <summary>Merges <paramref name="patch"/> into a record when <paramref name="condition"/> holds, adding one
    /// to its version and keeping the previous content in its history.</summary>
    Task<WriteResult> UpdateAsync(string name, CredentialPatch patch, WriteCondition condition, CancellationToken cancellationToken);

    /// <summary>Deletes a record and its history in one transaction. Returns whether it existed.</summary>
    Task<bool> RemoveAsync(string name, CancellationToken cancellationToken);

    /// <summary>Lists the saved earlier versions of a record, newest first.</summary>
    Task<IReadOnlyList<CredentialVersion>> GetHistoryAsync(string name, CancellationToken cancellationToken);

    /// <summary>Makes a saved version current again, as a new version; the content it replaces is kept in the
    /// history (even when quarantined). <see cref="WriteOutcome.NotFound"/> when the record or version is absent,
    /// <see cref="WriteOutcome.Quarantined"/> when that version cannot be decrypted.</summary>
    Task<WriteResult> RestoreAsync(string name, long version, WriteCondition condition, CancellationToken cancellationToken);

    /// <summary>The fingerprint the store keeps for a token (HMAC under the install's key); never reveals it.</summary>
    string Fingerprint(string token);

    // Refresh coordination (see RefreshCoordination). None of these bump the version or touch content; each is
    // one conditional statement, so each either applies whole or returns false.

    /// <summary>Takes the refresh lease when it is still as observed (owner and epoch): a compare-and-swap.</summary>
    Task<bool> TryAcquireLeaseAsync(string name, string owner, string? observedOwner, long observedEpoch, TimeSpan duration, CancellationToken cancellationToken);

    /// <summary>Extends a lease <paramref name="owner"/> holds; false means the lease was lost.</summary>
    Task<bool> RenewLeaseAsync(string name, string owner, TimeSpan duration, CancellationToken cancellationToken);

    /// <summary>Releases a lease <paramref name="owner"/> holds; false when it held none.</summary>
    Task<bool> ReleaseLeaseAsync(string name, string owner, CancellationToken cancellationToken);

    /// <summary>Durably records an in-flight token request before it is sent, if <paramref name="owner"/> holds the
    /// lease and the refresh token is still the one with <paramref name="refreshTokenFingerprint"/>.</summary>
    Task<bool> MarkAttemptAsync(string name, string owner, string attemptId, string? refreshTokenFingerprint, string? recoveryOf, CancellationToken cancellationToken);

    /// <summary>Records a transient refresh failure and a shared backoff, and releases the lease, if
    /// <paramref name="owner"/> holds it. The secret material is never touched.</summary>
    Task<bool> RecordRefreshFailureAsync(string name, string owner, StateReason error, DateTimeOffset backoffUntil, bool clearAttempt, CancellationToken cancellationToken);

    /// <summary>
    /// Records (or, with null, clears) the last authentication failure an upstream answered with, for
    /// <c>status</c>. Does not bump the version or touch content. Returns false when there is no such credential.
    /// </summary>
    Task<bool> RecordUpstreamFailureAsync(string name, UpstreamFailure? failure, CancellationToken cancellationToken);
}
