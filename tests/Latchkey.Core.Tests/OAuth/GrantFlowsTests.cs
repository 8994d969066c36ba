using Latchkey.OAuth;

namespace Latchkey.Tests.OAuth;

/// <summary>The callback checks: <c>state</c>, and RFC 9207 <c>iss</c>: compared exactly when present, required when
/// the server says it sends it, otherwise optional.</summary>
public sealed class GrantFlowsTests
{
    private static AuthorizationServerMetadata Server(bool issSupported) => new(
        "http://127.0.0.1:7000", new Uri("http://127.0.0.1:7000/auth"), new Uri("http://127.0.0.1:7000/token"), null, null, null,
        ["S256"], issSupported, false, [], new Uri("http://127.0.0.1:7000/.well-known/openid-configuration"), []);

    private static Dictionary<string, string> Query(params (string, string)[] pairs) => pairs.ToDictionary(p => p.Item1, p => p.Item2);

    [Theory]
    [InlineData(true, "http://127.0.0.1:7000", true)]
    [InlineData(true, null, false)]
    [InlineData(false, "http://127.0.0.1:7000", true)]
    [InlineData(false, null, true)]
    [InlineData(true, "https://evil.example.com", false)]
    [InlineData(false, "http://127.0.0.1:7000/", false)]
    public void CheckCallback_IssTable_AcceptsOnlyMatchingIssuer(bool advertised, string? iss, bool accepted)
    {
        var q = Query(("code", "c"), ("state", "s"));
        if (iss is not null)
        {
            q["iss"] = iss;
        }

        Assert.Equal(accepted, GrantFlows.CheckCallback(q, "s", Server(advertised)) is null);
    }

    [Fact]
    public void CheckCallback_WrongState_Refused()
    {
        var failure = GrantFlows.CheckCallback(Query(("code", "c"), ("state", "other"), ("iss", "http://127.0.0.1:7000")), "s", Server(true));

        Assert.Contains("state", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void CheckCallback_MissingState_Refused()
    {
        Assert.NotNull(GrantFlows.CheckCallback(Query(("code", "c"), ("iss", "http://127.0.0.1:7000")), "s", Server(true)));
    }

    [Fact]
    public void CheckCallback_ErrorFromWrongIssuer_ErrorTextNeverShown()
    {
        var failure = GrantFlows.CheckCallback(Query(("error", "access_denied"), ("error_description", "click here evil"), ("state", "s"), ("iss", "https://evil.example.com")), "s", Server(true));

        Assert.DoesNotContain("click here", failure, StringComparison.Ordinal);
        Assert.Contains("mix-up", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void CheckCallback_ErrorFromRightIssuer_ReportedWithDescription()
    {
        var failure = GrantFlows.CheckCallback(Query(("error", "access_denied"), ("error_description", "user said no"), ("state", "s"), ("iss", "http://127.0.0.1:7000")), "s", Server(true));

        Assert.Contains("access_denied", failure, StringComparison.Ordinal);
        Assert.Contains("user said no", failure, StringComparison.Ordinal);
    }
}
