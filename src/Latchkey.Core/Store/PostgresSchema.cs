namespace Latchkey.Store;

/// <summary>
/// The PostgreSQL schema: forward-only migrations, entry <c>i</c> taking the schema from version <c>i</c> to
/// <c>i + 1</c>, recorded one row per version in <c>schema_version</c>. Never edit a migration that has shipped:
/// add the next one (the <c>audit_event</c> table is migration 2: it names credentials without a foreign key, so that
/// entries outlive the credential they describe).
/// </summary>
/// <remarks>
/// The columns are SQLite's (see <see cref="SqliteSchema"/>), with times in unix milliseconds, so both backends
/// share one row format; the tables both define alike are written once, in <see cref="StoreSchema"/>. Coordination times (<c>lease_until</c>, <c>attempt_sent_at</c>, <c>backoff_until</c>) are
/// written from the database's <c>clock_timestamp()</c>, never from a replica's clock. Migrations run in one
/// transaction holding <c>pg_advisory_xact_lock(<see cref="MigrationLock"/>)</c>, so replicas that start
/// together migrate once and the others wait, then find the work done.
/// </remarks>
internal static class PostgresSchema
{
    /// <summary>The advisory lock key every Latchkey replica takes to migrate ("latchkey" in ASCII).</summary>
    public const long MigrationLock = 0x6c61_7463_686b_6579;

    /// <summary>Unix milliseconds on the database's clock, as a SQL expression.</summary>
    public const string NowMs = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

    public const string CreateVersionTable =
        """
        CREATE TABLE IF NOT EXISTS schema_version (
          version    integer PRIMARY KEY,
          applied_at timestamptz NOT NULL DEFAULT clock_timestamp(),
          applied_by text NOT NULL
        )
        """;

    /// <summary>
    /// The schema version that added row seals. Migrating from below it seals every existing row in the same
    /// transaction (<see cref="RowCodec.SealExistingRows"/>).
    /// </summary>
    public const int RowsSealedFrom = 3;

    /// <summary>The schema version that added the <c>usage_daily</c> table (<see cref="StoreSchema.UsageDaily"/>).</summary>
    public const int UsageFrom = 6;

    /// <summary>The column types of the tables both backends share (<see cref="StoreSchema"/>).</summary>
    private static readonly StoreSchema.ColumnTypes Types = new("text", "integer", "bigint", "bytea", "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY", string.Empty);

    public static IReadOnlyList<string> Migrations { get; } =
    [
        $$"""
        CREATE TABLE credential (
        {{StoreSchema.CredentialContent(Types)}}
          at_fp                 text,
          created_at            bigint NOT NULL,           -- unix ms
          updated_at            bigint NOT NULL,
          updated_by            text NOT NULL,
          -- coordination, written without a version bump; times on the database's clock
          lease_owner           text,
          lease_until           bigint,
          lease_epoch           bigint NOT NULL DEFAULT 0,
          attempt_id            text,
          attempt_rt_fp         text,
          attempt_owner         text,
          attempt_sent_at       bigint,
          attempt_recovery_of   text,
          backoff_until         bigint,
          failures              integer NOT NULL DEFAULT 0,
          last_error_json       text,
          upstream_failure_json text
        );
        {{StoreSchema.CredentialHistory(Types)}};
        {{StoreSchema.ClientKey(Types)}};
        CREATE TABLE store_meta (                -- facts about the store itself, e.g. the id of the master key
          name  text PRIMARY KEY,
          value text NOT NULL
        )
        """,
        StoreSchema.AuditEvent(Types),
        StoreSchema.RowSeals(Types),
        StoreSchema.ClientKeyMadeFor(Types, ifNotExists: true),
        StoreSchema.KeyLimits(Types, ifNotExists: true),
        StoreSchema.UsageDaily(Types),
    ];
}
