namespace Latchkey.Store;

/// <summary>
/// The PostgreSQL schema: forward-only migrations, entry <c>i</c> taking the schema from version <c>i</c> to
/// <c>i + 1</c>, recorded one row per version in <c>schema_version</c>. Never edit a migration that has shipped:
/// add the next one (the <c>audit_event</c> table is migration 2: it names credentials without a foreign key, so that
/// entries outlive the credential they describe).
/// </summary>
/// <remarks>
/// The columns are SQLite's (see <see cref="SqliteSchema"/>), with times in unix milliseconds, so both backends
/// share one row format. Coordination times (<c>lease_until</c>, <c>attempt_sent_at</c>, <c>backoff_until</c>) are
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

    public static IReadOnlyList<string> Migrations { get; } =
    [
        """
        CREATE TABLE credential (
          id                    text PRIMARY KEY,          -- immutable random id, bound into the encryption
          name                  text NOT NULL UNIQUE,      -- the user-given lookup key
          kind                  text NOT NULL,             -- api-key | oauth
          version               bigint NOT NULL,           -- +1 on every content write
          state                 text NOT NULL,             -- ok | needs-auth | quarantined
          reason_json           text,
          metadata_json         text NOT NULL,             -- never secret material
          key_id                text NOT NULL,             -- which master key sealed secret_ct (a hash, not the key)
          secret_ct             bytea NOT NULL,            -- AES-256-GCM sealed secrets, sealed before they get here
          rt_fp                 text,                      -- HMAC fingerprint of the refresh token: the refresh fence
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
        CREATE TABLE credential_history (
          credential_id text NOT NULL REFERENCES credential (id) ON DELETE CASCADE,
          version       bigint NOT NULL,
          state         text NOT NULL,
          reason_json   text,
          metadata_json text NOT NULL,
          key_id        text NOT NULL,
          secret_ct     bytea NOT NULL,
          rt_fp         text,
          written_at    bigint NOT NULL,
          archived_at   bigint NOT NULL,
          PRIMARY KEY (credential_id, version)
        );
        CREATE TABLE client_key (
          name             text PRIMARY KEY,     -- the user-given name
          key_id           text NOT NULL UNIQUE, -- the public part of the key, for lookup
          secret_fp        text NOT NULL,        -- HMAC of the whole key under the fingerprint key; never the key
          credentials_json text NOT NULL,        -- the credential (and router) names the key may use
          created_at       bigint NOT NULL,
          expires_at       bigint,
          revoked_at       bigint,
          last_used_at     bigint
        );
        CREATE TABLE store_meta (                -- facts about the store itself, e.g. the id of the master key
          name  text PRIMARY KEY,
          value text NOT NULL
        )
        """,
        """
        CREATE TABLE audit_event (                 -- one request a gateway replica answered; no secrets, no bodies
          id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
          event_id        text NOT NULL UNIQUE,    -- random, chosen by the replica: a retried batch is written once
          at              bigint NOT NULL,         -- unix ms on the replica's clock, when the request arrived
          client_key      text,                    -- the client key's name, never the key
          credential      text,                    -- no foreign key: entries outlive the credential they name
          route           text NOT NULL,
          method          text NOT NULL,
          path            text NOT NULL,           -- without the query string
          status          integer NOT NULL,
          upstream_status integer,
          latency_ms      bigint NOT NULL,
          reason          text,
          replica         text NOT NULL
        );
        CREATE INDEX audit_event_at ON audit_event (at);
        CREATE INDEX audit_event_credential_at ON audit_event (credential, at)
        """,
        """
        ALTER TABLE credential ADD COLUMN row_mac text;           -- the row's seal (RowSeal): HMAC under a key derived from the master key
        ALTER TABLE credential ADD COLUMN last_error_mac text;    -- the seals of the two diagnostics written without a content write
        ALTER TABLE credential ADD COLUMN upstream_failure_mac text;
        ALTER TABLE credential_history ADD COLUMN row_mac text;
        ALTER TABLE client_key ADD COLUMN row_mac text
        """,
    ];
}
