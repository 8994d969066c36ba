namespace Latchkey.Usage;

/// <summary>
/// The tokens a client key used on one UTC day, as recorded from the providers' own counts in their answers: what
/// a key's token budget (<see cref="Store.ClientKeyLimits.TokensPerDay"/>) is checked against before a request is sent.
/// </summary>
internal interface IKeyTokenUsage
{
    /// <summary>
    /// Every token (<see cref="UsageCount.Tokens"/>) counted for <paramref name="clientKey"/> (its name; empty for
    /// requests without a key) on <paramref name="day"/> (UTC), over all credentials and models; saturating.
    /// </summary>
    Task<long> TokensUsedAsync(string clientKey, DateOnly day, CancellationToken cancellationToken);
}
