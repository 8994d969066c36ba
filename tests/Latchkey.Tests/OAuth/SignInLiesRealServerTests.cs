using Latchkey.Tests.Peers;
using Xunit.Abstractions;

namespace Latchkey.Tests.OAuth;

/// <summary>
/// A real authorization server that lies (its answers rewritten by a post-middleware in the peer) or that
/// refuses: every lie is refused with its own reason, and nothing stored changes: the working grant stays
/// byte-for-byte the same and usable (an abandoned or refused sign-in never costs the grant that works), and a new
/// name is never created.
/// The unit tests in Latchkey.Core.Tests (DiscoveryTests, GrantFlowsTests) cover the same checks in isolation;
/// these run them end to end through <c>latchkey login</c> against oidc-provider.
/// </summary>
public sealed class SignInLiesRealServerTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("issuer", "issuer_mismatch", "RFC 8414")]
    [InlineData("no_s256", "pkce_s256_unsupported", "does not advertise PKCE S256")]
    [InlineData("http_endpoint", "metadata_invalid", "plain http to another machine")]
    [InlineData("invalid_json", "invalid_json", "did not answer with valid JSON")]
    [InlineData("oversized", "too_large", "at most 65536")]
    [InlineData("prm_resource", "resource_mismatch", "RFC 9728")]
    [InlineData("iss_wrong", "callback_invalid", "RFC 9207 mix-up")]
    [InlineData("iss_missing", "callback_invalid", "carries no iss parameter")]
    public async Task Login_ServerLies_RefusedWithItsOwnReasonAndNothingStoredChanges(string lie, string code, string because)
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);
        await lk.LoginAsync("mcp", "--resource", lk.Peer.Resource);
        var before = await lk.SnapshotAsync("mcp");
        await lk.Peer.SetFaultsAsync(new { lie });

        var again = await lk.RunAsync("login", "mcp");
        var fresh = await lk.RunAsync("login", "fresh", "--resource", lk.Peer.Resource);

        foreach (var refused in new[] { again, fresh })
        {
            Assert.True(refused.ExitCode == 1, refused.ToString());
            Assert.Contains($"('{code}')", refused.Stderr, StringComparison.Ordinal);
            Assert.Contains(because, refused.Stderr, StringComparison.Ordinal);
            Assert.Contains("Nothing was changed", refused.Stderr, StringComparison.Ordinal);
        }

        Assert.Equal(before, await lk.SnapshotAsync("mcp"));
        Assert.Null(await lk.ReadAsync("fresh"));
        await lk.Peer.SetFaultsAsync(new { lie = string.Empty });
        Assert.Equal(0, (await lk.TokenAsync("mcp")).ExitCode); // the old grant still works
    }

    /// <summary>An answer with a wrong state is not this sign-in's answer (any local process can send one to the
    /// loopback listener, so it must not end the sign-in): it is ignored, the sign-in keeps waiting for the right
    /// one until its timeout, and nothing stored changes.</summary>
    [Fact]
    public async Task Login_ServerAnswersWithAWrongState_IgnoredWhileTheSignInWaitsAndNothingStoredChanges()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);
        await lk.LoginAsync("mcp", "--resource", lk.Peer.Resource);
        var before = await lk.SnapshotAsync("mcp");
        await lk.Peer.SetFaultsAsync(new { lie = "state_wrong" });
        File.Delete(lk.BrowserLog);

        using var login = System.Diagnostics.Process.Start(lk.StartInfo("login", "mcp"))!;
        login.StandardInput.Close();
        var stderr = login.StandardError.ReadToEndAsync();
        _ = login.StandardOutput.ReadToEndAsync();
        bool Delivered() => lk.ReadBrowserLog().Contains("delivered to", StringComparison.Ordinal);
        await RealTime.UntilAsync(() => Delivered() || login.HasExited, TimeSpan.FromSeconds(60));
        Assert.True(Delivered(), $"the browser never came back: {lk.ReadBrowserLog()}\n{(login.HasExited ? await stderr : string.Empty)}");

        Assert.Contains("/callback: 400", lk.ReadBrowserLog(), StringComparison.Ordinal);
        await RealTime.ForAsync(TimeSpan.FromMilliseconds(500)); // time for the login process to (wrongly) give up
        Assert.False(login.HasExited, "the wrong state ended the sign-in: " + (login.HasExited ? await stderr : string.Empty));
        NativeSignal.Terminate(login.Id); // the person gives up (Ctrl-C would do the same)
        await login.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.NotEqual(0, login.ExitCode);
        Assert.Contains("Ignored a request to the sign-in listener", await stderr, StringComparison.Ordinal);

        Assert.Equal(before, await lk.SnapshotAsync("mcp"));
        await lk.Peer.SetFaultsAsync(new { lie = string.Empty });
        Assert.Equal(0, (await lk.TokenAsync("mcp")).ExitCode); // the old grant still works
    }

    [Theory]
    [InlineData("--issuer", "http://as.example.com", 1, "('issuer_invalid')")]
    [InlineData("--resource", "http://api.example.com/mcp", 2, "--resource:")]
    public async Task Login_PlainHttpToAnotherHost_RefusedBeforeAnyRequest(string option, string url, int exitCode, string reason)
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);

        var refused = await lk.RunAsync("login", "far", option, url);

        Assert.Equal(exitCode, refused.ExitCode);
        Assert.Contains(reason, refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("plain http to another machine", refused.Stderr, StringComparison.Ordinal);
        Assert.Null(await lk.ReadAsync("far"));
    }

    [Fact]
    public async Task Login_RegistrationNeedsAnInitialAccessToken_ClearRegistrationError()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output, new Dictionary<string, string> { ["DCR_IAT"] = "iat-secret" });

        var refused = await lk.RunAsync("login", "mcp", "--resource", lk.Peer.Resource);

        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("('registration_failed')", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("--client-id", refused.Stderr, StringComparison.Ordinal);
        Assert.Null(await lk.ReadAsync("mcp"));
    }

    [Fact]
    public async Task Login_ResourceTheServerDoesNotServe_RefusedNamingInvalidTarget()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output, new Dictionary<string, string> { ["RESOURCE_UNKNOWN"] = "1" });

        var refused = await lk.RunAsync("login", "mcp", "--resource", lk.Peer.Resource);

        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("invalid_target", refused.Stderr, StringComparison.Ordinal);
        Assert.Null(await lk.ReadAsync("mcp"));
    }
}
