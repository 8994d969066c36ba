using System.Data.Common;

namespace Latchkey.Store;

/// <summary>The one-time sealing of a store written before rows carried seals; shared by both backends.</summary>
internal sealed partial class RowCodec
{
    /// <summary>The <c>store_meta</c> row that records that every row of the store is sealed.</summary>
    public const string RowsSealedMarkerName = "rows_sealed";

    /// <summary>
    /// Seals every credential row, saved version and client key exactly as it is now, and records the sealed marker
    /// (itself sealed), inside the migration's transaction <paramref name="transaction"/>; the caller commits it
    /// together with the schema change that added the seal columns. From then on a row without a valid seal is a
    /// changed row, and nothing short of turning back the schema version and dropping the columns runs this again.
    /// </summary>
    /// <exception cref="StoreException">
    /// The marker is already there (the seal columns were dropped after the store was sealed), or the rows were
    /// sealed with another master key (sealing them with this one would make them unusable with the right one).
    /// Nothing is written then.
    /// </exception>
    public void SealExistingRows(DbConnection connection, DbTransaction transaction, string location)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(transaction);
        if (Scalar(connection, transaction, "SELECT value FROM store_meta WHERE name = @name", ("@name", RowsSealedMarkerName)) is string)
        {
            throw new StoreException("store_rolled_back",
                $"The store at {location} records that its rows were sealed by Latchkey, but the seal columns are gone: someone turned its schema back, so no record or client key in it can be trusted. " +
                "Nothing was changed. Restore the database from a backup made before this happened, or move it aside and add the credentials again.");
        }

        if (Scalar(connection, transaction, "SELECT value FROM store_meta WHERE name = 'key_id'") is string recorded
            && !string.Equals(recorded, protector.KeyId, StringComparison.Ordinal))
        {
            throw new StoreException("key_mismatch",
                $"This master key (id {protector.KeyId}) is not the one the store at {location} is sealed with (id {recorded}). Nothing was changed. Use the key file the store was made with; see docs/store.md.");
        }

        var rows = new List<StoredRow>();
        using (var command = Command(connection, transaction, $"SELECT {StoredRow.Columns} FROM credential"))
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

        foreach (var row in rows)
        {
            Execute(connection, transaction, "UPDATE credential SET row_mac = @mac, last_error_mac = @error, upstream_failure_mac = @failure WHERE id = @id",
                ("@mac", SealCurrent(row)), ("@id", row.Id),
                ("@error", SealDiagnostic(row.Name, LastErrorColumn, row.LastErrorJson)), ("@failure", SealDiagnostic(row.Name, UpstreamFailureColumn, row.UpstreamFailureJson)));
        }

        var saved = new List<StoredRow>();
        using (var command = Command(connection, transaction, $"SELECT {StoredRow.SavedColumns} FROM {StoredRow.SavedFrom}"))
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                saved.Add(StoredRow.From(reader, 0));
            }
        }

        foreach (var version in saved)
        {
            Execute(connection, transaction, "UPDATE credential_history SET row_mac = @mac WHERE credential_id = @id AND version = @version",
                ("@mac", SealSaved(version)), ("@id", version.Id), ("@version", version.Version));
        }

        var keys = new List<(string Name, string Seal)>();
        using (var command = Command(connection, transaction, "SELECT name, key_id, secret_fp, credentials_json, created_at, expires_at, revoked_at FROM client_key"))
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                long? Nullable(int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetInt64(ordinal);
                keys.Add((reader.GetString(0), SealKey(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetInt64(4), Nullable(5), Nullable(6))));
            }
        }

        foreach (var (name, seal) in keys)
        {
            Execute(connection, transaction, "UPDATE client_key SET row_mac = @mac WHERE name = @name", ("@mac", seal), ("@name", name));
        }

        Execute(connection, transaction, "INSERT INTO store_meta (name, value) VALUES (@name, @value)",
            ("@name", RowsSealedMarkerName), ("@value", protector.SealRow(RowSeal.RowsSealedMarker())));
        Execute(connection, transaction, "INSERT INTO store_meta (name, value) VALUES ('key_id', @value) ON CONFLICT (name) DO NOTHING", ("@value", protector.KeyId));
    }

    private static DbCommand Command(DbConnection connection, DbTransaction transaction, string sql, params (string Name, object? Value)[] parameters)
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

    private static object? Scalar(DbConnection connection, DbTransaction transaction, string sql, params (string Name, object? Value)[] parameters)
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
