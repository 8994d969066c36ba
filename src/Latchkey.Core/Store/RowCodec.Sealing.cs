using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Latchkey.Store;

/// <summary>
/// The one-time sealing of a store written before rows carried seals, and the checks that a sealed store stays
/// sealed; shared by both backends. Whether a store may be sealed is never decided by the database alone (its writer
/// can make it look unsealed): see <see cref="StoreSealing"/>.
/// </summary>
internal sealed partial class RowCodec
{
    /// <summary>The <c>store_meta</c> row that records that every row of the store is sealed.</summary>
    public const string RowsSealedMarkerName = "rows_sealed";

    /// <summary>The refusal of a store that was sealed and lost its seals.</summary>
    public const string RolledBackCode = "store_rolled_back";

    /// <summary>The refusal of a store from before seals that only <c>latchkey store seal</c> may seal.</summary>
    public const string UnsealedCode = "store_unsealed";

    /// <summary>The refusal of an approved sealing whose store changed after it was shown.</summary>
    public const string ChangedCode = "store_changed";

    /// <summary>The audit log's route for the sealing done by <c>latchkey store seal</c>.</summary>
    public const string SealAuditRoute = "latchkey store seal";

    /// <summary>
    /// For a store at the current schema: whether its sealed marker is there and verifies. When it does not and
    /// this home recorded the store as sealed with this master key, the store is refused: its marker was removed or
    /// changed. (Recorded with another key, the key file changed, not the store: every row then says so itself.)
    /// </summary>
    /// <exception cref="StoreException"><c>store_rolled_back</c>.</exception>
    public bool CheckSealed(DbConnection connection, DbTransaction? transaction, string location, string storeId, StoreSealing sealing)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(sealing);
        if (IsRowsSealedMarker(Scalar(connection, transaction, "SELECT value FROM store_meta WHERE name = @name", ("@name", RowsSealedMarkerName)) as string))
        {
            return true;
        }

        if (sealing.Ledger?.Find(storeId) is { } entry && (entry.KeyId is null || string.Equals(entry.KeyId, protector.KeyId, StringComparison.Ordinal)))
        {
            throw new StoreException(RolledBackCode,
                $"The store at {location} was sealed by Latchkey (this home recorded it{Since(entry)}), but its record that every row is sealed is missing or changed: someone who can write the database edited it. Nothing was changed, and nothing is served from it. " +
                RestoreAdvice);
        }

