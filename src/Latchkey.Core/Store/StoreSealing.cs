using System.Globalization;

namespace Latchkey.Store;

/// <summary>How a store written before rows carried seals may come to be sealed (see <see cref="StoreSealing"/>).</summary>
internal enum SealMode
{
    /// <summary>Sealed on open, once, unless this home recorded the store as sealed: the master key is the home's own <c>master.key</c>.</summary>
    Automatic,

    /// <summary>Never sealed on open: refused until <c>latchkey store seal</c>. The key comes from <c>LATCHKEY_KEY_FILE</c>.</summary>
    OnlyByCommand,

    /// <summary>
    /// Never sealed on open: refused as rolled back (<c>store_rolled_back</c>) until <c>latchkey store seal</c>. The
    /// key is the home's, in an OS keychain, where only a Latchkey that seals puts it: such a home's store was sealed.
    /// </summary>
    KeychainKey,

    /// <summary><c>latchkey store seal</c>'s first look: what sealing would seal is found, then everything is rolled back.</summary>
    Preview,

    /// <summary><c>latchkey store seal</c> after confirmation: sealed only if the store still holds exactly what was shown.</summary>
    Approved,
}

/// <summary>
/// Where the fact "this store has been sealed" is kept, and who may seal a store written before rows carried seals.
/// </summary>
/// <remarks>
/// <para><b>Why not in the database.</b> A store records that it was sealed with a marker in <c>store_meta</c>, but
/// whoever can write the database can remove the marker, the seal columns and the schema version together, which
/// makes it look exactly like a store from before seals. If opening such a store sealed it, it would seal whatever
/// that writer put in it (an upstream pointed at their server, a client key widened to <c>*</c>). So the fact lives
/// where a database writer cannot reach: in the home folder (<see cref="SealLedger"/>), beside the master key.</para>
/// <para><b>Automatic</b> (the master key is the home's <c>master.key</c>: the single-user case, SQLite or
/// PostgreSQL): a store from before seals is sealed on open only when this home has no record of it; once it has,
/// the store without its seals is refused (<c>store_rolled_back</c>). The home records every store it opens whose
/// marker verifies, so one sealed by an earlier Latchkey is recorded the first time this one opens it.</para>
/// <para><b>Key in a keychain</b> (the home's key is in an OS keychain, not in <c>master.key</c>): a home's key goes
/// into a keychain only by a Latchkey that seals (a new home, or <c>latchkey key move</c>, which opens, and so seals,
/// the store first), so its store from before seals was rolled back, even when the home's record is gone: someone
/// who can write the home folder can delete <c>sealed-stores/</c>, but cannot read the key. Refused
/// (<c>store_rolled_back</c>); only <c>latchkey store seal</c>, which shows what it seals and asks, seals it.</para>
/// <para><b>Only by command</b> (the key comes from <c>LATCHKEY_KEY_FILE</c>: a team's shared key, many replicas
/// each with a home of its own, often fresh): no replica can know whether the store was sealed before, so none seals
/// it; an administrator runs <c>latchkey store seal</c> once, which shows what it will seal and asks first. A store
/// created by this version is sealed from its first row and never needs it.</para>
/// <para><b>Store identity.</b> SQLite: the home's own database. PostgreSQL: the location as configured (host, port,
/// database), never something the server reports (its system identifier, a store id in <c>store_meta</c>): those
/// are the database writer's to change, or a server on the network path's to invent, and a store that looked new
/// would be sealed.</para>
/// </remarks>
internal sealed class StoreSealing
{
    private StoreSealing(SealLedger? ledger, SealMode mode, bool keyInHome, SealPreview? approved)
    {
        Ledger = ledger;
        Mode = mode;
        KeyInHome = keyInHome;
        Approved = approved;
    }

    /// <summary>The SQLite store's identity in its home's ledger (its database is always the home's <c>latchkey.db</c>).</summary>
    public const string SqliteIdentity = "sqlite:latchkey.db";

    /// <summary>The home's ledger, or null when there is no home to keep one in.</summary>
    public SealLedger? Ledger { get; }

    public SealMode Mode { get; }

    /// <summary>Whether the master key is the home's own <c>master.key</c> (then the ledger is what protects the store).</summary>
    public bool KeyInHome { get; }

    /// <summary>For <see cref="SealMode.Approved"/>: what the administrator was shown and approved.</summary>
    public SealPreview? Approved { get; }

    /// <summary>For <see cref="SealMode.Preview"/>: what sealing would seal, or null when the store needs no sealing.</summary>
    public SealPreview? Found { get; internal set; }

    /// <summary>The key is the home's own <c>master.key</c>: seal a store from before seals on open, unless the home recorded it sealed.</summary>
    public static StoreSealing ForHomeKey(SealLedger ledger)
    {
        ArgumentNullException.ThrowIfNull(ledger);
        return new(ledger, SealMode.Automatic, keyInHome: true, null);
    }

