using System.Globalization;
using Latchkey.Audit;
using Latchkey.Store;
using Latchkey.Tokens;
using Latchkey.Usage;

namespace Latchkey.Dashboard;

/// <summary>
/// The dashboard's pages, rendered on the server with <see cref="Html"/> (every hole HTML-encoded). Nothing here is
/// given secret material: pages are built from metadata, states, reasons and client-key records only.
/// </summary>
internal static class DashboardPages
{
    /// <summary>The sign-in page, and where a browser without a session is sent.</summary>
    public const string Root = "/ui/";

    /// <summary>The page around every view: navigation, the outcome of the last action, the live-status marker.
    /// Every link and form of a signed-in page is under the session's tagged path (<see cref="DashboardSession.Base"/>);
    /// <paramref name="current"/> is the page's own path.</summary>
    public static HtmlContent Layout(string title, string current, DashboardSession? session, string? fingerprint, bool hasAudit, Flash? flash, HtmlContent body)
    {
        var b = session?.Base;
        var nav = session is null ? HtmlContent.Empty : Html.Of($"""
            <nav aria-label="Sections"><ul>
            {NavItem(b!, "Credentials", current)}{NavItem(b + "mcp", "MCP servers", current)}{NavItem(b + "keys", "Client keys", current)}{(hasAudit ? NavItem(b + "audit", "Audit log", current) : HtmlContent.Empty)}{NavItem(b + "usage", "Usage", current)}
            </ul>
            <form method="post" action="{b}signout" class="inline">{Csrf(session)}<button type="submit" class="link">Sign out</button></form>
            </nav>
            """);
        return Html.Of($"""
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="referrer" content="same-origin">
            <title>{title} · Latchkey</title>
            <link rel="stylesheet" href="/ui/style.css">
            <script src="/ui/app.js" defer></script>
            </head>
            <body{(fingerprint is null || session is null ? HtmlContent.Empty : Html.Of($" data-fingerprint=\"{fingerprint}\" data-events=\"{session.Base}events\""))}>
            <header><p class="brand">Latchkey</p>{nav}</header>
            <main>
            <h1>{title}</h1>
            {FlashBox(flash)}
            {body}
            </main>
            <footer><p id="live" role="status" aria-live="polite">{(session is null ? string.Empty : "Live: this page reloads when a credential or key changes.")}</p></footer>
            </body>
            </html>
            """);
    }

    public static HtmlContent SignIn(string? problem) => Html.Of($"""
        <form id="signin" method="post" action="/ui/session">
        <input type="hidden" name="token" value="">
        <p id="signin-status">{problem ?? "To sign in, run latchkey dashboard in a terminal: it opens this page with a one-time sign-in link."}</p>
        <noscript><p>The one-time link is read by a small script on this page; turn on JavaScript for 127.0.0.1, or run latchkey dashboard again.</p></noscript>
        </form>
        """);

    public static HtmlContent Message(string text, string back = Root) => Html.Of($"<p>{text}</p><p><a href=\"{back}\">Back to the dashboard</a></p>");

    public static HtmlContent Credentials(IReadOnlyList<CredentialRecord> records, IReadOnlyDictionary<string, IReadOnlyList<CredentialVersion>> history, DashboardSession session, DateTimeOffset now)
    {
        if (records.Count == 0)
        {
            return Html.Of($"<p>No credentials yet. Add one with <code>latchkey add NAME --upstream URL</code> or sign in with <code>latchkey login NAME --resource URL</code>.</p>");
        }

        var broken = records.Count(r => CredentialStatusView.Derive(r, now).NeedsAttention);
        var summary = Html.Of($"<p class=\"summary\">{records.Count} credential{(records.Count == 1 ? string.Empty : "s")}{(broken == 0 ? ", all working." : $", {broken} need{(broken == 1 ? "s" : string.Empty)} attention.")}</p>");
        return Html.Join([summary, Html.Join(records, r => Credential(r, history.GetValueOrDefault(r.Name) ?? [], session, now))]);
    }

    public static HtmlContent Mcp(IReadOnlyList<CredentialRecord> records, DashboardSession session, DateTimeOffset now)
    {
        var oauth = records.Where(r => r.Kind != CredentialKind.ApiKey).ToList();
        if (oauth.Count == 0)
        {
            return Html.Of($"<p>No MCP servers or other OAuth credentials yet. Sign in to one with <code>latchkey login NAME --resource URL</code>.</p>");
        }

        return Html.Of($"""
            <p>MCP servers and the other OAuth grants the gateway keeps fresh. Reconnect or remove them on the <a href="{session.Base}">Credentials</a> page.</p>
            <div class="scroll"><table>
            <caption>OAuth credentials</caption>
            <thead><tr><th scope="col">Name</th><th scope="col">State</th><th scope="col">Resource</th><th scope="col">Authorization server</th><th scope="col">Scopes granted</th><th scope="col">Expires</th></tr></thead>
            <tbody>{Html.Join(oauth, r => McpRow(r, session, now))}</tbody>
            </table></div>
            """);
    }

