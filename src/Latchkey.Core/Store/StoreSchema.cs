namespace Latchkey.Store;

/// <summary>
/// The tables both backends define alike, written once and rendered with each backend's column types
/// (<see cref="SqliteSchema"/>, <see cref="PostgresSchema"/> place them in their own migrations). Both backends
/// share one row format: the same columns, times in unix milliseconds.
/// </summary>
/// <remarks>
/// These are parts of migrations that have shipped, so their text never changes: rendered for SQLite, each is
/// exactly the text SQLite's migration always had (SQLite keeps a table's <c>CREATE</c> text in the database). For
/// PostgreSQL only the types are its own; the tables are the same as its migrations always made.
/// </remarks>
internal static class StoreSchema
{
    /// <summary>
    /// The first columns of the <c>credential</c> table, in the order both backends keep them: the record's identity
    /// and content, up to the refresh-token fingerprint. Each backend's table goes on with columns of its own.
    /// </summary>
    public static string CredentialContent(ColumnTypes t) =>
        $"""
          id            {t.Text} PRIMARY KEY NOT NULL,   -- immutable random id, bound into the encryption
          name          {t.Text} NOT NULL UNIQUE,        -- the user-given lookup key
          kind          {t.Text} NOT NULL,               -- api-key | oauth
          version       {t.Bigint} NOT NULL,            -- +1 on every content write
          state         {t.Text} NOT NULL,               -- ok | needs-auth | quarantined
          reason_json   {t.Text},
          metadata_json {t.Text} NOT NULL,               -- never secret material
          key_id        {t.Text} NOT NULL,
          secret_ct     {t.Bytes} NOT NULL,               -- AES-256-GCM sealed secrets
          rt_fp         {t.Text},                        -- HMAC fingerprint of the refresh token: the refresh fence
        """;

    /// <summary>A saved earlier version of a credential's content (see <see cref="StoredRow.SavedColumns"/>).</summary>
    public static string CredentialHistory(ColumnTypes t) =>
        $"""
        CREATE TABLE credential_history (
          credential_id {t.Text} NOT NULL REFERENCES credential (id) ON DELETE CASCADE,
          version       {t.Bigint} NOT NULL,
          state         {t.Text} NOT NULL,
          reason_json   {t.Text},
          metadata_json {t.Text} NOT NULL,
          key_id        {t.Text} NOT NULL,
          secret_ct     {t.Bytes} NOT NULL,
          rt_fp         {t.Text},
          written_at    {t.Bigint} NOT NULL,
          archived_at   {t.Bigint} NOT NULL,
          PRIMARY KEY (credential_id, version)
        ){t.TableOptions}
        """;

    /// <summary>The client keys agents hold: only an HMAC of each key is stored.</summary>
    public static string ClientKey(ColumnTypes t) =>
        $"""
        CREATE TABLE client_key (
          name             {t.Text} PRIMARY KEY NOT NULL,  -- the user-given name
          key_id           {t.Text} NOT NULL UNIQUE,       -- the public part of the key, for lookup
          secret_fp        {t.Text} NOT NULL,              -- HMAC of the whole key under the fingerprint key; never the key
          credentials_json {t.Text} NOT NULL,              -- the credential (and router) names the key may use
          created_at       {t.Bigint} NOT NULL,
          expires_at       {t.Bigint},
          revoked_at       {t.Bigint},
          last_used_at     {t.Bigint}
        ){t.TableOptions}
        """;

    /// <summary>
    /// The audit log: one request a gateway (or replica) answered, no secrets, no bodies. <c>at</c> is unix ms on the
    /// answering process's clock; <c>credential</c> has no foreign key, so entries outlive the credential they name.
    /// </summary>
    public static string AuditEvent(ColumnTypes t) =>
        $"""
        CREATE TABLE audit_event (                     -- one request the gateway answered; no secrets, no bodies
          id              {t.Identity},
          event_id        {t.Text} NOT NULL UNIQUE,        -- random, chosen by the gateway: a retried batch is written once
          at              {t.Bigint} NOT NULL,            -- unix ms, when the request arrived
          client_key      {t.Text},                        -- the client key's name, never the key
          credential      {t.Text},                        -- no foreign key: entries outlive the credential they name
          route           {t.Text} NOT NULL,
          method          {t.Text} NOT NULL,
          path            {t.Text} NOT NULL,               -- without the query string
          status          {t.Integer} NOT NULL,
          upstream_status {t.Integer},
          latency_ms      {t.Bigint} NOT NULL,
          reason          {t.Text},
          replica         {t.Text} NOT NULL
        ){t.TableOptions};
        CREATE INDEX audit_event_at ON audit_event (at);
        CREATE INDEX audit_event_credential_at ON audit_event (credential, at)
        """;

    /// <summary>The seal columns (see <see cref="RowSeal"/>) of the credential, saved-version and client-key rows.</summary>
    public static string RowSeals(ColumnTypes t) =>
        $"""
        ALTER TABLE credential ADD COLUMN row_mac {t.Text};           -- the row's seal (RowSeal): HMAC under a key derived from the master key
        ALTER TABLE credential ADD COLUMN last_error_mac {t.Text};    -- the seals of the two diagnostics written without a content write
        ALTER TABLE credential ADD COLUMN upstream_failure_mac {t.Text};
        ALTER TABLE credential_history ADD COLUMN row_mac {t.Text};
        ALTER TABLE client_key ADD COLUMN row_mac {t.Text}
        """;

