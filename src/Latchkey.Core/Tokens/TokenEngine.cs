using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.Json;
using Latchkey.Diagnostics;
using Latchkey.OAuth;
using Latchkey.Store;
using Latchkey.Telemetry;

namespace Latchkey.Tokens;

/// <summary>
/// The only code that spends a grant. <see cref="GetAccessTokenAsync"/> returns a usable access token, refreshing
/// first when the stored one is due, and does so exactly once per grant across threads and processes.
/// docs/failure-modes.md describes the failures each rule below prevents, and the tests that show it.
/// </summary>
/// <remarks>
/// <para><b>Concurrency.</b> Callers in one process share one refresh flight per (credential, forced fingerprint);
/// the flight runs under the engine's own timeout, so one caller's cancellation never fails the others.
/// Across processes, a lease in the store gives liveness and the compare-and-swap on the refresh token's
/// fingerprint is the fence: a commit applies only if nobody rotated the token since it was read, so a stalled
/// holder whose lease ran out, or a loser whose request was refused, can never overwrite the winner's tokens.
/// After taking the lease the record is read again, so a refresh token read earlier is never spent.</para>
/// <para><b>Durability.</b> An attempt marker is written before the request is sent. If the answer is lost (or
/// the process dies), the next refresher retries once with the same refresh token, and otherwise records
/// <c>lost_response_rotation</c>: never a silent logout.</para>
/// <para><b>Never a dead token.</b> A token is handed out only while usable (<see cref="IsUsable"/>) and, unless it is
/// the only one there is, before its refresh-ahead point. A refresh whose new token is already unusable by the time
/// it is stored (it took longer than the token lives) is tried again, up to
/// <see cref="TokenEngineOptions.MaxRefreshesPerCall"/> refreshes in one call, then answered
/// <see cref="TokenStatus.Retryable"/> with <c>expired_before_use</c>; after a 401, a replacement that is itself
/// due is refreshed rather than handed back.</para>
/// <para><b>Failures.</b> <c>invalid_grant</c> and other rejections mark the credential <c>needs-auth</c> with the
/// server's error, fenced on the token it tried; network errors, 5xx and 429 keep the credential and record a
/// shared backoff. Never signs anyone in.</para>
/// <para><b>Forced refreshes are bounded.</b> A refresh made only because an upstream refused a still-fresh token
/// is recorded in the grant's metadata (<see cref="CredentialMetadata.LastForcedRefreshAt"/>). When the token that
/// refresh produced is refused too while it is still fresh and younger than
/// <see cref="TokenEngineOptions.ForcedRefreshInterval"/>, no refresh is made: the token is handed back with the
/// reason <see cref="RefreshSkipped"/>, which callers show to the agent. An endpoint that refuses every token so
/// costs the authorization server at most one refresh per grant per interval (plus the scheduled ones), whoever
/// calls. The decision reads the stored record (and is made again under the lease), so it holds across processes
/// and replicas sharing a store; only the interval's edges depend on the replicas' clocks agreeing.</para>
/// </remarks>
internal sealed class TokenEngine(ICredentialStore store, TokenEndpointClient tokens, TimeProvider time, TokenEngineOptions? options = null)
{
    private readonly TokenEngineOptions _options = options ?? new TokenEngineOptions();
    private readonly ConcurrentDictionary<string, Lazy<Task<TokenResult>>> _flights = new(StringComparer.Ordinal);
    private readonly string _owner = ProcessIdentity.NewOwner();

    /// <summary>The reason code of a refresh whose new token was already unusable when it was stored.</summary>
    internal const string ExpiredBeforeUse = "expired_before_use";

    /// <summary>The reason code on a token handed back without the forced refresh that was asked for (see remarks).</summary>
    internal const string RefreshSkipped = "refresh_skipped";