    public static HtmlContent Keys(IReadOnlyList<ClientKey> keys, IReadOnlyList<CredentialRecord> records, DashboardSession session, Flash? created, DateTimeOffset now)
    {
        var shown = created?.NewKey is { } value ? Html.Of($"""
            <section class="newkey" data-hold="1" aria-labelledby="newkey-title">
            <h2 id="newkey-title">New key '{created.NewKeyName}'</h2>
            <p>Copy it now and give it to the agent as its API key. <strong>This is the only time it is shown</strong>: Latchkey keeps only a fingerprint of it.</p>
            <label for="newkey-value">Client key</label>
            <input id="newkey-value" readonly value="{value}" autocomplete="off" spellcheck="false">
            </section>
            """) : HtmlContent.Empty;
        var rows = keys.Count == 0
            ? Html.Of($"<p>No client keys yet.</p>")
            : Html.Of($"""
                <div class="scroll"><table>
                <caption>Client keys</caption>
                <thead><tr><th scope="col">Name</th><th scope="col">State</th><th scope="col">May use</th><th scope="col">Limits</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col">Last used</th><th scope="col"><span class="sr">Actions</span></th></tr></thead>
                <tbody>{Html.Join(keys, k => KeyRow(k, session, now))}</tbody>
                </table></div>
                """);
        var names = string.Join(", ", records.Select(r => r.Name));
        return Html.Of($"""
            {shown}
            <p>Agents hold a client key instead of a real credential; the gateway adds the real one. A revoked key is refused within a second.</p>
            {rows}
            <section aria-labelledby="create-title">
            <h2 id="create-title">Create a key</h2>
            <form method="post" action="{session.Base}keys" class="stack">
            {Csrf(session)}
            <label for="key-name">Name (who or what holds it)</label>
            <input id="key-name" name="name" required maxlength="64" pattern="[A-Za-z0-9][A-Za-z0-9._-]*" placeholder="laptop-claude">
            <label for="key-credentials">Credentials it may use (comma-separated; * for all)</label>
            <input id="key-credentials" name="credentials" required value="*" aria-describedby="key-credentials-hint">
            <p id="key-credentials-hint" class="hint">{(names.Length == 0 ? "No credentials yet." : "Known: " + names)}</p>
            <label for="key-expires">Expires after (optional: 90s, 30m, 12h, 7d)</label>
            <input id="key-expires" name="expires" placeholder="until revoked">
            <button type="submit">Create key</button>
            </form>
            </section>
            """);
    }

    /// <summary>The audit page: one row per gateway request, newest first — who asked (the client key's name), what,
    /// on which credential, how it ended, and the upstream's status, latency, route and replica.</summary>
    public static HtmlContent Audit(IReadOnlyList<AuditEntry> newestFirst) => newestFirst.Count == 0
        ? Html.Of($"<p>The audit log is empty.</p>")
        : Html.Of($"""
            <div class="scroll"><table>
            <caption>Newest first</caption>
            <thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">What</th><th scope="col">Credential</th><th scope="col">Outcome</th><th scope="col">Detail</th></tr></thead>
            <tbody>{Html.Join(newestFirst, AuditRow)}</tbody>
            </table></div>
            """);

    /// <summary>The periods the usage page offers, in days.</summary>
    public static readonly int[] UsagePeriods = [7, 14, 30, 90];

