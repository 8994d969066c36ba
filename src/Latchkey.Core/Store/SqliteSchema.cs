namespace Latchkey.Store;

/// <summary>
/// Forward-only migrations; entry <c>i</c> takes the schema from version <c>i</c> to <c>i + 1</c>. Never edit a
/// migration that has shipped: add the next one. Every migration runs inside one <c>BEGIN IMMEDIATE</c>
/// transaction together with its <c>user_version</c> bump, so processes that start together migrate once.
/// </summary>
internal static class SqliteSchema
{
    /// <summary>
    /// The schema version that added row seals. Migrating from below it seals every existing row in the same
    /// transaction (<see cref="RowCodec.SealExistingRows"/>).
    /// </summary>
    public const int RowsSealedFrom = 5;

    public static IReadOnlyList<string> Migrations { get; } =
    [
        """
        CREATE TABLE credential (
          id            TEXT PRIMARY KEY NOT NULL,   -- immutable random id, bound into the encryption
          name          TEXT NOT NULL UNIQUE,        -- the user-given lookup key
          kind          TEXT NOT NULL,               -- api-key | oauth
          version       INTEGER NOT NULL,            -- +1 on every content write
          state         TEXT NOT NULL,               -- ok | needs-auth | quarantined
          reason_json   TEXT,
          metadata_json TEXT NOT NULL,               -- never secret material
          key_id        TEXT NOT NULL,
          secret_ct     BLOB NOT NULL,               -- AES-256-GCM sealed secrets
          rt_fp         TEXT,                        -- HMAC fingerprint of the refresh token: the refresh fence
          created_at    INTEGER NOT NULL,            -- unix ms
          updated_at    INTEGER NOT NULL,
          updated_by    TEXT NOT NULL
        ) STRICT;
        CREATE TABLE credential_history (
          credential_id TEXT NOT NULL REFERENCES credential (id) ON DELETE CASCADE,
          version       INTEGER NOT NULL,
          state         TEXT NOT NULL,
          reason_json   TEXT,
          metadata_json TEXT NOT NULL,
          key_id        TEXT NOT NULL,
          secret_ct     BLOB NOT NULL,
          rt_fp         TEXT,
          written_at    INTEGER NOT NULL,
          archived_at   INTEGER NOT NULL,
          PRIMARY KEY (credential_id, version)
        ) STRICT
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
        """
        ALTER TABLE credential ADD COLUMN upstream_failure_json TEXT;   -- the last upstream auth failure the gateway saw
        CREATE TABLE client_key (
          name             TEXT PRIMARY KEY NOT NULL,  -- the user-given name
          key_id           TEXT NOT NULL UNIQUE,       -- the public part of the key, for lookup
          secret_fp        TEXT NOT NULL,              -- HMAC of the whole key under the fingerprint key; never the key
          credentials_json TEXT NOT NULL,              -- the credential (and router) names the key may use
          created_at       INTEGER NOT NULL,
          expires_at       INTEGER,
          revoked_at       INTEGER,
          last_used_at     INTEGER
        ) STRICT
        """,
        """
        CREATE TABLE audit_event (                     -- one request the gateway answered; no secrets, no bodies
          id              INTEGER PRIMARY KEY AUTOINCREMENT,
          event_id        TEXT NOT NULL UNIQUE,        -- random, chosen by the gateway: a retried batch is written once
          at              INTEGER NOT NULL,            -- unix ms, when the request arrived
          client_key      TEXT,                        -- the client key's name, never the key
          credential      TEXT,                        -- no foreign key: entries outlive the credential they name
          route           TEXT NOT NULL,
          method          TEXT NOT NULL,
          path            TEXT NOT NULL,               -- without the query string
          status          INTEGER NOT NULL,
          upstream_status INTEGER,
          latency_ms      INTEGER NOT NULL,
          reason          TEXT,
          replica         TEXT NOT NULL
        ) STRICT;
        CREATE INDEX audit_event_at ON audit_event (at);
        CREATE INDEX audit_event_credential_at ON audit_event (credential, at)
        """,
        """
        ALTER TABLE credential ADD COLUMN row_mac TEXT;           -- the row's seal (RowSeal): HMAC under a key derived from the master key
        ALTER TABLE credential ADD COLUMN last_error_mac TEXT;    -- the seals of the two diagnostics written without a content write
        ALTER TABLE credential ADD COLUMN upstream_failure_mac TEXT;
        ALTER TABLE credential_history ADD COLUMN row_mac TEXT;
        ALTER TABLE client_key ADD COLUMN row_mac TEXT;
        CREATE TABLE IF NOT EXISTS store_meta (                   -- facts about the store itself: the key's id, the sealed marker
          name  TEXT PRIMARY KEY NOT NULL,
          value TEXT NOT NULL
        ) STRICT
        """,
    ];
}
