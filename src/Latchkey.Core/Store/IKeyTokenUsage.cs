namespace Latchkey.Store;

/// <summary>
/// The tokens a client key used on one UTC day, as recorded from the providers' own counts in their answers: what
/// a key's token budget (<see cref="ClientKeyLimits.TokensPerDay"/>) is checked against before a request is sent.
/// </summary>
internal interface IKeyTokenUsage
{
    /// <summary>Every token counted for the key named <paramref name="clientKey"/> on <paramref name="day"/> (UTC), over all credentials and models.</summary>
    Task<long> TokensUsedAsync(string clientKey, DateOnly day, CancellationToken cancellationToken);
}