    /// <summary>
    /// A usable access token for <paramref name="name"/>. With <paramref name="forceIfAccessTokenFingerprint"/>
    /// (the fingerprint of a token an upstream just refused), a refresh happens only if that token is still the
    /// stored one, so N concurrent 401s cause one refresh, and a 401 for a superseded token causes none.
    /// </summary>
    public Task<TokenResult> GetAccessTokenAsync(string name, string? forceIfAccessTokenFingerprint, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        var key = name + "\n" + forceIfAccessTokenFingerprint;
        Lazy<Task<TokenResult>>? flight = null;
        flight = new Lazy<Task<TokenResult>>(() => RunFlightAsync(name, forceIfAccessTokenFingerprint, () => _flights.TryRemove(KeyValuePair.Create(key, flight!))));
        var joined = _flights.GetOrAdd(key, flight);
        if (!ReferenceEquals(joined, flight))
        {
            LatchkeyTelemetry.TokenEngineWaits.Add(1, new KeyValuePair<string, object?>(LatchkeyTelemetry.WaitTag, "flight"));
        }

        return joined.Value.WaitAsync(cancellationToken);
    }

    /// <summary>The fingerprint of a token as the store keeps it (to pass back as a forced-refresh condition).</summary>
    public string Fingerprint(string token) => store.Fingerprint(token);

