namespace Latchkey.Store;

/// <summary>Whether a store can serve now: what <see cref="ILatchkeyStore.CheckReadyAsync"/> found.</summary>
/// <param name="Reason">Null when ready; otherwise a reason code: <c>store_unavailable</c> (the database did not
/// answer) or <c>master_key_mismatch</c> (the master key in use does not open the store's seal).</param>
/// <param name="Detail">For the log only (it may name the database's host or file): what failed.</param>
internal sealed record StoreReadiness(string? Reason, string? Detail)
{
    public static StoreReadiness Ready { get; } = new(null, null);

    public bool IsReady => Reason is null;
}

/// <summary>The readiness check: one read of the store's sealed marker, checked with the master key in use.</summary>
internal abstract partial class CredentialStore
{
    /// <summary>The reason code of a store that did not answer.</summary>
    public const string UnavailableReason = "store_unavailable";

    /// <summary>The reason code of a master key that does not open the store's seal.</summary>
    public const string KeyMismatchReason = "master_key_mismatch";

    /// <summary>
    /// Whether the store answers and the master key unseals it: reads the store's sealed marker (written, sealed
    /// with the master key, when the store was created or sealed) and checks its seal; then seals and opens a probe
    /// with the key (<see cref="SelfTest"/>). Reads only.
    /// </summary>
    public async Task<StoreReadiness> CheckReadyAsync(CancellationToken cancellationToken)
    {
        bool markerOpens;
        try
        {
            markerOpens = await RunAsync(async (connection, ct) =>
            {
                await using var command = connection.Command(null, "SELECT value FROM store_meta WHERE name = @name").Bind("@name", RowCodec.RowsSealedMarkerName);
                return Codec.IsRowsSealedMarker(await command.ExecuteScalarAsync(ct).ConfigureAwait(false) as string);
            }, idempotent: true, cancellationToken).ConfigureAwait(false);
        }
        catch (StoreException ex)
        {
            return new StoreReadiness(UnavailableReason, $"{ex.Code}: {ex.Message}");
        }

        if (!markerOpens || !SelfTest())
        {
            return new StoreReadiness(KeyMismatchReason,
                $"The master key in use (id {KeyId}) does not open the seal of the store at {Location}: the key file or keychain entry is not the one the store was sealed with, or the store's sealed marker was removed or changed ('latchkey doctor' says which).");
        }

        return StoreReadiness.Ready;
    }
}