    /// <summary>
    /// The client a key was made for (<c>claude-code</c>, <c>codex</c>, …, by <c>latchkey mcp install</c>); null for a
    /// key made by hand. Sealed with the row (<see cref="RowSeal.ClientKey"/>). <paramref name="ifNotExists"/> for a
    /// backend that can say so (PostgreSQL), so a schema turned back by hand migrates forward again.
    /// </summary>
    public static string ClientKeyMadeFor(ColumnTypes t, bool ifNotExists) =>
        $"ALTER TABLE client_key ADD COLUMN {(ifNotExists ? "IF NOT EXISTS " : string.Empty)}made_for {t.Text}";

    /// <summary>
    /// Token usage as the providers counted it in their answers: one row per UTC day (<c>yyyy-MM-dd</c>), client key
    /// (its name; '' for none), credential and model, added to by upsert (<c>x = x + excluded.x</c>, saturating). No
    /// seal: counters, not rights (see docs/security.md). <c>IF NOT EXISTS</c>, so a schema turned back by hand
    /// migrates forward again on either backend.
    /// </summary>
    public static string UsageDaily(ColumnTypes t) =>
        $"""
        CREATE TABLE IF NOT EXISTS usage_daily (       -- tokens the providers counted, per UTC day, client key, credential and model
          day                   {t.Text} NOT NULL,      -- UTC date, yyyy-MM-dd
          client_key            {t.Text} NOT NULL,      -- the client key's name, never the key; '' when none (the local Unix socket)
          credential            {t.Text} NOT NULL,      -- no foreign key: usage outlives the credential it names
          model                 {t.Text} NOT NULL,      -- from the answer, else the request; '' when neither named one
          requests              {t.Bigint} NOT NULL,   -- answers that carried a usage count
          input_tokens          {t.Bigint} NOT NULL,   -- not read from or written to a prompt cache
          output_tokens         {t.Bigint} NOT NULL,
          cache_creation_tokens {t.Bigint} NOT NULL,
          cache_read_tokens     {t.Bigint} NOT NULL,
          PRIMARY KEY (day, client_key, credential, model)
        ){t.TableOptions}
        """;

    /// <summary>
    /// The limits of client keys (<see cref="ClientKeyLimits"/>), sealed with the row (<see cref="RowSeal.ClientKey"/>),
    /// and where a store shared by several gateways counts them (<see cref="IKeyLimitCounters"/>): the rate's state per
    /// key (<c>key_limit_state</c>, whose row is also what a concurrency check locks) and the requests in flight
    /// (<c>key_lease</c>). Times there are unix microseconds. <paramref name="ifNotExists"/> for a backend that can say so
    /// (PostgreSQL), so a schema turned back by hand migrates forward again.
    /// </summary>
    public static string KeyLimits(ColumnTypes t, bool ifNotExists)
    {
        var column = ifNotExists ? "IF NOT EXISTS " : string.Empty;
        return $"""
            ALTER TABLE client_key ADD COLUMN {column}rate_limit {t.Bigint};        -- requests per window (with rate_window_s), or null
            ALTER TABLE client_key ADD COLUMN {column}rate_window_s {t.Bigint};     -- 1, 60, 3600 or 86400
            ALTER TABLE client_key ADD COLUMN {column}tokens_per_day {t.Bigint};    -- tokens per UTC day, or null
            ALTER TABLE client_key ADD COLUMN {column}concurrent_limit {t.Bigint};  -- requests in flight at once, or null
            CREATE TABLE {column}key_limit_state (       -- per client key, for a store several gateways share
              key_id   {t.Text} PRIMARY KEY NOT NULL,
              rate_tat {t.Bigint}                         -- unix us: when the key's rate bucket is full again (GCRA)
            ){t.TableOptions};
            CREATE TABLE {column}key_lease (             -- one request in flight of a key with a concurrency limit
              lease_id   {t.Text} PRIMARY KEY NOT NULL,
              key_id     {t.Text} NOT NULL,
              expires_at {t.Bigint} NOT NULL              -- unix us; renewed while the request runs, so a dead gateway's lapse
            ){t.TableOptions};
            CREATE INDEX {column}key_lease_key ON key_lease (key_id, expires_at)
            """;
    }

    /// <summary>A backend's column types, and what ends its <c>CREATE TABLE</c>.</summary>
    /// <param name="Text">Text.</param>
    /// <param name="Integer">A 32-bit integer.</param>
    /// <param name="Bigint">A 64-bit integer (unix milliseconds, versions).</param>
    /// <param name="Bytes">A byte string (sealed secrets).</param>
    /// <param name="Identity">A generated 64-bit primary key, growing with each row.</param>
    /// <param name="TableOptions">After a table's closing parenthesis (SQLite's <c>STRICT</c>).</param>
    internal sealed record ColumnTypes(string Text, string Integer, string Bigint, string Bytes, string Identity, string TableOptions);
}
