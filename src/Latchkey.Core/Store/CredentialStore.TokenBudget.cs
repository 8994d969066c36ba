namespace Latchkey.Store;

/// <summary>
/// PROVISIONAL, until the usage table (issue 20, part 2: <c>usage_daily</c>, <c>CredentialStore.Usage.cs</c>) is merged:
/// that part defines <c>TokensUsedAsync</c> with this signature over the recorded usage, and this file is then deleted
/// (the two definitions do not compile together). Until then no usage is recorded, so every key has used nothing.
/// </summary>
internal abstract partial class CredentialStore
{
    public Task<long> TokensUsedAsync(string clientKey, DateOnly day, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(clientKey);
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(0L);
    }
}
