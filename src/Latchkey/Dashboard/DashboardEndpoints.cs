using System.Net;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using Latchkey.Audit;
using Latchkey.Gateway;
using Latchkey.OAuth;
using Latchkey.Store;
using Latchkey.Text;
using Latchkey.Tokens;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Latchkey.Dashboard;

/// <summary>
/// The dashboard at <c>/ui</c>: server-rendered pages over the gateway's store, for people (scripts use the CLI).
/// </summary>
/// <remarks>
/// <para><b>Who may use it.</b> Only loopback peers (and the owner's Unix socket), and only with a <c>Host</c> that
/// names the loopback interface (no DNS rebinding). Everyone else gets 403: the team option, with explicit admin
/// credentials for a gateway shared over the network, is future work (docs/dashboard.md).</para>
/// <para><b>Signing in.</b> <c>latchkey dashboard</c> mints a one-time token (<see cref="SignInLinks"/>); the page
/// posts it to <c>/ui/session</c>, which starts a session with a random path tag and sends the browser to
/// <c>/ui/s/TAG/</c>, setting an <c>HttpOnly; SameSite=Strict; Path=/ui/s/TAG</c> session cookie.</para>
/// <para><b>Other ports.</b> Browsers send a cookie to every port of its host, so a cookie alone would reach any
/// server another local user runs on 127.0.0.1 and could be replayed from any process (Host, Origin and the
/// Sec-Fetch headers are easy to forge outside a browser). Every signed-in page therefore lives under the session's
/// tag as well: the cookie's path keeps the browser from sending it anywhere else, and the gateway opens a page only
/// when cookie and tag belong to the same session (compared in constant time). A cookie under any other path gets
/// the sign-in page, never a redirect to its tagged path. Pages send a referrer only to their own origin (port
/// included), so the tag never reaches another port either.</para>
/// <para><b>Spelling.</b> Routing ignores case; so does the guard: every request routed to a dashboard endpoint, and
/// every path under <c>/ui</c> in any case, gets the loopback, Host and Origin checks and the security headers.</para>
/// <para><b>Forgery.</b> Every state-changing request needs the session and its synchronizer token (form field
/// <c>_csrf</c>, compared in constant time), and a same-origin <c>Origin</c> when the browser sends one.</para>
/// <para><b>Secrets.</b> Pages are built from metadata only; the one secret a page ever shows is a client key, once,
/// right after it is created. Responses are <c>no-store</c>; nothing secret reaches a URL or a log line.</para>
/// </remarks>
internal sealed partial class DashboardEndpoints(
    ILatchkeyStore store, StoreHome home, TokenEngine engine, Reconnects reconnects, TimeProvider time, ILoggerFactory logs, IHostApplicationLifetime lifetime, IAuditLog? audit = null)
    : IDisposable
{
    /// <summary>The dashboard's log lines' category (<see cref="Reconnects"/> writes under it too).</summary>
    public const string LogCategory = "Latchkey.Dashboard";
    /// <summary>The event <see cref="FingerprintEventsAsync"/> sends when nothing changed for a while.</summary>
    private static readonly SseItem<string> KeepAlive = new(string.Empty, "keepalive");

    private const int MaxFormBytes = 16 * 1024;
    private readonly ILatchkeyStore _store = store;
    private readonly TimeProvider _time = time;
    private readonly DashboardSessions _sessions = new(time);
    private readonly IAuditLog? _audit = audit;
    private readonly ILogger _logger = logs.CreateLogger(LogCategory);

    /// <summary>Refusals are caused by whoever reaches the port or a page in the browser, so their lines are written
    /// under the same kind of budget as the gateway's (<see cref="RefusedRequestLog"/>), never one per request.</summary>
    private readonly RefusedRequestLog _refusedLog = new(logs.CreateLogger(LogCategory), time);
    private readonly CancellationToken _stopping = lifetime.ApplicationStopping;

    /// <summary>Stops the refused-line budget's summary timer.</summary>
    public void Dispose() => _refusedLog.Dispose();

    /// <summary>Maps every <c>/ui</c> route onto <paramref name="app"/>.</summary>
    public void Map(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var ui = this;
        // Every other route passes straight through (no state machine on the gateway's hot path). The guard runs
        // after routing, so it sees what routing decided: a request routed to a dashboard endpoint is guarded however
        // its path is spelled, and so is every path under /ui in any case (a 404 there carries the headers too).
        app.Use((context, next) => !IsDashboard(context) ? next(context)
            : ui.Guard(context) is { } refusal ? refusal.ExecuteAsync(context)
            : next(context));

        // Plain request delegates, not handlers for the request delegate factory: no expression trees compiled
        // (and their assemblies loaded) when the gateway answers its first request.
        var group = app.MapGroup("/ui").WithMetadata(DashboardEndpoint.Instance);
        group.MapGet("/", Page(ui.SignInPageAsync));
        group.MapGet("/style.css", Page(_ => Task.FromResult(Results.Text(DashboardAssets.Css, "text/css; charset=utf-8"))));
        group.MapGet("/app.js", Page(_ => Task.FromResult(Results.Text(DashboardAssets.Script, "text/javascript; charset=utf-8"))));
        group.MapPost("/session", Page(ui.SignInAsync));
        group.MapGet("/callback", Page(ui.CallbackAsync));
        group.MapGet("/{**rest}", Page(ui.SignInPageAsync)); // an old or mistyped link: the sign-in page, nothing more

        // A session's pages: under its tag, and only with its cookie (see Session).
        var session = group.MapGroup("/s/{tag}");
        session.MapGet("/", Page(ui.CredentialsPageAsync));
        session.MapPost("/signout", Page(ui.SignOutAsync));
        session.MapGet("/mcp", Page(ui.McpPageAsync));
        session.MapGet("/keys", Page(ui.KeysPageAsync));
        session.MapPost("/keys", Page(ui.CreateKeyAsync));
        session.MapPost("/keys/{name}/revoke", Named(ui.RevokeKeyAsync));
        session.MapGet("/audit", Page(ui.AuditPageAsync));
        session.MapGet("/usage", Page(ui.UsagePageAsync));
        session.MapPost("/credentials/{name}/reconnect", Named(ui.ReconnectAsync));
        session.MapPost("/credentials/{name}/remove", Named(ui.RemoveAsync));
        session.MapPost("/credentials/{name}/restore", Named(ui.RestoreAsync));
        session.MapGet("/events", (RequestDelegate)ui.EventsAsync);
    }

    /// <summary>Whether the dashboard's guard applies: the request was routed to a dashboard endpoint, or its path is
    /// under <c>/ui</c> in any spelling of the letters (routing ignores case, so the guard must too).</summary>
    private static bool IsDashboard(HttpContext context) =>
        context.GetEndpoint()?.Metadata.GetMetadata<DashboardEndpoint>() is not null
        || context.Request.Path.StartsWithSegments("/ui", StringComparison.OrdinalIgnoreCase);

    private static RequestDelegate Page(Func<HttpContext, Task<IResult>> handler) =>
        async context => await (await handler(context).ConfigureAwait(false)).ExecuteAsync(context).ConfigureAwait(false);

    /// <summary>A handler of <c>.../{name}/...</c>, given the route's <c>name</c>.</summary>
    private static RequestDelegate Named(Func<HttpContext, string, Task<IResult>> handler) =>
        Page(context => handler(context, (string)context.Request.RouteValues["name"]!));

    /// <summary>Refuses non-loopback peers and foreign hosts, and sets the headers every answer carries.</summary>
    private HtmlResult? Guard(HttpContext context)
    {
        var response = context.Response;
        response.Headers.CacheControl = "no-store";
        response.Headers.XContentTypeOptions = "nosniff";
        response.Headers.XFrameOptions = "DENY";
        // same-origin: a referrer (it holds the session's tag) goes only to this origin, port included, so never to a
        // page on another port. Not no-referrer: that makes Chromium send "Origin: null" on our own forms.
        response.Headers["Referrer-Policy"] = "same-origin";
        response.Headers.ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'";
        var remote = context.Connection.RemoteIpAddress;
        if (remote is not null && !IPAddress.IsLoopback(remote))
        {
            _refusedLog.Refused(context, LoggedPath(context), "the dashboard: non-loopback peer");
            return Page(403, "Not available from here", null, DashboardPages.Message("The Latchkey dashboard answers only on this machine (127.0.0.1). A dashboard for a shared team gateway, with its own admin sign-in, is not built yet."));
        }

        var host = context.Request.Host.Host;
        if (host is not ("127.0.0.1" or "localhost" or "[::1]" or "::1"))
        {
            _refusedLog.Refused(context, LoggedPath(context), "the dashboard: foreign Host header");
            return Page(403, "Wrong address", null, DashboardPages.Message("Open the dashboard at http://127.0.0.1 (run latchkey dashboard); it does not answer under other host names."));
        }

        if (HttpMethods.IsPost(context.Request.Method) && context.Request.Headers.Origin is { Count: > 0 } origin
            && !string.Equals(origin.ToString(), $"{context.Request.Scheme}://{context.Request.Host}", StringComparison.OrdinalIgnoreCase))
        {
            _refusedLog.Refused(context, LoggedPath(context), "the dashboard: cross-origin form");
            return Page(403, "Refused", null, DashboardPages.Message("This form came from another site, so it was refused. Nothing was changed."));
        }

        return null;
    }

    /// <summary>The sign-in page: whatever the request carries (a cookie included), it names no session and never
    /// redirects to one, so a replayed cookie learns nothing here.</summary>
    private Task<IResult> SignInPageAsync(HttpContext context) => Task.FromResult<IResult>(SignInPage());

    private HtmlResult SignInPage() => Page(401, "Sign in", null, DashboardPages.SignIn(null));

    private async Task<IResult> CredentialsPageAsync(HttpContext context)
    {
        if (Session(context) is not { } session)
        {
            return SignInPage();
        }

        var ct = context.RequestAborted;
        var records = await _store.ListAsync(ct);
        var history = new Dictionary<string, IReadOnlyList<CredentialVersion>>(StringComparer.Ordinal);
        foreach (var r in records)
        {
            history[r.Name] = await _store.GetHistoryAsync(r.Name, ct);
        }

        var body = DashboardPages.Credentials(records, history, session, _time.GetUtcNow());
        return await LayoutAsync("Credentials", session.Base, session, session.TakeFlash(), body, ct);
    }

    private async Task<IResult> McpPageAsync(HttpContext context)
    {
        if (Session(context) is not { } session)
        {
            return SignInPage();
        }

        var records = await _store.ListAsync(context.RequestAborted);
        return await LayoutAsync("MCP servers", session.Base + "mcp", session, session.TakeFlash(), DashboardPages.Mcp(records, session, _time.GetUtcNow()), context.RequestAborted);
    }

    private async Task<IResult> KeysPageAsync(HttpContext context)
    {
        if (Session(context) is not { } session)
        {
            return SignInPage();
        }

        var ct = context.RequestAborted;
        var flash = session.TakeFlash();
        var body = DashboardPages.Keys(await _store.ListKeysAsync(ct), await _store.ListAsync(ct), session, flash, _time.GetUtcNow());
        return await LayoutAsync("Client keys", session.Base + "keys", session, flash, body, ct);
    }

    private async Task<IResult> AuditPageAsync(HttpContext context)
    {
        if (Session(context) is not { } session)
        {
            return SignInPage();
        }

        if (_audit is null)
        {
            return Page(404, "No audit log", session, DashboardPages.Message("This store keeps no audit log.", session.Base));
        }

        var oldestFirst = await _audit.QueryAsync(new AuditQuery(Limit: 200), context.RequestAborted);
        var entries = oldestFirst.Reverse().ToList(); // the page shows the newest first
        return await LayoutAsync("Audit log", session.Base + "audit", session, session.TakeFlash(), DashboardPages.Audit(entries), context.RequestAborted);
    }

    /// <summary>The usage page: <c>?days=</c> one of <see cref="DashboardPages.UsagePeriods"/> (14 otherwise).</summary>
    private async Task<IResult> UsagePageAsync(HttpContext context)
    {
        if (Session(context) is not { } session)
        {
            return SignInPage();
        }

        var period = int.TryParse(context.Request.Query["days"].ToString(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var asked)
            && DashboardPages.UsagePeriods.Contains(asked) ? asked : 14;
        var today = DateOnly.FromDateTime(_time.GetUtcNow().UtcDateTime);
        var rows = await _store.QueryUsageAsync(today.AddDays(1 - period), context.RequestAborted);
        var body = DashboardPages.Usage(rows, period, today, session.Base + "usage");
        return await LayoutAsync("Usage", session.Base + "usage", session, session.TakeFlash(), body, context.RequestAborted);
    }

    private async Task<IResult> SignInAsync(HttpContext context)
    {
        var form = await ReadFormAsync(context);
        if (form is null || !SignInLinks.TryRedeem(home, form.GetValueOrDefault("token"), _time))
        {
            LogSignInRefused(_logger);
            return Page(403, "Sign in", null, DashboardPages.SignIn("This sign-in link was already used or has expired (links work once, for two minutes). Run latchkey dashboard again for a new one."));
        }

        var (session, cookie) = _sessions.Create();
        context.Response.Cookies.Append(DashboardSessions.CookieName, cookie, new CookieOptions
        {
            HttpOnly = true,
            SameSite = SameSiteMode.Strict,
            Path = session.Base.TrimEnd('/'), // the browser sends it to this session's pages only, on any port

            Secure = false, // plain HTTP on loopback; the cookie never leaves this machine
            MaxAge = DashboardSessions.Lifetime,
            IsEssential = true,
        });
        session.SetFlash(new Flash(true, "Signed in. This browser stays signed in for 8 hours, or until the gateway restarts."));
        LogSignedIn(_logger);
        return Results.Redirect(session.Base); // the tag goes only to the browser that redeemed the one-time token
    }

    private async Task<IResult> SignOutAsync(HttpContext context)
    {
        if (await AuthorizeFormAsync(context) is not ({ } session, _))
        {
            return Forbidden(context);
        }

        _sessions.Remove(session);
        context.Response.Cookies.Delete(DashboardSessions.CookieName, new CookieOptions { Path = session.Base.TrimEnd('/') });
        return Page(200, "Signed out", null, DashboardPages.SignIn("You are signed out. Run latchkey dashboard to sign in again."));
    }

    private async Task<IResult> CreateKeyAsync(HttpContext context)
    {
        if (await AuthorizeFormAsync(context) is not ({ } session, { } form))
        {
            return Forbidden(context);
        }

        var ct = context.RequestAborted;
        var name = form.GetValueOrDefault("name")?.Trim() ?? string.Empty;
        var allowed = (form.GetValueOrDefault("credentials") ?? string.Empty).Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct(StringComparer.Ordinal).ToList();
        DateTimeOffset? expiresAt = null;
        string? problem = CredentialNames.Validate(name) is { } p ? p.Replace("credential", "key", StringComparison.Ordinal) : null;
        if (problem is null && allowed.Count == 0)
        {
            problem = "Say which credentials the key may use (a name, several separated by commas, or * for all).";
        }

        if (problem is null && form.GetValueOrDefault("expires") is { Length: > 0 } expires)
        {
            if (HumanDuration.TryParse(expires, out var validFor))
            {
                expiresAt = _time.GetUtcNow() + validFor;
            }
            else
            {
                problem = $"{HumanDuration.NotADuration("Expires after", expires)} {HumanDuration.Hint}";
            }
        }

        if (problem is not null)
        {
            session.SetFlash(new Flash(false, $"The key was not created: {problem}"));
            return Results.Redirect(session.Base + "keys");
        }

        var created = await _store.CreateKeyAsync(name, allowed, expiresAt, ct);
        if (created is not { } c)
        {
            session.SetFlash(new Flash(false, $"The key was not created: a client key named '{name}' already exists. Choose another name, or revoke that one first."));
            return Results.Redirect(session.Base + "keys");
        }

        LogAction(_logger, "create key", name);
        session.SetFlash(new Flash(true, $"Created client key '{name}' for {string.Join(", ", allowed)}{(expiresAt is { } x ? $", working until {x:u}" : string.Empty)}.", name, c.Value));
        return Results.Redirect(session.Base + "keys");
    }

    private async Task<IResult> RevokeKeyAsync(HttpContext context, string name)
    {
        if (await AuthorizeFormAsync(context) is not ({ } session, _))
        {
            return Forbidden(context);
        }

        var revoked = await _store.RevokeKeyAsync(name, context.RequestAborted);
        LogAction(_logger, "revoke key", name);
        session.SetFlash(revoked
            ? new Flash(true, $"Revoked client key '{name}'. The gateway refuses it from now on (within a second).")
            : new Flash(false, $"No active client key is named '{name}'; it may have been revoked already."));
        return Results.Redirect(session.Base + "keys");
    }

    private async Task<IResult> RemoveAsync(HttpContext context, string name)
    {
        if (await AuthorizeFormAsync(context) is not ({ } session, _))
        {
            return Forbidden(context);
        }

        var ct = context.RequestAborted;
        if (await _store.GetAsync(name, ct) is not { } record)
        {
            session.SetFlash(new Flash(false, $"No credential is named '{name}'; it may have been removed already."));
            return Results.Redirect(session.Base);
        }

        var revoked = await engine.RevokeAsync(record, ct); // through the gateway's one token engine
        var removed = await _store.RemoveAsync(name, ct);
        LogAction(_logger, "remove", name);
        session.SetFlash(removed
            ? new Flash(true, $"Removed '{name}' and its saved versions{(revoked is null ? "." : $"; its grant was {revoked}.")}")
            : new Flash(false, $"'{name}' was removed by someone else meanwhile."));
        return Results.Redirect(session.Base);
    }

    private async Task<IResult> RestoreAsync(HttpContext context, string name)
    {
        if (await AuthorizeFormAsync(context) is not ({ } session, { } form))
        {
            return Forbidden(context);
        }

        if (!long.TryParse(form.GetValueOrDefault("version"), System.Globalization.CultureInfo.InvariantCulture, out var version)
            || !long.TryParse(form.GetValueOrDefault("current"), System.Globalization.CultureInfo.InvariantCulture, out var current))
        {
            session.SetFlash(new Flash(false, "The restore form was incomplete (no version given). Nothing was changed."));
            return Results.Redirect(session.Base);
        }

        var ct = context.RequestAborted;
        if (await _store.GetAsync(name, ct) is { Kind: CredentialKind.OAuth, RefreshTokenFingerprint: { } fingerprint }
            && (await _store.GetHistoryAsync(name, ct)).FirstOrDefault(v => v.Version == version) is { } target
            && !string.Equals(target.RefreshTokenFingerprint, fingerprint, StringComparison.Ordinal))
        {
            // As 'latchkey restore' without --force: a spent refresh token replayed can make the server revoke the grant.
            session.SetFlash(new Flash(false, $"Version {version} of '{name}' holds a refresh token that has since been rotated; restoring it could make the server revoke the whole grant, so nothing was changed. Press Reconnect to sign in again (or, if you are sure, run latchkey restore {name} --version {version} --force)."));
            return Results.Redirect(session.Base + "#cred-" + Uri.EscapeDataString(name));
        }

        var result = await _store.RestoreAsync(name, version, WriteCondition.Version(current), ct);
        LogAction(_logger, "restore", name);
        session.SetFlash(result.Outcome switch
        {
            WriteOutcome.Written => new Flash(true, $"Restored version {version} of '{name}'; it is now version {result.Record!.Version}. The version it replaced is kept in the history."),
            WriteOutcome.ConditionFailed => new Flash(false, $"'{name}' changed since the page was shown (it is now version {result.Record?.Version}); nothing was restored. Look again and retry."),
            WriteOutcome.Quarantined => new Flash(false, $"Version {version} of '{name}' cannot be decrypted with this install's key, so it cannot be restored."),
            _ => new Flash(false, $"'{name}' has no version {version}. Nothing was changed."),
        });
        return Results.Redirect(session.Base + "#cred-" + Uri.EscapeDataString(name));
    }

    private async Task<IResult> ReconnectAsync(HttpContext context, string name)
    {
        if (await AuthorizeFormAsync(context) is not ({ } session, _))
        {
            return Forbidden(context);
        }

        var port = context.Connection.LocalPort;
        if (port == 0)
        {
            session.SetFlash(new Flash(false, "Reconnect works from the dashboard's web address (http://127.0.0.1:PORT/ui/...), not over the Unix socket."));
            return Results.Redirect(session.Base);
        }

        try
        {
            var authorize = await reconnects.StartAsync(name, session.Id, $"http://127.0.0.1:{port}/ui/callback", _stopping);
            LogAction(_logger, "reconnect started", name);
            return Results.Redirect(authorize.AbsoluteUri);
        }
        catch (OAuthException ex)
        {
            LogReconnectRefused(_logger, name, ex.Code);
            session.SetFlash(new Flash(false, $"Reconnecting '{name}' could not start: {ex.Message}"));
            return Results.Redirect(session.Base);
        }
        catch (Exception ex) when (ex is HttpRequestException or StoreException)
        {
            session.SetFlash(new Flash(false, $"Reconnecting '{name}' could not start: {ex.Message} Nothing was changed."));
            return Results.Redirect(session.Base);
        }
    }

    /// <summary>The authorization server's redirect back. It arrives without the session cookie (a cross-site
    /// navigation never carries a SameSite=Strict cookie), so it is matched by its <c>state</c>, and the page it
    /// answers with sends the browser on to the dashboard from this origin, where the cookie applies again.</summary>
    private async Task<IResult> CallbackAsync(HttpContext context)
    {
        var query = LoopbackListener.ParseQuery(context.Request.QueryString.Value ?? string.Empty);
        var outcome = await reconnects.CompleteAsync(query, context.RequestAborted);
        if (outcome is not { } done)
        {
            return Page(400, "Sign-in not recognised", null, DashboardPages.Message("This sign-in answer matches no reconnect in progress: it is stale, was used already, or the gateway restarted. Nothing was changed; press Reconnect again."));
        }

        // Back to the session that started the reconnect: its tagged path goes only to whoever holds this
        // reconnect's state, which only the browser and the authorization server saw, and which works once.
        var owner = _sessions.FindById(done.SessionId);
        owner?.SetFlash(done.Outcome);
        var back = owner?.Base ?? DashboardPages.Root;
        var body = Html.Of($"""
            <div class="flash {(done.Outcome.Ok ? "ok" : "error")}" role="status" id="outcome"><p>{done.Outcome.Message}</p></div>
            <p><a id="continue" href="{back}#cred-{done.Credential}">Back to the dashboard</a></p>
            """);
        return new HtmlResult(done.Outcome.Ok ? 200 : 400, DashboardPages.Layout(done.Outcome.Ok ? "Reconnected" : "Reconnect failed", string.Empty, null, null, false, null, body), refresh: $"2;url={back}");
    }

    /// <summary>Server-sent events (written by <see cref="SseFormatter"/>): the store's fingerprint, sent at once and
    /// whenever it changes (checked every second).</summary>
    private async Task EventsAsync(HttpContext context)
    {
        if (Session(context) is null)
        {
            context.Response.StatusCode = 401;
            return;
        }

        context.Response.ContentType = "text/event-stream";
        context.Response.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _stopping);
        try
        {
            await SseFormatter.WriteAsync(FingerprintEventsAsync(linked.Token), context.Response.Body, linked.Token);
        }
        catch (OperationCanceledException)
        {
            // the browser went away or the gateway is stopping
        }
        catch (StoreException)
        {
            // the store is unreachable: the page's script says live updates paused
        }
    }

    /// <summary>The fingerprint when it changes; after 15 quiet seconds a <c>keepalive</c> event, which the page's
    /// <c>EventSource</c> ignores (it listens to <c>message</c> events only) but which finds a browser that went away
    /// and keeps idle-timeouts on the way from closing the stream.</summary>
    private async IAsyncEnumerable<SseItem<string>> FingerprintEventsAsync([EnumeratorCancellation] CancellationToken ct)
    {
        string? sent = null;
        var quiet = 0;
        while (!ct.IsCancellationRequested)
        {
            var now = await FingerprintAsync(ct);
            if (now != sent)
            {
                yield return new SseItem<string>(now);
                sent = now;
                quiet = 0;
            }
            else if (++quiet >= 15)
            {
                yield return KeepAlive;
                quiet = 0;
            }

            await Task.Delay(TimeSpan.FromSeconds(1), _time, ct);
        }
    }

    /// <summary>A short digest of everything the pages show: a change to any credential or key changes it.</summary>
    private async Task<string> FingerprintAsync(CancellationToken ct)
    {
        var text = new StringBuilder();
        var now = _time.GetUtcNow();
        foreach (var r in await _store.ListAsync(ct))
        {
            text.Append(r.Name).Append('|').Append(r.Version).Append('|').Append(CredentialStatusView.Derive(r, now).Text).Append('|').Append(r.UpdatedAt.UtcTicks)
                .Append('|').Append(r.LastUpstreamFailure?.At.UtcTicks).Append('|').Append(r.Coordination.LastError?.At.UtcTicks).Append('\n');
        }

        foreach (var k in await _store.ListKeysAsync(ct))
        {
            text.Append(k.Name).Append('|').Append(k.StateAt(now)).Append('\n');
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..16];
    }

    private async Task<IResult> LayoutAsync(string title, string current, DashboardSession session, Flash? flash, HtmlContent body, CancellationToken ct) =>
        new HtmlResult(200, DashboardPages.Layout(title, current, session, await FingerprintAsync(ct), _audit is not null, flash, body));

    private HtmlResult Page(int status, string title, DashboardSession? session, HtmlContent body) =>
        new HtmlResult(status, DashboardPages.Layout(title, string.Empty, session, null, _audit is not null, null, body));

    private HtmlResult Forbidden(HttpContext context)
    {
        _refusedLog.Refused(context, "/ui form", "the dashboard: no session or anti-forgery token");
        return Page(403, "Refused", null, DashboardPages.Message("This request carried no valid sign-in or anti-forgery token, so it was refused. Nothing was changed. Reload the dashboard and try again, or run latchkey dashboard to sign in."));
    }

    /// <summary>The session whose cookie this request carries <em>and</em> whose tag its path names; null otherwise.
    /// A browser may hold several sessions' cookies (one per tag path): the one for this path is the one that counts.</summary>
    private DashboardSession? Session(HttpContext context)
    {
        var tag = context.Request.RouteValues["tag"] as string;
        foreach (var cookie in CookieValues(context.Request.Headers.Cookie))
        {
            if (_sessions.Find(cookie, tag) is { } session)
            {
                return session;
            }
        }

        return null;
    }

    /// <summary>Every value of the session cookie in the request (a page on another port can add cookies for
    /// 127.0.0.1 too; at most a few are looked at).</summary>
    private static IEnumerable<string> CookieValues(Microsoft.Extensions.Primitives.StringValues headers) =>
        Microsoft.Net.Http.Headers.CookieHeaderValue.TryParseList(headers, out var cookies)
            ? cookies.Where(c => c.Name.Equals(DashboardSessions.CookieName, StringComparison.Ordinal)).Take(8).Select(c => c.Value.ToString())
            : [];

    /// <summary>The request's path for a log line, the session tag cut out.</summary>
    private static string LoggedPath(HttpContext context)
    {
        var path = context.Request.Path.Value ?? string.Empty;
        if (!path.StartsWith(DashboardSessions.PathPrefix, StringComparison.OrdinalIgnoreCase))
        {
            return path;
        }

        var end = path.IndexOf('/', DashboardSessions.PathPrefix.Length);
        return DashboardSessions.PathPrefix + "(tag)" + (end < 0 ? string.Empty : path[end..]);
    }

    /// <summary>The session and form of a state-changing request, or nulls when the session or its
    /// anti-forgery token is missing or wrong.</summary>
    private async Task<(DashboardSession?, Dictionary<string, string>?)> AuthorizeFormAsync(HttpContext context)
    {
        if (Session(context) is not { } session || await ReadFormAsync(context) is not { } form || !session.CheckAntiforgery(form.GetValueOrDefault("_csrf")))
        {
            return (null, null);
        }

        return (session, form);
    }

    private static async Task<Dictionary<string, string>?> ReadFormAsync(HttpContext context)
    {
        if (!context.Request.HasFormContentType || context.Request.ContentLength is > MaxFormBytes)
        {
            return null;
        }

        try
        {
            var form = await context.Request.ReadFormAsync(new Microsoft.AspNetCore.Http.Features.FormOptions { ValueCountLimit = 32, ValueLengthLimit = MaxFormBytes, MultipartBodyLengthLimit = MaxFormBytes }, context.RequestAborted);
            return form.ToDictionary(f => f.Key, f => f.Value.ToString(), StringComparer.Ordinal);
        }
        catch (Exception ex) when (ex is InvalidDataException or IOException)
        {
            return null;
        }
    }

    [LoggerMessage(10, LogLevel.Information, "Dashboard: a browser signed in with a one-time link")]
    private static partial void LogSignedIn(ILogger logger);

    [LoggerMessage(11, LogLevel.Warning, "Dashboard: refused a sign-in link (used, expired or unknown)")]
    private static partial void LogSignInRefused(ILogger logger);

    [LoggerMessage(13, LogLevel.Information, "Dashboard: {Action} {Name}")]
    private static partial void LogAction(ILogger logger, string action, string name);

    [LoggerMessage(14, LogLevel.Warning, "Dashboard: reconnect of {Name} could not start: {Code}")]
    private static partial void LogReconnectRefused(ILogger logger, string name, string code);

    /// <summary>Marks the dashboard's endpoints, for the guard.</summary>
    private sealed class DashboardEndpoint
    {
        public static readonly DashboardEndpoint Instance = new();
    }

    /// <summary>An HTML page answer.</summary>
    private sealed class HtmlResult(int status, HtmlContent html, string? refresh = null) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.StatusCode = status;
            httpContext.Response.ContentType = "text/html; charset=utf-8";
            if (refresh is not null)
            {
                httpContext.Response.Headers["Refresh"] = refresh;
            }

            return httpContext.Response.WriteAsync(html.Value, httpContext.RequestAborted);
        }
    }
}
