using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Latchkey.Store;

namespace Latchkey.Tests.Tokens;

/// <summary>
/// A token endpoint whose answers a test scripts, for the outcome classes a real server cannot be made to
/// produce on demand (a lost answer, a 429 with Retry-After, a rotation committed by someone else mid-request).
/// Records every request's form.
/// </summary>
internal sealed class ScriptedTokenEndpoint : HttpMessageHandler
{
    public const string Url = "http://127.0.0.1:9/token";

    private readonly ConcurrentQueue<Func<Dictionary<string, string>, Task<HttpResponseMessage>>> _script = new();

    public ConcurrentQueue<Dictionary<string, string>> Requests { get; } = new();

    /// <summary>What to answer once the script is used up.</summary>
    public Func<Dictionary<string, string>, Task<HttpResponseMessage>>? Default { get; set; }

    public void Then(Func<Dictionary<string, string>, Task<HttpResponseMessage>> answer) => _script.Enqueue(answer);

    public void Then(HttpStatusCode status, string json, Action<HttpResponseMessage>? configure = null) => Then(_ =>
    {
        var response = Json(status, json);
        configure?.Invoke(response);
        return Task.FromResult(response);
    });

    public static HttpResponseMessage Json(HttpStatusCode status, string json) =>
        new(status) { Content = new StringContent(json, Encoding.UTF8, "application/json") };

    public static string Tokens(string accessToken, string? refreshToken, int expiresIn = 3600, string? scope = null) =>
        $$"""{"access_token":"{{accessToken}}","token_type":"Bearer","expires_in":{{expiresIn}}{{(refreshToken is null ? "" : $",\"refresh_token\":\"{refreshToken}\"")}}{{(scope is null ? "" : $",\"scope\":\"{scope}\"")}}}""";

    /// <summary>An OAuth grant refreshed at this endpoint: access token <c>at-1</c> obtained 10 minutes before
    /// <paramref name="now"/>, expiring 50 minutes after it, and due for refresh 35 minutes after it (or already, when
    /// <paramref name="due"/>).</summary>
    public static NewCredential Grant(string name, DateTimeOffset now, string? refreshToken = "rt-1", bool due = false) =>
        new(name, CredentialKind.OAuth, new CredentialMetadata
        {
            Issuer = "http://127.0.0.1:9",
            Client = new ClientRegistration("client-1", "dcr", "none"),
            Resource = "http://127.0.0.1:9/mcp",
            TokenEndpoint = Url,
            GrantType = "authorization_code",
            ObtainedAt = now - TimeSpan.FromMinutes(10),
            ExpiresAt = now + TimeSpan.FromMinutes(50),
            RefreshAfter = due ? now - TimeSpan.FromMinutes(1) : now + TimeSpan.FromMinutes(35),
        }, new CredentialSecrets { AccessToken = "at-1", RefreshToken = refreshToken });

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var body = await request.Content!.ReadAsStringAsync(cancellationToken);
        var form = body.Split('&').Select(p => p.Split('=')).ToDictionary(p => Uri.UnescapeDataString(p[0]), p => Uri.UnescapeDataString(p[1].Replace('+', ' ')));
        Requests.Enqueue(form);
        if (_script.TryDequeue(out var answer))
        {
            return await answer(form);
        }

        return Default is not null ? await Default(form) : throw new InvalidOperationException("the script ran out");
    }
}
