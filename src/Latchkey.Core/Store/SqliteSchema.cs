namespace Latchkey.Store;

/// <summary>
/// Forward-only migrations; entry <c>i</c> takes the schema from version <c>i</c> to <c>i + 1</c>. Never edit a
/// migration that has shipped: add the next one. Every migration runs inside one <c>BEGIN IMMEDIATE</c>
/// transaction together with its <c>user_version</c> bump, so processes that start together migrate once. The tables
/// both backends define alike are written once, in <see cref="StoreSchema"/>.
/// </summary>
internal static class SqliteSchema
{
    /// <summary>
    /// The schema version that added row seals. Migrating from below it seals every existing row in the same
    /// transaction (<see cref="RowCodec.SealExistingRows"/>).
    /// </summary>
    public const int RowsSealedFrom = 5;

    /// <summary>The schema version that added the <c>usage_daily</c> table (<see cref="StoreSchema.UsageDaily"/>).</summary>
    public const int UsageFrom = 8;

    /// <summary>The column types of the tables both backends share (<see cref="StoreSchema"/>).</summary>
    private static readonly StoreSchema.ColumnTypes Types = new("TEXT", "INTEGER", "INTEGER", "BLOB", "INTEGER PRIMARY KEY AUTOINCREMENT", " STRICT");

    public static IReadOnlyList<string> Migrations { get; } =
    [
        $$"""
        CREATE TABLE credential (
        {{StoreSchema.CredentialContent(Types)}}
          created_at    INTEGER NOT NULL,            -- unix ms
          updated_at    INTEGER NOT NULL,
          updated_by    TEXT NOT NULL
        ) STRICT;
        {{StoreSchema.CredentialHistory(Types)}}
        """,
        """
        ALTER TABLE credential ADD COLUMN at_fp TEXT;
        ALTER TABLE credential ADD COLUMN lease_owner TEXT;
        ALTER TABLE credential ADD COLUMN lease_until INTEGER;
        ALTER TABLE credential ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE credential ADD COLUMN attempt_id TEXT;
        ALTER TABLE credential ADD COLUMN attempt_rt_fp TEXT;
        ALTER TABLE credential ADD COLUMN attempt_owner TEXT;
        ALTER TABLE credential ADD COLUMN attempt_sent_at INTEGER;
        ALTER TABLE credential ADD COLUMN attempt_recovery_of TEXT;
        ALTER TABLE credential ADD COLUMN backoff_until INTEGER;
        ALTER TABLE credential ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE credential ADD COLUMN last_error_json TEXT
        """,
        $$"""
        ALTER TABLE credential ADD COLUMN upstream_failure_json TEXT;   -- the last upstream auth failure the gateway saw
        {{StoreSchema.ClientKey(Types)}}
        """,
        StoreSchema.AuditEvent(Types),
        $$"""
        {{StoreSchema.RowSeals(Types)}};
        CREATE TABLE IF NOT EXISTS store_meta (                   -- facts about the store itself: the key's id, the sealed marker
          name  TEXT PRIMARY KEY NOT NULL,
          value TEXT NOT NULL
        ) STRICT
        """,
        StoreSchema.ClientKeyMadeFor(Types, ifNotExists: false),
        StoreSchema.KeyLimits(Types, ifNotExists: false),
        StoreSchema.UsageDaily(Types),
    ];
}