    /// <summary>
    /// Revokes <paramref name="record"/>'s grant at its authorization server (RFC 7009), best-effort, before the record
    /// is removed: its refresh token, else its access token. Returns what happened in words (<c>revoked</c>,
    /// <c>not revoked (...)</c>, <c>the server offers no revocation endpoint</c>), or null when there was nothing to
    /// revoke (an API key, a grant without a token). Never throws for the server's answer or the network.
    /// </summary>
    public async Task<string?> RevokeAsync(CredentialRecord record, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        var m = record.Metadata;
        if (record.Kind != CredentialKind.OAuth || m.RevocationEndpoint is null || m.Client is null)
        {
            return m.RevocationEndpoint is null && record.Kind == CredentialKind.OAuth ? "the server offers no revocation endpoint" : null;
        }

        var (token, hint) = record.Secrets.RefreshToken is { } rt ? (rt, "refresh_token") : (record.Secrets.AccessToken, "access_token");
        if (token is null)
        {
            return null;
        }

        try
        {
            return await tokens.RevokeAsync(new Uri(m.RevocationEndpoint), new ClientAuth(m.Client.ClientId, m.Client.AuthMethod, record.Secrets.ClientSecret), token, hint, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OAuthException or HttpRequestException)
        {
            return $"not revoked ({ex.Message})";
        }
    }

    private async Task<TokenResult> RunFlightAsync(string name, string? forceFingerprint, Func<bool> remove)
    {
        await Task.Yield();
        using var timeout = new CancellationTokenSource(_options.FlightTimeout, time);
        try
        {
            return await GetCoreAsync(name, forceFingerprint, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            return TokenResult.Retryable(Reason("refresh_timeout", $"Refreshing '{name}' took longer than {_options.FlightTimeout.TotalSeconds:0} s; the credential is unchanged.", "Try again."));
        }
        finally
        {
            remove();
        }
    }

    private async Task<TokenResult> GetCoreAsync(string name, string? forceFingerprint, CancellationToken ct)
    {
        var deadline = time.GetUtcNow() + _options.WaitBudget;
        var refreshes = 0;
        while (true)
        {
            var row = await store.GetAsync(name, ct).ConfigureAwait(false);
            if (row is null)
            {
                return TokenResult.NotFound;
            }

            if (Decide(row, forceFingerprint) is { } decided)
            {
                return decided;
            }

            var c = row.Coordination;
            if (IsLeaseFree(c) && await store.TryAcquireLeaseAsync(name, _owner, c.Lease.Owner, c.Lease.Epoch, _options.LeaseDuration, ct).ConfigureAwait(false))
            {
                TokenResult? result;
                try
                {
                    result = await RefreshUnderLeaseAsync(name, forceFingerprint, ct).ConfigureAwait(false);
                }
                finally
                {
                    await store.ReleaseLeaseAsync(name, _owner, CancellationToken.None).ConfigureAwait(false);
                }

                if (result?.Reason?.Code == ExpiredBeforeUse && ++refreshes < _options.MaxRefreshesPerCall)
                {
                    continue; // committed, but dead already: this process is warm now, so refresh once more
                }

                if (result is not null)
                {
                    return result;
                }

                continue; // the record moved on while we held the lease: read it again and adopt
            }

            if (time.GetUtcNow() >= deadline)
            {
                return TokenResult.Retryable(Reason("refresh_in_progress",
                    $"Another process has been refreshing '{name}' for over {_options.WaitBudget.TotalSeconds:0} s; the credential is unchanged.", "Try again shortly."));
            }

            LatchkeyTelemetry.TokenEngineWaits.Add(1, new KeyValuePair<string, object?>(LatchkeyTelemetry.WaitTag, "lease"));
            await Task.Delay(TimeSpan.FromMilliseconds(100 + Random.Shared.Next(150)), time, ct).ConfigureAwait(false);
        }
    }

    /// <summary>What can be answered from the record as read, without refreshing (a quarantined or signed-out record, an
    /// API key, a usable token not yet due, a forced refresh for a token already replaced, a shared backoff), or null.</summary>
    private TokenResult? Decide(CredentialRecord row, string? forceFingerprint)
    {
        if (row.State == CredentialState.Quarantined)
        {
            return new TokenResult(TokenStatus.Quarantined, null, row.Reason, null);
        }

        if (row.Kind == CredentialKind.ApiKey)
        {
            return row.State == CredentialState.Ok && !string.IsNullOrEmpty(row.Secrets.ApiKey)
                ? TokenResult.Ok(row.Secrets.ApiKey, row.Metadata.ExpiresAt)
                : TokenResult.NeedsAuth(row.Reason);
        }

        if (row.State != CredentialState.Ok)
        {
            return TokenResult.NeedsAuth(row.Reason);
        }

        var now = time.GetUtcNow();
        var usable = IsUsable(row, now);
        var m = row.Metadata;
        if (forceFingerprint is null && usable && (m.RefreshAfter is null || now < m.RefreshAfter))
        {
            return Served(row);
        }

        if (forceFingerprint is not null && usable && (m.RefreshAfter is null || now < m.RefreshAfter) && !string.Equals(row.AccessTokenFingerprint, forceFingerprint, StringComparison.Ordinal))
        {
            // Already replaced since the caller's token was refused. A replacement that is itself due is refreshed
            // like any due token: handing it to a caller whose last token just died in flight sends it into the same
            // race with less life left.
            return Served(row);
        }

        if (forceFingerprint is not null && IsForcedOnly(row, forceFingerprint, now) && m.LastForcedRefreshAt is { } forcedAt && m.ObtainedAt == forcedAt
            && now - forcedAt < _options.ForcedRefreshInterval && forcedAt - now < _options.ForcedRefreshInterval)
        {
            // The refused token is the one the last forced refresh produced, and it is still young: the refusal is
            // not about the token's age, so another refresh would only spend the grant (and can get it throttled or
            // revoked). Hand it back and say why.
            var next = forcedAt + _options.ForcedRefreshInterval;
            return Served(row) with
            {
                Reason = Reason(RefreshSkipped,
                    $"Latchkey did not refresh '{row.Name}' again: its access token came from a refresh {Math.Max(0, (now - forcedAt).TotalSeconds):0} s ago that an earlier refusal forced, and it is refused too, so another refresh would not help and could get the grant throttled or revoked. At most one such refresh is made per {_options.ForcedRefreshInterval.TotalSeconds:0} s; the next is possible after {next:u}.",
                    $"Check that this endpoint accepts this credential (its scopes, audience or account). If the grant was revoked, sign in again: latchkey login {row.Name}"),
            };
        }

        if (row.Coordination.BackoffUntil is { } backoff && now < backoff)
        {
            return usable ? Served(row) : TokenResult.Retryable(row.Coordination.LastError ?? Reason("backoff", $"Refreshing '{row.Name}' failed recently; retrying after {backoff:u}.", "Try again later."));
        }

        var clientCredentials = m.GrantType == "client_credentials";
        if (string.IsNullOrEmpty(row.Secrets.RefreshToken) && !clientCredentials)
        {
            return usable ? Served(row) : TokenResult.NeedsAuth(Reason("expired",
                $"The access token of '{row.Name}' has expired and the server issued no refresh token.", $"latchkey login {row.Name}"));
        }

        if (m.TokenEndpoint is null || m.Client is null)
        {
            return usable ? Served(row) : TokenResult.NeedsAuth(Reason("no_client",
                $"'{row.Name}' has no token endpoint or client registration recorded, so it cannot be refreshed.", $"latchkey login {row.Name}"));
        }

        return null;
    }

    private static TokenResult Served(CredentialRecord row) => TokenResult.Ok(row.Secrets.AccessToken!, row.Metadata.ExpiresAt);

    /// <summary>Whether a refresh of <paramref name="row"/> now would happen only because its token was refused: the
    /// refused token is the stored one, and it is usable and before its refresh-ahead point.</summary>
    private static bool IsForcedOnly(CredentialRecord row, string? forceFingerprint, DateTimeOffset now) =>
        forceFingerprint is not null && string.Equals(row.AccessTokenFingerprint, forceFingerprint, StringComparison.Ordinal)
        && IsUsable(row, now) && (row.Metadata.RefreshAfter is null || now < row.Metadata.RefreshAfter);

    /// <summary>An access token is usable until <c>expires_at − min(30 s, 10 % of its lifetime)</c>.</summary>
    private static bool IsUsable(CredentialRecord row, DateTimeOffset now)
    {
        if (string.IsNullOrEmpty(row.Secrets.AccessToken))
        {
            return false;
        }

        if (row.Metadata.ExpiresAt is not { } expires)
        {
            return true;
        }

        var lifetime = row.Metadata.ObtainedAt is { } obtained ? expires - obtained : TimeSpan.FromMinutes(5);
        var margin = TimeSpan.FromTicks(Math.Min(TimeSpan.FromSeconds(30).Ticks, Math.Max(0, lifetime.Ticks / 10)));
        return now < expires - margin;
    }

    /// <summary>A lease is free when nobody holds it, it ran out, it is dated implausibly far ahead (a clock that ran
    /// ahead), or its holder is known dead (a crashed process, or a PID reused by a later one).</summary>
    private bool IsLeaseFree(RefreshCoordination c)
    {
        var now = time.GetUtcNow();
        return c.Lease.Owner is null
            || c.Lease.Until is null
            || c.Lease.Until <= now
            || c.Lease.Until > now + _options.LeaseDuration + TimeSpan.FromSeconds(5)
            || ProcessIdentity.IsKnownDead(c.Lease.Owner);
    }

    /// <summary>The refresh itself, under the lease: read the record again, deal with a marker an earlier attempt left,
    /// send, and settle the outcome. Returns null when the record changed and the caller should re-read.</summary>
    private async Task<TokenResult?> RefreshUnderLeaseAsync(string name, string? forceFingerprint, CancellationToken ct)
    {
        var row = await store.GetAsync(name, ct).ConfigureAwait(false);
        if (row is null)
        {
            return TokenResult.NotFound;
        }

        if (Decide(row, forceFingerprint) is { } decided)
        {
            return decided;
        }

        string? recoveryOf = null;
        if (row.Coordination.Attempt is { } earlier)
        {
            // An earlier request was sent and its answer never stored ("Lost-response recovery" in docs/failure-modes.md).
            var ownerMayBeAlive = earlier.Owner is not null && !ProcessIdentity.IsKnownDead(earlier.Owner)
                && earlier.SentAt is { } sent && time.GetUtcNow() < sent + _options.LeaseDuration;
            if (ownerMayBeAlive)
            {
                return TokenResult.Retryable(Reason("refresh_in_progress", $"A refresh of '{name}' sent by another process has not finished yet; the credential is unchanged.", "Try again shortly."));
            }

            if (earlier.RecoveryOf is not null || !_options.RetryLostResponseOnce)
            {
                return await MarkNeedsAuthAsync(row, LostResponse(name, "the deliberate retry was not possible"), ct).ConfigureAwait(false);
            }

            recoveryOf = earlier.Id;
        }

        return await SendAndSettleAsync(row, recoveryOf, IsForcedOnly(row, forceFingerprint, time.GetUtcNow()), ct).ConfigureAwait(false);
    }

    /// <param name="row">The record, read under the lease.</param>
    /// <param name="recoveryOf">The attempt whose answer was lost, when this is the deliberate retry.</param>
    /// <param name="forced">Whether the refresh happens only because an upstream refused a still-fresh token.</param>
    /// <param name="ct">Cancels the flight.</param>
    private async Task<TokenResult?> SendAndSettleAsync(CredentialRecord row, string? recoveryOf, bool forced, CancellationToken ct)
    {
        var name = row.Name;
        var fingerprint = row.RefreshTokenFingerprint;
        var attempt = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        if (!await store.MarkAttemptAsync(name, _owner, attempt, fingerprint, recoveryOf, ct).ConfigureAwait(false))
        {
            return null; // lease lost or token rotated meanwhile: re-read
        }

        var sentAt = time.GetUtcNow();
        TokenOutcome outcome;
        using (var span = LatchkeyTelemetry.Source.StartActivity("latchkey.token_engine.refresh"))
        using (var heartbeat = new CancellationTokenSource())
        {
            span?.SetTag("latchkey.credential", name);
            var beating = HeartbeatAsync(name, heartbeat.Token);
            try
            {
                outcome = await tokens.RequestAsync(new Uri(row.Metadata.TokenEndpoint!), ClientOf(row), RequestParameters(row), ct).ConfigureAwait(false);
            }
            finally
            {
                await heartbeat.CancelAsync().ConfigureAwait(false);
                await beating.ConfigureAwait(false);
            }

            var recorded = RefreshOutcome(outcome.Kind);
            LatchkeyTelemetry.Refreshes.Add(1, new KeyValuePair<string, object?>(LatchkeyTelemetry.OutcomeTag, recorded));
            span?.SetTag("latchkey.refresh.outcome", recorded);
        }

        // The server's words end up in reasons the agent, the log and status show: none may carry a secret of this credential.
        outcome = outcome.Masked(ServerText.SecretsOf(row.Secrets));

        switch (outcome.Kind)
        {
            case TokenOutcomeKind.Success:
                return await CommitAsync(row, outcome.Tokens!, sentAt, forced, ct).ConfigureAwait(false);

            case TokenOutcomeKind.Terminal:
                var reason = recoveryOf is not null && outcome.Error == "invalid_grant"
                    ? LostResponse(name, $"the server refused the retry ({outcome.Describe()})")
                    : Rejected(row, outcome);
                return await MarkNeedsAuthAsync(row, reason, ct).ConfigureAwait(false);

            case TokenOutcomeKind.Ambiguous when recoveryOf is not null:
                return await MarkNeedsAuthAsync(row, LostResponse(name, $"the retry's answer was lost too ({outcome.Describe()})"), ct).ConfigureAwait(false);

            case TokenOutcomeKind.Ambiguous when _options.RetryLostResponseOnce:
                // The answer was lost, and the server may have rotated the token: one deliberate retry, now.
                var again = await store.GetAsync(name, ct).ConfigureAwait(false);
                return again is null ? TokenResult.NotFound
                    : again.Coordination.Attempt?.Id == attempt ? await SendAndSettleAsync(again, attempt, forced, ct).ConfigureAwait(false)
                    : null;

            case TokenOutcomeKind.Ambiguous:
                return await MarkNeedsAuthAsync(row, LostResponse(name, $"retrying is switched off ({outcome.Describe()})"), ct).ConfigureAwait(false);

            default:
                return await RecordTransientAsync(row, outcome, ct).ConfigureAwait(false);
        }
    }

    /// <summary>A token request's outcome as <see cref="LatchkeyTelemetry.Refreshes"/> records it.</summary>
    private static string RefreshOutcome(TokenOutcomeKind kind) => kind switch
    {
        TokenOutcomeKind.Success => "success",
        TokenOutcomeKind.Terminal => "rejected",
        TokenOutcomeKind.Ambiguous => "lost_response",
        TokenOutcomeKind.NotSent => "not_sent",
        _ => "failed",
    };

    private async Task<TokenResult?> CommitAsync(CredentialRecord row, TokenSet tokenSet, DateTimeOffset sentAt, bool forced, CancellationToken ct)
    {
        var lifetime = LifetimeOf(tokenSet, sentAt, _options.DefaultLifetime);
        var expiresAt = sentAt + lifetime;
        var refreshAfter = RefreshAfter(sentAt, lifetime);
        var bearer = string.Equals(tokenSet.TokenType, "Bearer", StringComparison.OrdinalIgnoreCase);
        var tokenType = bearer ? tokenSet.TokenType : ServerText.Quote(tokenSet.TokenType, [tokenSet.AccessToken, tokenSet.RefreshToken, tokenSet.IdToken, .. ServerText.SecretsOf(row.Secrets)], ServerText.MaxCodeLength);
        var patch = new CredentialPatch
        {
            AccessToken = tokenSet.AccessToken,
            RefreshToken = tokenSet.RefreshToken,
            IdToken = tokenSet.IdToken,
            ScopesGranted = tokenSet.Scope?.Split(' ', StringSplitOptions.RemoveEmptyEntries),
            Metadata = m => m with
            {
                ExpiresAt = expiresAt,
                RefreshAfter = refreshAfter,
                ObtainedAt = sentAt,
                LastForcedRefreshAt = forced ? sentAt : m.LastForcedRefreshAt,
            },
            State = bearer ? CredentialState.Ok : CredentialState.NeedsAuth,
            Reason = bearer ? null : Reason("unsupported_token_type", $"The server issued a '{tokenType}' token for '{row.Name}'; Latchkey sends Bearer tokens only.", $"latchkey login {row.Name}"),
            CompletesRefreshOf = _owner,
        };

        var condition = row.Metadata.GrantType == "client_credentials" ? WriteCondition.Version(row.Version) : WriteCondition.RefreshToken(row.RefreshTokenFingerprint);
        for (var attempt = 0; ; attempt++)
        {
            WriteResult written;
            try
            {
                written = await store.UpdateAsync(row.Name, patch, condition, CancellationToken.None).ConfigureAwait(false);
            }
            catch (StoreException ex) when (ex.Retryable && attempt < 5)
            {
                // The tokens are only in memory, and the server may already have consumed the old refresh token: keep
                // trying under the lease. A death here leaves the marker for the next refresher.
                await Task.Delay(TimeSpan.FromMilliseconds(200 * (attempt + 1)), time, CancellationToken.None).ConfigureAwait(false);
                continue;
            }

            var now = time.GetUtcNow();
            return written.Outcome switch
            {
                // The refresh took longer than the token lives (a cold process, a stalled machine, a slow answer):
                // it is stored, but handing it out would only earn a 401 for a token that never had a chance.
                WriteOutcome.Written when bearer && written.Record is { } stored && !IsUsable(stored, now) => TokenResult.Retryable(Reason(ExpiredBeforeUse,
                    $"The access token of '{row.Name}' lives {lifetime.TotalSeconds:0.#} s, and refreshing it took {(now - sentAt).TotalSeconds:0.#} s on this machine, so every new token expired before it could be used.",
                    "Try again when the machine is less busy, or ask the server's operator for longer-lived access tokens.")),
                WriteOutcome.Written when bearer => TokenResult.Ok(tokenSet.AccessToken, expiresAt),
                WriteOutcome.Written => TokenResult.NeedsAuth(patch.Reason),
                WriteOutcome.NotFound => TokenResult.NotFound,
                _ => null, // cas_conflict: somebody rotated since we read; adopt what is stored
            };
        }
    }

    private async Task<TokenResult?> MarkNeedsAuthAsync(CredentialRecord row, StateReason reason, CancellationToken ct)
    {
        var condition = row.Metadata.GrantType == "client_credentials" ? WriteCondition.Version(row.Version) : WriteCondition.RefreshToken(row.RefreshTokenFingerprint);
        var written = await store.UpdateAsync(row.Name, new CredentialPatch { State = CredentialState.NeedsAuth, Reason = reason, CompletesRefreshOf = _owner }, condition, ct).ConfigureAwait(false);
        return written.Outcome switch
        {
            WriteOutcome.Written => TokenResult.NeedsAuth(reason),
            WriteOutcome.NotFound => TokenResult.NotFound,
            _ => null, // a winner rotated meanwhile: its token stands, and we adopt it
        };
    }

    private async Task<TokenResult?> RecordTransientAsync(CredentialRecord row, TokenOutcome outcome, CancellationToken ct)
    {
        var failures = row.Coordination.Failures + 1;
        if (outcome.Error is not (null or "temporarily_unavailable" or "server_error" or "network_error") && outcome.Status is >= 400 and < 500 and not 429 && failures >= 3)
        {
            return await MarkNeedsAuthAsync(row, Reason("unexpected_response",
                $"The token endpoint of '{row.Name}' answered {outcome.Describe()} three times in a row.", $"latchkey login {row.Name}", outcome.RequestId), ct).ConfigureAwait(false);
        }

        var backoff = outcome.RetryAfter is { } retryAfter && retryAfter > TimeSpan.Zero
            ? TimeSpan.FromTicks(Math.Min(retryAfter.Ticks, TimeSpan.FromMinutes(15).Ticks))
            : TimeSpan.FromTicks((long)(Math.Min(TimeSpan.FromMinutes(5).Ticks, TimeSpan.FromSeconds(1).Ticks * Math.Pow(2, Math.Min(failures - 1, 20))) * (0.8 + (Random.Shared.NextDouble() * 0.4))));
        var reason = Reason(outcome.Kind == TokenOutcomeKind.NotSent ? "network_error" : "refresh_failed",
            $"Refreshing '{row.Name}' failed ({outcome.Describe()}); the credential is kept and the refresh is retried after {backoff.TotalSeconds:0} s.", "Nothing to do; it retries by itself.", outcome.RequestId);
        await store.RecordRefreshFailureAsync(row.Name, _owner, reason, time.GetUtcNow() + backoff, clearAttempt: true, ct).ConfigureAwait(false);
        return IsUsable(row, time.GetUtcNow()) ? Served(row) : TokenResult.Retryable(reason);
    }

    private async Task HeartbeatAsync(string name, CancellationToken stop)
    {
        try
        {
            while (true)
            {
                await Task.Delay(_options.LeaseDuration / 3, time, stop).ConfigureAwait(false);
                await store.RenewLeaseAsync(name, _owner, _options.LeaseDuration, stop).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static ClientAuth ClientOf(CredentialRecord row) =>
        new(row.Metadata.Client!.ClientId, row.Metadata.Client.AuthMethod, row.Secrets.ClientSecret);

    private static List<KeyValuePair<string, string>> RequestParameters(CredentialRecord row)
    {
        var m = row.Metadata;
        var parameters = new List<KeyValuePair<string, string>>();
        if (m.GrantType == "client_credentials")
        {
            parameters.Add(new("grant_type", "client_credentials"));
            if (m.ScopesRequested.Count > 0)
            {
                parameters.Add(new("scope", string.Join(' ', m.ScopesRequested)));
            }
        }
        else
        {
            parameters.Add(new("grant_type", "refresh_token"));
            parameters.Add(new("refresh_token", row.Secrets.RefreshToken!));
        }

        if (m.Resource is not null && !m.Quirks.Contains("omit_resource") && !(m.GrantType != "client_credentials" && m.Quirks.Contains("refresh_without_resource")))
        {
            parameters.Add(new("resource", m.Resource));
        }

        return parameters;
    }

    /// <summary>When to refresh a token obtained at <paramref name="sentAt"/> that lives <paramref name="lifetime"/>:
    /// at 75 to 85 % of its life, spread at random so that many grants issued together are not refreshed together.</summary>
    internal static DateTimeOffset RefreshAfter(DateTimeOffset sentAt, TimeSpan lifetime) =>
        sentAt + TimeSpan.FromTicks((long)(lifetime.Ticks * (0.75 + (Random.Shared.NextDouble() * 0.10))));

    /// <summary>
    /// How long a token set lives, counted from <paramref name="sentAt"/> (when its request was sent):
    /// <c>expires_in</c> when sane, but never past the JWT's own <c>exp</c>. A JWT's <c>exp</c> is in whole seconds
    /// from an <c>iat</c> rounded down, so it can fall up to a second before <c>sentAt + expires_in</c>; with short
    /// lifetimes, trusting <c>expires_in</c> alone hands out tokens the resource server already refuses.
    /// Without <c>expires_in</c>: the JWT's <c>exp</c>, else <paramref name="fallback"/>.
    /// </summary>
    internal static TimeSpan LifetimeOf(TokenSet tokenSet, DateTimeOffset sentAt, TimeSpan fallback)
    {
        var jwtLeft = JwtExpiry(tokenSet.AccessToken) is { } exp && exp > sentAt ? exp - sentAt : (TimeSpan?)null;
        if (tokenSet.ExpiresIn is > 0 and <= 366L * 24 * 3600)
        {
            var declared = TimeSpan.FromSeconds(tokenSet.ExpiresIn.Value);
            return jwtLeft is { } left && left < declared ? left : declared;
        }

        return jwtLeft ?? fallback;
    }

    /// <summary>Reads <c>exp</c> from a JWT's payload, for scheduling only (the signature is the resource server's business).</summary>
    internal static DateTimeOffset? JwtExpiry(string token)
    {
        using var json = JwtPayload.TryParse(token);
        try
        {
            return json?.RootElement.Long("exp") is { } exp ? DateTimeOffset.FromUnixTimeSeconds(exp) : null;
        }
        catch (ArgumentException)
        {
            return null; // an exp outside the range of dates
        }
    }

    private StateReason Reason(string code, string message, string? fix, string? requestId = null) =>
        new(code, requestId is null ? message : $"{message} (request id {requestId})", fix, time.GetUtcNow());

    private StateReason Rejected(CredentialRecord row, TokenOutcome outcome)
    {
        var name = row.Name;
        return outcome.Error switch
        {
            "invalid_grant" => Reason("invalid_grant", $"The authorization server refused the refresh token of '{name}' ({outcome.Describe()}): the grant was revoked, expired, or its refresh token was already used.", $"latchkey login {name}", outcome.RequestId),
            "invalid_client" or "unauthorized_client" => Reason("client_rejected", $"The authorization server rejected the client registration '{row.Metadata.Client?.ClientId}' of '{name}' ({outcome.Describe()}).", $"latchkey login {name}", outcome.RequestId),
            "invalid_scope" => Reason("invalid_scope", $"The authorization server refused the scopes of '{name}' ({string.Join(' ', row.Metadata.ScopesRequested)}): {outcome.Describe()}.", $"latchkey login {name} --scope SCOPES", outcome.RequestId),
            "invalid_target" => Reason("invalid_target", $"The authorization server refused the resource '{row.Metadata.Resource}' of '{name}' ({outcome.Describe()}).", $"latchkey login {name}", outcome.RequestId),
            _ => Reason(outcome.Error ?? "rejected", $"The authorization server refused to refresh '{name}' ({outcome.Describe()}).", $"latchkey login {name}", outcome.RequestId),
        };
    }

    private StateReason LostResponse(string name, string detail) =>
        Reason("lost_response_rotation", $"A refresh of '{name}' was sent but its answer was lost, so the server may have rotated the refresh token; {detail}.", $"latchkey login {name}");
}
