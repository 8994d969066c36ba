using System.Text;
using System.Text.Json.Nodes;
using Latchkey.Diagnostics;

namespace Latchkey.Tests.Diagnostics;

public sealed class AgentErrorBodyTests
{
    private static readonly UpstreamDiagnosis Refused = new("authentication_failed",
        "The upstream refused the key stored as 'anthropic'. The upstream said: \"invalid x-api-key\"",
        "Store a valid key: latchkey add anthropic --upstream https://api.example --replace < key.txt", 401, "req_011Abc", null);

    [Fact]
    public void Rewrite_AnthropicAuthenticationError_MessageIsLatchkeysExplanationTypeAndRequestIdKept()
    {
        var body = """{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_011Abc"}""";

        var json = Rewritten(body, Refused);

        Assert.Equal("error", json["type"]!.GetValue<string>());
        Assert.Equal("authentication_error", json["error"]!["type"]!.GetValue<string>());
        Assert.Equal("The upstream refused the key stored as 'anthropic'. Store a valid key: latchkey add anthropic --upstream https://api.example --replace < key.txt", json["error"]!["message"]!.GetValue<string>());
        Assert.Equal("req_011Abc", json["request_id"]!.GetValue<string>());
        Assert.Equal("authentication_failed", json["latchkey"]!["reason"]!.GetValue<string>());
        Assert.Equal("anthropic", json["latchkey"]!["credential"]!.GetValue<string>());
        Assert.DoesNotContain("x-api-key", json.ToJsonString(), StringComparison.OrdinalIgnoreCase); // Claude Code would say "Please run /login"
    }

    [Fact]
    public void Rewrite_OpenAiInvalidApiKey_SameShapeWithTypeAndCodeKept()
    {
        var body = """{"error":{"message":"Incorrect API key provided: sk-pr***abcd.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}""";
        var diagnosis = Refused with { Code = "invalid_api_key", Message = "The upstream does not accept the API key stored as 'openai'. The upstream said: \"Incorrect API key provided: sk-pr***abcd.\"" };

        var json = Rewritten(body, diagnosis);

        Assert.Null(json["type"]);
        Assert.Equal("invalid_request_error", json["error"]!["type"]!.GetValue<string>());
        Assert.Equal("invalid_api_key", json["error"]!["code"]!.GetValue<string>());
        Assert.StartsWith("The upstream does not accept the API key stored as 'openai'. Store a valid key:", json["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.DoesNotContain("sk-pr", json.ToJsonString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}""", "rate_limited")] // not about the credential
    [InlineData("""{"jsonrpc":"2.0","error":{"code":-32001,"message":"no","type":"x"},"id":1}""", "authentication_failed")] // an MCP server's
    [InlineData("""{"error":"invalid_token","error_description":"expired"}""", "authentication_failed")] // OAuth's
    [InlineData("""{"type":"error","error":{"type":"authentication_error","message":"cut sh""", "authentication_failed")] // not whole
    [InlineData("<html>401</html>", "authentication_failed")]
    [InlineData("", "authentication_failed")]
    public void Rewrite_NotACredentialFailureOrNotOneOfTheShapes_LeftAsItCame(string body, string code)
    {
        Assert.Null(AgentErrorBody.Rewrite(Encoding.UTF8.GetBytes(body), Refused with { Code = code }, "anthropic"));
    }

    [Fact]
    public void Rewrite_BodyOverTheBound_LeftAsItCame()
    {
        var body = "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"" + new string('a', AgentErrorBody.MaxBodyBytes) + "\"}}";

        Assert.Null(AgentErrorBody.Rewrite(Encoding.UTF8.GetBytes(body), Refused, "anthropic"));
    }

    [Fact]
    public void Rewrite_UpstreamTypeWithEscapesAndALongCode_QuotedAndCut()
    {
        var body = "{\"error\":{\"message\":\"x\",\"type\":\"bad\\u001b[31m\",\"code\":\"" + new string('c', 500) + "\"}}";

        var json = Rewritten(body, Refused);

        Assert.DoesNotContain('\u001b', json["error"]!["type"]!.GetValue<string>());
        Assert.Equal(ServerText.MaxCodeLength, json["error"]!["code"]!.GetValue<string>().Length);
    }

    private static JsonNode Rewritten(string body, UpstreamDiagnosis diagnosis)
    {
        var bytes = AgentErrorBody.Rewrite(Encoding.UTF8.GetBytes(body), diagnosis, diagnosis.Message.Contains("'openai'", StringComparison.Ordinal) ? "openai" : "anthropic");
        Assert.NotNull(bytes);
        return JsonNode.Parse(bytes)!;
    }
}