    /// <summary>The key is a team's shared key file: never seal on open. <paramref name="ledger"/> is the replica's home's, if any.</summary>
    public static StoreSealing ForSharedKey(SealLedger? ledger) => new(ledger, SealMode.OnlyByCommand, keyInHome: false, null);

    /// <summary>
    /// The same, for a home whose key is in an OS keychain: a store from before seals is never sealed on open (see
    /// <see cref="SealMode.KeychainKey"/>); <c>latchkey store seal</c>'s preview and approval are kept as they are.
    /// </summary>
    public StoreSealing WithKeyInKeychain() => Mode == SealMode.Automatic ? new(Ledger, SealMode.KeychainKey, KeyInHome, null) : this;

    /// <summary><c>latchkey store seal</c>'s first look, with the same key and home; read <see cref="Found"/> afterwards.</summary>
    public StoreSealing ForPreview() => new(Ledger, SealMode.Preview, KeyInHome, null);

    /// <summary><c>latchkey store seal</c> once <paramref name="approved"/> was confirmed, with the same key and home.</summary>
    public StoreSealing ForApproval(SealPreview approved)
    {
        ArgumentNullException.ThrowIfNull(approved);
        return new(Ledger, SealMode.Approved, KeyInHome, approved);
    }

    /// <summary>A PostgreSQL store's identity: host, port and database as configured, never the user or password.</summary>
    public static string IdentityOf(PostgresLocation location)
    {
        ArgumentNullException.ThrowIfNull(location);
        var builder = location.Builder;
        return string.Create(CultureInfo.InvariantCulture,
            $"postgresql://{(builder.Host ?? string.Empty).ToLowerInvariant()}:{builder.Port}/{Uri.EscapeDataString(builder.Database ?? string.Empty)}");
    }

    /// <summary>
    /// Records in the home that <paramref name="store"/> is sealed with <paramref name="keyId"/>. Where the key is
    /// the home's own, the record is what protects the store, so a failure is an error; where it is a shared key
    /// file, the record only sharpens a later refusal, so a home that cannot hold it is passed over.
    /// </summary>
    /// <exception cref="StoreException">The home's record cannot be written (automatic mode only).</exception>
    public void Remember(string store, string keyId, DateTimeOffset at)
    {
        if (Ledger is null)
        {
            return;
        }

        try
        {
            Ledger.Record(store, keyId, at);
        }
        catch (Exception ex) when ((ex is IOException or UnauthorizedAccessException) && !KeyInHome)
        {
            // A replica whose home cannot keep the record still refuses an unsealed store: only the command seals it.
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StoreException("home_unwritable",
                $"The record that the store {store} is sealed cannot be written to {Ledger.Folder} ({ex.Message}). Nothing in the store was changed; fix the home folder's owner or mode (latchkey doctor), then try again.",
                innerException: ex);
        }
    }
}

/// <summary>
/// What <c>latchkey store seal</c> will seal, as it is in the store, for the administrator to check before
/// confirming; <see cref="Digest"/> pins it, so the sealing refuses a store that changed after it was shown.
/// </summary>
/// <param name="Location">The store, without any password.</param>
/// <param name="FromVersion">The store's schema version before sealing.</param>
/// <param name="Credentials">Every credential row and saved version.</param>
/// <param name="Keys">Every client key.</param>
/// <param name="Digest">A hash of every seal the sealing will write.</param>
internal sealed record SealPreview(string Location, long FromVersion, IReadOnlyList<SealPreviewCredential> Credentials, IReadOnlyList<SealPreviewKey> Keys, string Digest);

/// <summary>One credential row (or saved version) as it will be sealed.</summary>
/// <param name="Name">The record's name.</param>
/// <param name="Kind">Its kind as stored.</param>
/// <param name="Version">The row's version.</param>
/// <param name="Saved">Whether this is a saved earlier version rather than the current row.</param>
/// <param name="State">Its state as stored.</param>
/// <param name="Metadata">Its metadata (upstream, token endpoint, injection, …); null when it does not decode.</param>
/// <param name="UnderThisKey">Whether its secrets were sealed with this master key (others stay unusable after sealing).</param>
internal sealed record SealPreviewCredential(string Name, string Kind, long Version, bool Saved, string State, CredentialMetadata? Metadata, bool UnderThisKey);

/// <summary>One client key as it will be sealed.</summary>
/// <param name="Name">The key's name.</param>
/// <param name="Allows">The credential and router names it will open (<c>*</c> is every one).</param>
/// <param name="ExpiresAt">When it stops working, or null for never.</param>
/// <param name="RevokedAt">When it was revoked, or null.</param>
internal sealed record SealPreviewKey(string Name, IReadOnlyList<string> Allows, DateTimeOffset? ExpiresAt, DateTimeOffset? RevokedAt);
