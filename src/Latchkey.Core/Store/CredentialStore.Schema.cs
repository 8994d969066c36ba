using System.Data.Common;

namespace Latchkey.Store;

/// <summary>
/// Schema migrations, forward only: the sequence is here, the migrations themselves and how a backend records its
/// version and keeps two starting processes (or replicas) from migrating at once are the backend's.
/// </summary>
internal abstract partial class CredentialStore
{
    /// <summary>The backend's migrations: entry <c>i</c> takes the schema from version <c>i</c> to <c>i + 1</c>.</summary>
    private protected abstract IReadOnlyList<string> Migrations { get; }

    /// <summary>The schema version that added row seals: migrating from below it seals every existing row.</summary>
    private protected abstract int RowsSealedFrom { get; }

    /// <summary>What a process that finds a newer schema than it knows is told to do.</summary>
    private protected abstract string UpgradeAdvice { get; }

    /// <summary>The schema version of the database, 0 for an empty one.</summary>
    private protected abstract int ReadSchemaVersion(DbConnection connection, DbTransaction? transaction);

    /// <summary>
    /// Begins the migration's transaction, holding the lock that makes processes (or replicas) that start together
    /// migrate once: the others wait, then find the work done.
    /// </summary>
    private protected abstract DbTransaction BeginMigration(DbConnection connection);

    /// <summary>Records, inside the migration's transaction, that the schema is now at <paramref name="version"/>.</summary>
    private protected abstract void RecordSchemaVersion(DbConnection connection, DbTransaction transaction, int version);

    /// <summary>
    /// Whether a store from before seals that must not be sealed is refused before any migration runs (PostgreSQL:
    /// its <c>store_meta</c> exists from the first migration). Either way nothing is kept: the refusal inside
    /// <see cref="RowCodec.SealExistingRows"/>, after the migrations, rolls them back.
    /// </summary>
    private protected virtual bool RefusesUnsealableBeforeMigrating => false;

    /// <summary>
    /// Brings the schema up to date in one transaction: every missing migration, and, for a store from before row
    /// seals, the sealing of every row exactly as it is, as <paramref name="sealing"/> allows
    /// (<see cref="RowCodec.SealExistingRows"/>; a preview rolls everything back). A database already current is left
    /// alone without taking the lock, its sealed marker checked against the home's record
    /// (<see cref="RowCodec.CheckSealed"/>); one written by a newer Latchkey is refused, untouched.
    /// </summary>
    /// <param name="identity">The store's identity in the home's seal ledger.</param>
    /// <param name="sealing">Who may seal a store from before seals, and the home's record of sealed stores.</param>
    /// <returns>Whether the store is sealed (its marker verifies), so the home can record it.</returns>
    /// <exception cref="StoreException">The schema is newer than this build's, or the store must not or cannot be sealed.</exception>
    private protected bool Migrate(string identity, StoreSealing sealing) => Run(connection =>
    {
        var known = Migrations.Count;
        if (ReadSchemaVersion(connection, null) == known)
        {
            return Codec.CheckSealed(connection, null, Location, identity, sealing);
        }

        using var transaction = BeginMigration(connection);
        var version = ReadSchemaVersion(connection, transaction);
        if (version > known)
        {
            throw new StoreException("newer_schema",
                $"The store at {Location} was written by a newer Latchkey (schema {version}; this one knows {known}). Nothing was changed. {UpgradeAdvice}");
        }

        if (version == known)
        {
            return Codec.CheckSealed(connection, transaction, Location, identity, sealing); // another process migrated it meanwhile
        }

        if (RefusesUnsealableBeforeMigrating && version > 0 && version < RowsSealedFrom)
        {
            RowCodec.RefuseUnsealable(connection, transaction, Location, identity, version, sealing);
        }

        for (var next = version + 1; next <= known; next++)
        {
            using (var migrate = connection.Command(transaction, Migrations[next - 1]))
            {
                migrate.ExecuteNonQuery();
            }

            RecordSchemaVersion(connection, transaction, next);
        }

        if (version < RowsSealedFrom
            && !Codec.SealExistingRows(connection, transaction, Location, identity, version, sealing, Time.GetUtcNow(), Writer))
        {
            transaction.Rollback(); // a preview: nothing is kept
            return false;
        }

        transaction.Commit();
        return version < RowsSealedFrom || Codec.CheckSealed(connection, null, Location, identity, sealing);
    });
}