    /// <summary>
    /// The usage page: the tokens the providers counted over the last <paramref name="period"/> UTC days (ending
    /// <paramref name="today"/>), per client key and per model, each as a chart drawn on the server
    /// (<see cref="UsageChart"/>) and as a table of totals.
    /// </summary>
    public static HtmlContent Usage(IReadOnlyList<UsageCount> rows, int period, DateOnly today, string usagePath)
    {
        var days = Enumerable.Range(0, period).Select(i => today.AddDays(i - period + 1)).ToList();
        var periods = Html.Join(UsagePeriods.Select(p => p == period
            ? Html.Of($"<li><a href=\"{usagePath}?days={p}\" aria-current=\"page\">{p} days</a></li>")
            : Html.Of($"<li><a href=\"{usagePath}?days={p}\">{p} days</a></li>")));
        var total = UsageGroups.Total(rows, days[0]);
        return Html.Of($"""
            <p class="summary">Tokens the providers counted in the gateway's answers, per UTC day, from {UsageCount.DayText(days[0])} to {UsageCount.DayText(today)}:
            <strong id="usage-total">{total.Tokens.ToString("N0", CultureInfo.InvariantCulture)}</strong> tokens in {total.Requests.ToString("N0", CultureInfo.InvariantCulture)} answers.</p>
            <nav aria-label="Period"><ul class="periods">{periods}</ul></nav>
            {UsageSection("usage-keys", "Per client key", "key", rows, UsageGrouping.Key, days)}
            {UsageSection("usage-models", "Per model", "model", rows, UsageGrouping.Model, days)}
            """);
    }

    private static HtmlContent UsageSection(string id, string heading, string what, IReadOnlyList<UsageCount> rows, UsageGrouping by, List<DateOnly> days)
    {
        if (rows.Count == 0)
        {
            return Html.Of($"""<section aria-labelledby="{id}-h"><h2 id="{id}-h">{heading}</h2><p>No usage in this period. The gateway counts the tokens of every answer on /c/ and /r/ routes that reports them.</p></section>""");
        }

        var index = days.Select((d, i) => (d, i)).ToDictionary(p => p.d, p => p.i);
        var series = UsageGroups.PerDay(rows, by)
            .GroupBy(g => UsageGroups.NameOf(g, by), StringComparer.Ordinal)
            .Select(g =>
            {
                var perDay = new long[days.Count];
                foreach (var c in g)
                {
                    if (index.TryGetValue(c.Day, out var d))
                    {
                        perDay[d] = c.Tokens;
                    }
                }

                return new UsageChart.Series(UsageLabel(g.Key, by), perDay);
            })
            .ToList();
        var totals = UsageGroups.Totals(rows, by, days[0]);
        return Html.Of($"""
            <section aria-labelledby="{id}-h">
            <h2 id="{id}-h">{heading}</h2>
            {UsageChart.StackedBars(id + "-chart", $"Tokens per day and {what}", days, series)}
            <div class="scroll"><table id="{id}-table">
            <caption>Totals for the period, most tokens first</caption>
            <thead><tr><th scope="col">{(by == UsageGrouping.Key ? "Client key" : "Model")}</th><th scope="col">Answers</th><th scope="col">Input</th><th scope="col">Output</th><th scope="col">Cache write</th><th scope="col">Cache read</th><th scope="col">Total</th></tr></thead>
            <tbody>{Html.Join(totals, t => Html.Of($"<tr><th scope=\"row\">{UsageLabel(UsageGroups.NameOf(t, by), by)}</th><td>{N(t.Requests)}</td><td>{N(t.InputTokens)}</td><td>{N(t.OutputTokens)}</td><td>{N(t.CacheCreationTokens)}</td><td>{N(t.CacheReadTokens)}</td><td>{N(t.Tokens)}</td></tr>"))}</tbody>
            </table></div>
            </section>
            """);
    }

    private static string UsageLabel(string name, UsageGrouping by) => name.Length > 0 ? name : by == UsageGrouping.Key ? "(no key: Unix socket)" : "(model not named)";

    private static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    /// <summary>The state as a person reads it.</summary>
    public static string StateWords(CredentialStatus status) => status switch
    {
        CredentialStatus.Ok => "working",
        CredentialStatus.Expiring => "working, refresh due",
        CredentialStatus.NeedsAuth => "needs sign-in",
        CredentialStatus.Quarantined => "quarantined: unreadable",
        _ => CredentialStatusView.TextOf(status),
    };

    private static HtmlContent AuditRow(AuditEntry e)
    {
        var who = e.ClientKey ?? "(no valid key)";
        var outcome = e.Reason is null ? e.Status.ToString(CultureInfo.InvariantCulture) : $"{e.Status} {e.Reason}";
        var upstream = e.UpstreamStatus is { } status ? "upstream " + status.ToString(CultureInfo.InvariantCulture) : "no upstream answer";
        var detail = $"{upstream}, {e.LatencyMs.ToString(CultureInfo.InvariantCulture)} ms, {e.Route}, {e.Replica}";
        return Html.Of($"<tr><td>{Html.Time(e.At)}</td><td>{who}</td><td>{e.Method} {e.Path}</td><td>{e.Credential ?? "-"}</td><td>{outcome}</td><td>{detail}</td></tr>");
    }

