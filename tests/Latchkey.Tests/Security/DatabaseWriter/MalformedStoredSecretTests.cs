using System.Net;
using Latchkey.Store;
using Latchkey.Tests.Gateway;
using Latchkey.UpstreamSim;

namespace Latchkey.Tests.Security.DatabaseWriter;

/// <summary>
/// A credential row whose secret, extra header or injection format holds CR, LF or NUL, written straight through the
/// store API (as another writer of the store would: <c>latchkey add</c> refuses such values). Sent as is, it would
/// split the gateway's request to the upstream and smuggle headers or a second request in. The gateway sends nothing
/// and answers <c>502 credential_malformed</c>.
/// </summary>
public sealed class MalformedStoredSecretTests
{
    public static TheoryData<string, string, string, string> Rows => new()
    {
        { "secret-crlf", "sk-ant-api03-x\r\nx-injected: 1", "2023-06-01", "{secret}" },
        { "secret-nul", "sk-ant-api03-x\0", "2023-06-01", "{secret}" },
        { "header-lf", "sk-ant-api03-x", "2023-06-01\nx-injected: 1", "{secret}" },
        { "format-crlf", "sk-ant-api03-x", "2023-06-01", "{secret}\r\nx-injected: 1" },
    };

    [Theory]
    [MemberData(nameof(Rows))]
    public async Task Forward_StoredValueWithCrLfOrNul_NothingSentAnd502CredentialMalformed(string name, string secret, string version, string format)
    {
        await using var upstream = new SimulatedUpstream();
        await upstream.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync();
        await using (var store = SqliteCredentialStore.Open(new StoreHome(gateway.HomePath), TimeProvider.System))
        {
            var metadata = new CredentialMetadata
            {
                Upstream = upstream.Url,
                Injection = new InjectionRule("x-api-key", format),
                ExtraHeaders = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase) { ["anthropic-version"] = version },
            };
            var written = await store.CreateAsync(new NewCredential(name, CredentialKind.ApiKey, metadata, new CredentialSecrets { ApiKey = secret }), default);
            Assert.Equal(WriteOutcome.Written, written.Outcome);
        }

        var key = await gateway.CreateKeyAsync("agent", name);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/c/{name}/v1/models");
        request.Headers.Add("x-api-key", key);
        using var response = await gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.StartsWith("credential_malformed;", response.Headers.GetValues("latchkey-diagnostic").Single(), StringComparison.Ordinal);
        Assert.Empty(upstream.Requests);
    }
}
