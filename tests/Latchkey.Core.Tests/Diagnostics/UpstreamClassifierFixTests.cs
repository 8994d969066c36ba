using System.Text;
using Latchkey.Diagnostics;
using Latchkey.Store;

namespace Latchkey.Core.Tests.Diagnostics;

/// <summary>The fixes <see cref="UpstreamClassifier"/> gives for a refused credential keep how it is sent, and an OAuth
/// grant refused in OpenAI's words is told to sign in again, not to store an API key.</summary>
public sealed class UpstreamClassifierFixTests
{
    private const string OpenAiRefusal = """{"error":{"message":"Incorrect API key provided: sk-pr***abcd.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}""";
    private const string AnthropicRefusal = """{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_011Abc"}""";

    private static CredentialRecord Record(CredentialKind kind) => new()
    {
        Name = "anthropic", Id = "id", Kind = kind, Version = 3, State = CredentialState.Ok,
        Metadata = new CredentialMetadata
        {
            Upstream = "https://api.anthropic.com",
            Injection = new InjectionRule("x-api-key", "{secret}"),
            ExtraHeaders = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase) { ["anthropic-version"] = "2023-06-01" },
        },
        Secrets = kind == CredentialKind.ApiKey ? new CredentialSecrets { ApiKey = "sk-ant-api03-secret" } : new CredentialSecrets { AccessToken = "at-secret" },
        CreatedAt = default, UpdatedAt = default,
    };

    [Theory]
    [InlineData(AnthropicRefusal, "authentication_failed")]
    [InlineData(OpenAiRefusal, "invalid_api_key")]
    public void Classify_StoredKeyRefused_FixReplacesTheSecretAloneKeepingHowItIsSent(string body, string code)
    {
        var found = UpstreamClassifier.Classify(401, Encoding.UTF8.GetBytes(body), "req_1", null, Record(CredentialKind.ApiKey), "sk-ant-api03-secret")!;

        Assert.Equal(code, found.Code);
        Assert.Equal("Store a valid key: latchkey add anthropic --replace --keep-settings < key.txt", found.Fix);
        Assert.DoesNotContain("--upstream", found.Fix, StringComparison.Ordinal); // --replace with options would reset the header to Authorization: Bearer
        Assert.DoesNotContain("x-api-key", found.Fix, StringComparison.Ordinal); // Claude Code hides any error naming its key header
    }

    [Fact]
    public void Classify_OAuthAccessTokenRefusedInOpenAisWords_SignInAgainNotStoreAKey()
    {
        var found = UpstreamClassifier.Classify(401, Encoding.UTF8.GetBytes(OpenAiRefusal), "req_1", null, Record(CredentialKind.OAuth), "at-secret")!;

        Assert.Equal("authentication_failed", found.Code);
        Assert.Equal("Sign in again: latchkey login anthropic", found.Fix);
    }
}