    private static HtmlContent Credential(CredentialRecord r, IReadOnlyList<CredentialVersion> history, DashboardSession session, DateTimeOffset now)
    {
        var (status, reason) = CredentialStatusView.Derive(r, now);
        var state = CredentialStatusView.TextOf(status);
        var m = r.Metadata;
        var id = "cred-" + r.Name;
        var reasonBox = reason is null ? HtmlContent.Empty : Html.Of($"""
            <div class="reason" role="note">
            <p><strong>Why:</strong> <span class="reason-message">{reason.Message}</span> <span class="code">({reason.Code}, {Html.Time(reason.At)})</span></p>
            {(reason.Fix is null ? HtmlContent.Empty : Html.Of($"<p><strong>What to do:</strong> {(r.Kind == CredentialKind.OAuth && status == CredentialStatus.NeedsAuth ? "press Reconnect below, or run " : "run ")}<code>{reason.Fix}</code></p>"))}
            </div>
            """);
        var lastError = r.Coordination.LastError is { } e ? Html.Of($"<dt>Last refresh error</dt><dd>{e.Message} <span class=\"code\">({e.Code}, {Html.Time(e.At)})</span></dd>") : HtmlContent.Empty;
        var upstreamFailure = r.LastUpstreamFailure is { } u ? Html.Of($"""
            <dt>Last upstream failure</dt>
            <dd class="upstream-failure">{u.Message} <span class="code">(HTTP {u.Status}, {u.Code}, {Html.Time(u.At)})</span>{(u.RequestId is null ? HtmlContent.Empty : Html.Of($"<br>Request id: <code class=\"request-id\">{u.RequestId}</code>"))}{(u.Fix is null ? HtmlContent.Empty : Html.Of($"<br>What to do: {u.Fix}"))}</dd>
            """) : HtmlContent.Empty;
        var reconnect = r.Kind == CredentialKind.OAuth && r.State != CredentialState.Quarantined && m.GrantType == "authorization_code"
            ? Html.Of($"<form method=\"post\" action=\"{session.Base}credentials/{Uri.EscapeDataString(r.Name)}/reconnect\" class=\"inline\">{Csrf(session)}<button type=\"submit\" aria-label=\"Reconnect {r.Name}\">Reconnect</button></form>")
            : HtmlContent.Empty;
        var remove = Html.Of($"""
            <details class="inline danger"><summary>Remove…</summary>
            <form method="post" action="{session.Base}credentials/{Uri.EscapeDataString(r.Name)}/remove">{Csrf(session)}
            <p>Removes '{r.Name}' and its saved versions{(r.Kind == CredentialKind.OAuth ? ", after revoking its grant at the authorization server" : string.Empty)}. Agents using it start failing.</p>
            <button type="submit" class="danger" aria-label="Remove {r.Name} for good">Remove for good</button></form>
            </details>
            """);
        return Html.Of($"""
            <section class="card state-{state}" id="{id}" aria-labelledby="{id}-title">
            <h2 id="{id}-title">{r.Name} <span class="badge" data-state="{state}">{StateWords(status)}</span></h2>
            {reasonBox}
            <dl>
            <dt>Kind</dt><dd>{(r.Kind == CredentialKind.OAuth ? "OAuth grant" : "API key")}</dd>
            <dt>Upstream</dt><dd>{m.Upstream ?? "-"}</dd>
            {(m.Issuer is null ? HtmlContent.Empty : Html.Of($"<dt>Authorization server</dt><dd>{m.Issuer}</dd>"))}
            {(m.Resource is null ? HtmlContent.Empty : Html.Of($"<dt>Resource</dt><dd>{m.Resource}</dd>"))}
            <dt>Expires</dt><dd>{(m.ExpiresAt is null ? Html.Of($"no known end") : Html.Time(m.ExpiresAt))}</dd>
            {(r.Kind == CredentialKind.OAuth ? Html.Of($"<dt>Scopes requested</dt><dd>{Scopes(m.ScopesRequested)}</dd><dt>Scopes granted</dt><dd>{Scopes(m.ScopesGranted)}</dd>") : HtmlContent.Empty)}
            {lastError}
            {upstreamFailure}
            <dt>Version</dt><dd>{r.Version}, changed {Html.Time(r.UpdatedAt)}</dd>
            </dl>
            <div class="actions">{reconnect}{remove}</div>
            {History(r, history, session)}
            </section>
            """);
    }

