namespace Latchkey.Store;

/// <summary>
/// A whole store as a command or the gateway opens it: credentials, client keys, the audit log and token usage in one place, on one backend
/// (<see cref="StoreSelector"/> picks which).
/// </summary>
internal interface ILatchkeyStore : ICredentialStore, IClientKeyStore, Audit.IAuditLog, Usage.IUsageLog
{
    /// <summary>The backend's name as <c>--store</c> spells it: <c>sqlite</c> or <c>postgresql</c>.</summary>
    string Backend { get; }

    /// <summary>Where the store is, for messages: a file path, or a connection URL with no password in it.</summary>
    string Location { get; }

    /// <summary>Where the gateway counts the limits of client keys (see <see cref="IKeyLimitCounters"/>).</summary>
    IKeyLimitCounters KeyLimits { get; }

    /// <summary>
    /// Whether the store answers and its master key unseals it (the gateway's <c>/readyz</c>). Never throws for the
    /// store's failures: they are the answer.
    /// </summary>
    Task<StoreReadiness> CheckReadyAsync(CancellationToken cancellationToken);
}
