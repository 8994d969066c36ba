using System.Net.Http.Json;
using System.Text.Json;
using Xunit.Abstractions;

namespace Latchkey.Tests.Peers;

/// <summary>
/// The real authorization server (npm <c>oidc-provider</c>, <c>tests/peers/oidc/server.mjs</c>) as an OS process
/// (<see cref="NodePeer"/>): started on a free loopback port with its configuration in environment variables, ready
/// when it prints its JSON line, stopped with its whole process tree on dispose. Its stderr goes to the test output.
/// </summary>
internal sealed class OidcProviderPeer : IAsyncDisposable
{
    private readonly NodePeer _node;
    private readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(30) };

    private OidcProviderPeer(NodePeer node)
    {
        _node = node;
        Issuer = node.Ready.GetProperty("issuer").GetString()!;
        Base = node.Ready.GetProperty("base").GetString()!;
        Resource = node.Ready.GetProperty("resource").GetString()!;
    }

    /// <summary>The issuer identifier, exactly as the server compares it (<c>http://127.0.0.1:PORT[/path]</c>).</summary>
    public string Issuer { get; }

    /// <summary>The server's origin, where the test endpoints live.</summary>
    public string Base { get; }

    /// <summary>The protected-resource stub this server also serves (<c>BASE/mcp</c>), an accepted resource indicator.</summary>
    public string Resource { get; }

    public string Stderr => _node.Stderr;

    public static async Task<OidcProviderPeer> StartAsync(ITestOutputHelper? output, IReadOnlyDictionary<string, string>? environment = null) =>
        new(await NodePeer.StartAsync("oidc/server.mjs", "oidc-provider", output, environment, ignore: line => line.StartsWith("oidc-provider WARNING", StringComparison.Ordinal)));

    /// <summary>What the server counted: refreshes (successful and refused), revocations, token requests.</summary>
    public async Task<PeerCounters> CountersAsync()
    {
        using var json = JsonDocument.Parse(await _http.GetStringAsync(new Uri($"{Base}/__test/counters")));
        var r = json.RootElement;
        return new PeerCounters(
            r.GetProperty("refresh").GetInt32(),
            r.GetProperty("refreshError").GetInt32(),
            r.GetProperty("revoked").GetInt32(),
            r.GetProperty("tokenRequests").GetInt32(),
            r.GetProperty("refreshRequests").GetInt32(),
            r.GetProperty("held").GetInt32(),
            r.GetProperty("byGrant").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32()),
            r.GetProperty("errors").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32()),
            r.GetProperty("wellKnown").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32()));
    }

    public async Task ResetCountersAsync()
    {
        using var response = await _http.PostAsync(new Uri($"{Base}/__test/counters/reset"), null);
        response.EnsureSuccessStatusCode();
    }

    /// <summary>Merges faults: <c>delayMs</c>, <c>failNext</c>, <c>dropNextRefresh</c>, <c>dropNextRefreshBeforeCommit</c>,
    /// <c>holdNextRefresh</c>, <c>release</c>, <c>atTtl</c>, <c>lie</c>.</summary>
    public async Task SetFaultsAsync(object faults)
    {
        using var response = await _http.PostAsJsonAsync(new Uri($"{Base}/__test/faults"), faults);
        response.EnsureSuccessStatusCode();
    }

    /// <summary>What the server knows of a token: <c>active</c>, and its claims (JWT) or its record (opaque).</summary>
    public async Task<JsonElement> IntrospectAsync(string token)
    {
        using var response = await _http.PostAsJsonAsync(new Uri($"{Base}/__test/introspect"), new { token });
        response.EnsureSuccessStatusCode();
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.Clone();
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        await _node.DisposeAsync();
    }
}

/// <summary>The peer's counters (<c>GET /__test/counters</c>).</summary>
/// <param name="Refresh">Refresh grants that succeeded.</param>
/// <param name="RefreshError">Refresh grants refused (invalid_grant and friends).</param>
/// <param name="Revoked">Grants revoked (by revocation or by refresh-token reuse detection).</param>
/// <param name="TokenRequests">Every POST to the token endpoint.</param>
/// <param name="RefreshRequests">POSTs to the token endpoint with grant_type=refresh_token.</param>
/// <param name="Held">Refresh answers held back by the <c>holdNextRefresh</c> fault (committed, not yet sent).</param>
/// <param name="ByGrant">Successful refreshes per grant id.</param>
/// <param name="Errors">Refused refreshes per OAuth error code.</param>
/// <param name="WellKnown">Metadata requests, keyed "STATUS PATH" (e.g. "404 /.well-known/oauth-authorization-server/tenant1").</param>
internal sealed record PeerCounters(int Refresh, int RefreshError, int Revoked, int TokenRequests, int RefreshRequests, int Held, IReadOnlyDictionary<string, int> ByGrant, IReadOnlyDictionary<string, int> Errors, IReadOnlyDictionary<string, int> WellKnown);