    private static HtmlContent History(CredentialRecord r, IReadOnlyList<CredentialVersion> history, DashboardSession session) => history.Count == 0
        ? Html.Of($"<p class=\"muted\">No earlier versions.</p>")
        : Html.Of($"""
            <details class="history"><summary>Version history ({history.Count} earlier version{(history.Count == 1 ? string.Empty : "s")})</summary>
            <div class="scroll"><table>
            <caption>Earlier versions of {r.Name}; restoring one makes it current again as a new version</caption>
            <thead><tr><th scope="col">Version</th><th scope="col">State</th><th scope="col">Written</th><th scope="col"><span class="sr">Restore</span></th></tr></thead>
            <tbody>{Html.Join(history, v => Html.Of($"""
                <tr><td>{v.Version}</td><td>{StateWords(CredentialStatusView.Of(v.State))}</td><td>{Html.Time(v.WrittenAt)}</td><td>{(v.Readable
                    ? Html.Of($"<form method=\"post\" action=\"{session.Base}credentials/{Uri.EscapeDataString(r.Name)}/restore\" class=\"inline\">{Csrf(session)}<input type=\"hidden\" name=\"version\" value=\"{v.Version}\"><input type=\"hidden\" name=\"current\" value=\"{r.Version}\"><button type=\"submit\" aria-label=\"Restore version {v.Version} of {r.Name}\">Restore</button></form>")
                    : Html.Of($"<span class=\"muted\">unreadable</span>"))}</td></tr>
                """))}</tbody>
            </table></div>
            </details>
            """);

    private static HtmlContent McpRow(CredentialRecord r, DashboardSession session, DateTimeOffset now)
    {
        var (status, reason) = CredentialStatusView.Derive(r, now);
        return Html.Of($"<tr><th scope=\"row\"><a href=\"{session.Base}#cred-{r.Name}\">{r.Name}</a></th><td><span class=\"badge\" data-state=\"{CredentialStatusView.TextOf(status)}\">{StateWords(status)}</span>{(reason is null ? HtmlContent.Empty : Html.Of($"<br><span class=\"reason-message\">{reason.Message}</span>"))}</td><td>{r.Metadata.Resource ?? r.Metadata.Upstream ?? "-"}</td><td>{r.Metadata.Issuer ?? "-"}</td><td>{Scopes(r.Metadata.ScopesGranted)}</td><td>{Html.Time(r.Metadata.ExpiresAt)}</td></tr>");
    }

    private static HtmlContent KeyRow(ClientKey k, DashboardSession session, DateTimeOffset now)
    {
        var state = k.StateAt(now);
        var revoke = state == "active"
            ? Html.Of($"<form method=\"post\" action=\"{session.Base}keys/{Uri.EscapeDataString(k.Name)}/revoke\" class=\"inline\">{Csrf(session)}<button type=\"submit\" class=\"danger\" aria-label=\"Revoke key {k.Name}\">Revoke</button></form>")
            : HtmlContent.Empty;
        return Html.Of($"<tr id=\"key-{k.Name}\"><th scope=\"row\">{k.Name}</th><td><span class=\"badge\" data-state=\"{(state == "active" ? "ok" : "needs-auth")}\">{state}</span></td><td>{string.Join(", ", k.Credentials)}</td><td>{ClientKeyLimits.Describe(k.Limits)}</td><td>{Html.Time(k.CreatedAt)}</td><td>{(k.ExpiresAt is null ? Html.Of($"until revoked") : Html.Time(k.ExpiresAt))}</td><td>{Html.Time(k.LastUsedAt)}</td><td>{revoke}</td></tr>");
    }

    private static HtmlContent Scopes(IReadOnlyList<string> scopes) => scopes.Count == 0
        ? Html.Of($"<span class=\"muted\">none named</span>")
        : Html.Join(scopes, s => Html.Of($"<code class=\"scope\">{s}</code> "));

    private static HtmlContent NavItem(string href, string text, string current) =>
        Html.Of($"<li><a href=\"{href}\"{(href == current ? Html.Of($" aria-current=\"page\"") : HtmlContent.Empty)}>{text}</a></li>");

    private static HtmlContent Csrf(DashboardSession session) => Html.Of($"<input type=\"hidden\" name=\"_csrf\" value=\"{session.Antiforgery}\">");

    private static HtmlContent FlashBox(Flash? flash) => flash is null
        ? HtmlContent.Empty
        : Html.Of($"<div class=\"flash {(flash.Ok ? "ok" : "error")}\" role=\"{(flash.Ok ? "status" : "alert")}\" id=\"outcome\"><p>{flash.Message}</p></div>");
}