        return false;
    }

    /// <summary>
    /// Refuses a store from before seals (schema <paramref name="fromVersion"/>, above 0) that must not be sealed
    /// now: one that records it was sealed (its marker), one this home recorded as sealed, and, when only
    /// <c>latchkey store seal</c> may seal, any. Reads only; the caller writes nothing after a refusal.
    /// </summary>
    /// <exception cref="StoreException"><c>store_rolled_back</c> or <c>store_unsealed</c>.</exception>
    public static void RefuseUnsealable(DbConnection connection, DbTransaction? transaction, string location, string storeId, long fromVersion, StoreSealing sealing)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(sealing);
        if (Scalar(connection, transaction, "SELECT value FROM store_meta WHERE name = @name", ("@name", RowsSealedMarkerName)) is string)
        {
            throw new StoreException(RolledBackCode,
                $"The store at {location} records that its rows were sealed by Latchkey, but its schema is back at version {fromVersion}, from before seals, and the seal columns are gone: someone turned its schema back, so no record or client key in it can be trusted. Nothing was changed, and nothing is served from it. " +
                RestoreAdvice);
        }

        if (sealing.Ledger?.Find(storeId) is { } entry)
        {
            throw new StoreException(RolledBackCode,
                $"The store at {location} was sealed by Latchkey (this home recorded it{Since(entry)}), but it no longer carries its seals: its schema is back at version {fromVersion}, from before seals, and its sealed marker is gone. Someone who can write the database rolled it back, and whatever they changed in it would be trusted if it were sealed now. Nothing was changed, and nothing is served from it. " +
                RestoreAdvice);
        }

        if (sealing.Mode == SealMode.KeychainKey)
        {
            throw new StoreException(RolledBackCode,
                $"The store at {location} has no row seals (schema {fromVersion}, from a Latchkey before seals), but this home's master key is in the OS keychain, where only a Latchkey that seals puts it: the store was sealed, and someone who can write the home folder rolled it back (and removed the home's record that it was sealed, {sealing.Ledger?.Folder ?? SealLedger.FolderName}). Whatever they changed in it would be trusted if it were sealed now. Nothing was changed, and nothing is served from it. " +
                "Restore the home folder from a backup made after the store was sealed (or start a new store and add the credentials again), then find out who can write the home folder. " +
                "Only if you are certain this store was never sealed (a database from a Latchkey before seals, copied into this home), run 'latchkey store seal': it shows every upstream and client key, and seals them only when you confirm.");
        }

        if (sealing.Mode == SealMode.OnlyByCommand)
        {
            throw new StoreException(UnsealedCode,
                $"The store at {location} has no row seals (schema {fromVersion}, from a Latchkey before seals), and this Latchkey's master key comes from {StoreSelector.KeyFileVariable}, so it never seals a store by itself: a store that was sealed before and is not now was rolled back by someone who can write the database. Nothing was changed. " +
                "If it was sealed before, restore it from a backup made after that. If you are upgrading it from a version before seals, an administrator runs 'latchkey store seal' once, with the same store and key file: it shows every credential's upstream and every client key's rights, and seals them only when you confirm (docs/team.md).");
        }
    }

    private const string RestoreAdvice =
        "Restore the database from a backup made after it was sealed (or start a new store and add the credentials again), then find out who can write the database. Latchkey will not seal this store again.";

    private static string Since(SealLedgerEntry entry) =>
        entry.RecordedAt is { } at ? $" on {at.UtcDateTime.ToString("yyyy-MM-dd HH:mm 'UTC'", System.Globalization.CultureInfo.InvariantCulture)}" : string.Empty;

    /// <summary>
    /// Seals every credential row, saved version and client key exactly as it is now, and records the sealed marker
    /// (itself sealed), inside the migration's transaction <paramref name="transaction"/>; the caller commits it
    /// together with the schema change that added the seal columns. Called once the migrations ran, for a store whose
    /// schema was <paramref name="fromVersion"/>, below the one that added seals (0 for a store created just now,
    /// whose tables are empty). From then on a row without a valid seal is a changed row.
    /// </summary>
    /// <returns>
    /// Whether the caller commits: false for <see cref="SealMode.Preview"/>, which only fills
    /// <see cref="StoreSealing.Found"/> with what would be sealed.
    /// </returns>
    /// <exception cref="StoreException">
    /// The store must not be sealed now (<see cref="RefuseUnsealable"/>); the rows were sealed with another master
    /// key (sealing them with this one would make them unusable with the right one); or, for
    /// <see cref="SealMode.Approved"/>, the store no longer holds what was approved. Nothing is written then.
    /// </exception>
    public bool SealExistingRows(DbConnection connection, DbTransaction transaction, string location, string storeId, long fromVersion, StoreSealing sealing, DateTimeOffset now, string writer)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentNullException.ThrowIfNull(sealing);
        if (fromVersion > 0)
        {
            RefuseUnsealable(connection, transaction, location, storeId, fromVersion, sealing);
        }
        else if (Scalar(connection, transaction, "SELECT value FROM store_meta WHERE name = @name", ("@name", RowsSealedMarkerName)) is string)
        {
            throw new StoreException(RolledBackCode,
                $"The store at {location} has no schema but records that its rows were sealed: someone removed its tables and schema version. Nothing was changed, and nothing is served from it. {RestoreAdvice}");
        }

        if (Scalar(connection, transaction, "SELECT value FROM store_meta WHERE name = 'key_id'") is string recorded
            && !string.Equals(recorded, protector.KeyId, StringComparison.Ordinal))
        {
            throw new StoreException("key_mismatch",
                $"This master key (id {protector.KeyId}) is not the one the store at {location} is sealed with (id {recorded}). Nothing was changed. Use the key file the store was made with; see docs/store.md.");
        }

        var rows = new List<StoredRow>();
        using (var command = Command(connection, transaction, $"SELECT {StoredRow.Columns} FROM credential ORDER BY id"))
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                rows.Add(StoredRow.From(reader, 0));
            }
        }

        if (rows.Count > 0 && !rows.Any(r => string.Equals(r.KeyId, protector.KeyId, StringComparison.Ordinal)))
        {
            throw new StoreException("key_mismatch",
                $"None of the {rows.Count} record(s) in the store at {location} was sealed with this master key (id {protector.KeyId}); sealing them with it now would leave them unusable with the right one. " +
                "Nothing was changed. Put back the key file they were sealed with (master.key, or LATCHKEY_KEY_FILE), then start Latchkey again.");
        }

        var saved = new List<StoredRow>();
        using (var command = Command(connection, transaction, $"SELECT {StoredRow.SavedColumns} FROM {StoredRow.SavedFrom} ORDER BY h.credential_id, h.version"))
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                saved.Add(StoredRow.From(reader, 0));
            }
        }

        var keys = new List<(SealPreviewKey Key, string Seal)>();
        using (var command = Command(connection, transaction, "SELECT name, key_id, secret_fp, credentials_json, created_at, expires_at, revoked_at, made_for FROM client_key ORDER BY name"))
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                long? Nullable(int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetInt64(ordinal);
                var (expires, revoked) = (Nullable(5), Nullable(6));
                keys.Add((
                    new SealPreviewKey(reader.GetString(0), DecodeNames(reader.GetString(3)),
                        expires is { } e ? DateTimeOffset.FromUnixTimeMilliseconds(e) : null, revoked is { } r ? DateTimeOffset.FromUnixTimeMilliseconds(r) : null),
                    SealKey(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetInt64(4), expires, revoked, reader.IsDBNull(7) ? null : reader.GetString(7))));
            }
        }

        var rowSeals = rows.Select(SealCurrent).ToList();
        var savedSeals = saved.Select(SealSaved).ToList();
        if (sealing.Mode is SealMode.Preview or SealMode.Approved)
        {
            var preview = new SealPreview(location, fromVersion,
                [.. rows.Select(r => Preview(r, saved: false)), .. saved.Select(s => Preview(s, saved: true))],
                [.. keys.Select(k => k.Key)],
                Digest(rowSeals, savedSeals, keys.Select(k => k.Seal)));
            if (sealing.Mode == SealMode.Preview)
            {
                if (fromVersion > 0)
                {
                    sealing.Found = preview;
                    return false;
                }

                // A store created just now holds nothing to show: it is sealed from its first row like any new store.
            }
            else if (!string.Equals(preview.Digest, sealing.Approved!.Digest, StringComparison.Ordinal))
            {
                throw new StoreException(ChangedCode,
                    $"The store at {location} changed after it was shown for sealing: a credential, saved version or client key is not what you approved. Nothing was sealed. Run 'latchkey store seal' again and check what it shows; if you did not change the store yourself, someone else who can write the database did.");
            }
        }

        // The seal command seals what it showed. The last refresh error and upstream failure were not shown (their
        // text reaches agents and status), so it leaves them unsealed, and they are dropped when read.
        var diagnostics = sealing.Mode != SealMode.Approved;
        for (var i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            Execute(connection, transaction, "UPDATE credential SET row_mac = @mac, last_error_mac = @error, upstream_failure_mac = @failure WHERE id = @id",
                ("@mac", rowSeals[i]), ("@id", row.Id),
                ("@error", diagnostics ? SealDiagnostic(row.Name, LastErrorColumn, row.LastErrorJson) : null),
                ("@failure", diagnostics ? SealDiagnostic(row.Name, UpstreamFailureColumn, row.UpstreamFailureJson) : null));
        }

        for (var i = 0; i < saved.Count; i++)
        {
            Execute(connection, transaction, "UPDATE credential_history SET row_mac = @mac WHERE credential_id = @id AND version = @version",
                ("@mac", savedSeals[i]), ("@id", saved[i].Id), ("@version", saved[i].Version));
        }

        foreach (var (key, seal) in keys)
        {
            Execute(connection, transaction, "UPDATE client_key SET row_mac = @mac WHERE name = @name", ("@mac", seal), ("@name", key.Name));
        }

        Execute(connection, transaction, "INSERT INTO store_meta (name, value) VALUES (@name, @value)",
            ("@name", RowsSealedMarkerName), ("@value", protector.SealRow(RowSeal.RowsSealedMarker())));
        Execute(connection, transaction, "INSERT INTO store_meta (name, value) VALUES ('key_id', @value) ON CONFLICT (name) DO NOTHING", ("@value", protector.KeyId));
        if (sealing.Mode == SealMode.Approved)
        {
            Execute(connection, transaction,
                """
                INSERT INTO audit_event (event_id, at, client_key, credential, route, method, path, status, upstream_status, latency_ms, reason, replica)
                VALUES (@event, @at, NULL, NULL, @route, 'SEAL', @path, 200, NULL, 0, 'store_sealed', @replica)
                """,
                ("@event", Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16))), ("@at", now.ToUnixTimeMilliseconds()), ("@route", SealAuditRoute),
                ("@path", $"sealed {rows.Count} credential(s), {saved.Count} saved version(s), {keys.Count} client key(s) at schema {fromVersion}"),
                ("@replica", Audit.AuditEntry.Cut(writer, Audit.AuditEntry.MaxReplicaLength)));
        }

        return true;
    }

    private SealPreviewCredential Preview(StoredRow row, bool saved)
    {
        CredentialMetadata? metadata;
        try
        {
            metadata = JsonSerializer.Deserialize(row.MetadataJson, StoreJsonContext.Default.CredentialMetadata);
        }
        catch (JsonException)
        {
            metadata = null;
        }

        return new SealPreviewCredential(row.Name, row.Kind, row.Version, saved, row.State, metadata, string.Equals(row.KeyId, protector.KeyId, StringComparison.Ordinal));
    }

    private static string Digest(IEnumerable<string> rows, IEnumerable<string> saved, IEnumerable<string> keys)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (tag, seals) in new[] { ("credential", rows), ("saved", saved), ("key", keys) })
        {
            foreach (var seal in seals)
            {
                hash.AppendData(Encoding.UTF8.GetBytes($"{tag}:{seal}\n"));
            }
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = name;
            parameter.Value = value ?? DBNull.Value;
            command.Parameters.Add(parameter);
        }

        return command;
    }

    private static object? Scalar(DbConnection connection, DbTransaction? transaction, string sql, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(connection, transaction, sql, parameters);
        return command.ExecuteScalar();
    }

    private static void Execute(DbConnection connection, DbTransaction transaction, string sql, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(connection, transaction, sql, parameters);
        command.ExecuteNonQuery();
    }
}
