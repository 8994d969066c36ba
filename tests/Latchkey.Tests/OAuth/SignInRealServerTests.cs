using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Latchkey.Tests.Peers;
using Xunit.Abstractions;

namespace Latchkey.Tests.OAuth;

/// <summary>
/// <c>latchkey login</c>, <c>token</c> and <c>logout</c> as OS processes against a real authorization server
/// (npm oidc-provider): discovery, every way to get a client, PKCE, resource indicators, the device flow, client
/// credentials, revocation and refresh-token rotation with reuse detection.
/// </summary>
public sealed class SignInRealServerTests(ITestOutputHelper output)
{
    private const string Canary = "CANARY-client-secret-7d1e0b";
    private const string Cimd = "https://client.example/latchkey";

    [Fact]
    public async Task Login_DynamicRegistrationWithResource_JwtAccessTokenForThatAudience()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);

        await lk.LoginAsync("mcp", "--resource", lk.Peer.Resource);
        var token = await lk.TokenAsync("mcp");

        Assert.True(token.ExitCode == 0, token.ToString());
        var claims = LatchkeyAgainstPeer.JwtPayload(token.Token!);
        Assert.Equal(lk.Peer.Resource, claims.GetProperty("aud").GetString());
        Assert.Equal(lk.Peer.Issuer, claims.GetProperty("iss").GetString());
        Assert.Contains("mcp:tools", claims.GetProperty("scope").GetString()!.Split(' '));
        var introspected = await lk.Peer.IntrospectAsync(token.Token!);
        Assert.True(introspected.GetProperty("active").GetBoolean(), introspected.ToString());
        Assert.Equal("at+jwt", introspected.GetProperty("typ").GetString());
        var record = (await lk.ReadAsync("mcp"))!;
        Assert.Equal("dcr", record.Metadata.Client!.Source);
        Assert.Equal(claims.GetProperty("client_id").GetString(), record.Metadata.Client.ClientId);
        Assert.Equal(lk.Peer.Resource, record.Metadata.Resource);
        Assert.NotNull(record.Secrets.RefreshToken);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("1")]
    public async Task Login_PathIssuer_DiscoveredAtItsPathAndEveryEndpointUnderIt(string rfc8414Alias)
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output, new Dictionary<string, string> { ["ISSUER_PATH"] = "/tenant1", ["RFC8414_ALIAS"] = rfc8414Alias });
        Assert.EndsWith("/tenant1", lk.Peer.Issuer, StringComparison.Ordinal);

        await lk.LoginAsync("tenant", "--resource", lk.Peer.Resource);
        // Without a resource nothing names a scope, and this server grants nothing for no scope: ask for one.
        await lk.LoginAsync("tenant-by-issuer", "--issuer", lk.Peer.Issuer, "--scope", "openid");

        foreach (var name in new[] { "tenant", "tenant-by-issuer" })
        {
            var record = (await lk.ReadAsync(name))!;
            Assert.Equal(lk.Peer.Issuer, record.Metadata.Issuer);
            Assert.StartsWith(lk.Peer.Issuer + "/", record.Metadata.TokenEndpoint, StringComparison.Ordinal);
            Assert.StartsWith(lk.Peer.Issuer + "/", record.Metadata.RevocationEndpoint, StringComparison.Ordinal);
            Assert.Equal(0, (await lk.TokenAsync(name)).ExitCode);
        }

        Assert.Equal(lk.Peer.Issuer, LatchkeyAgainstPeer.JwtPayload((await lk.TokenAsync("tenant")).Token!).GetProperty("iss").GetString());

        // The MCP order for a path issuer: RFC 8414 path-inserted, OIDC path-inserted, then OIDC path-appended.
        var asked = (await lk.Peer.CountersAsync()).WellKnown;
        output.WriteLine(string.Join(", ", asked.Select(a => $"{a.Key} x{a.Value}")));
        if (rfc8414Alias == "1")
        {
            Assert.Equal(2, asked.GetValueOrDefault("200 /.well-known/oauth-authorization-server/tenant1"));
            Assert.DoesNotContain(asked.Keys, k => k.Contains("openid-configuration", StringComparison.Ordinal));
        }
        else
        {
            Assert.Equal(2, asked.GetValueOrDefault("404 /.well-known/oauth-authorization-server/tenant1"));
            Assert.Equal(2, asked.GetValueOrDefault("404 /.well-known/openid-configuration/tenant1"));
            Assert.Equal(2, asked.GetValueOrDefault("200 /tenant1/.well-known/openid-configuration"));
        }
    }

    [Fact]
    public async Task Login_ClientMetadataDocument_ClientIdIsTheDocumentUrl()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);

        await lk.LoginAsync("cimd", "--resource", lk.Peer.Resource, "--client-metadata-url", Cimd);

        var record = (await lk.ReadAsync("cimd"))!;
        Assert.Equal("cimd", record.Metadata.Client!.Source);
        Assert.Equal(Cimd, record.Metadata.Client.ClientId);
        var token = await lk.TokenAsync("cimd");
        Assert.Equal(Cimd, LatchkeyAgainstPeer.JwtPayload(token.Token!).GetProperty("client_id").GetString());
    }

    [Fact]
    public async Task Login_ClientMetadataDocumentOverPlainHttp_RefusedBeforeTheServerIsAsked()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);

        var refused = await lk.RunAsync("login", "cimd", "--resource", lk.Peer.Resource, "--client-metadata-url", "http://client.example/latchkey");

        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("('cimd_invalid')", refused.Stderr, StringComparison.Ordinal);
        Assert.Null(await lk.ReadAsync("cimd"));
        Assert.Equal(0, (await lk.Peer.CountersAsync()).TokenRequests);
    }

    [Theory]
    [InlineData("client_secret_basic")]
    [InlineData("client_secret_post")]
    public async Task Login_PreRegisteredClientWithSecretOnStdin_SignsInAndSecretNeverShownOrStoredInClear(string method)
    {
        var clients = JsonSerializer.Serialize(new[]
        {
            new Dictionary<string, object>
            {
                ["client_id"] = "latchkey-pre", ["client_secret"] = Canary, ["token_endpoint_auth_method"] = method,
                ["application_type"] = "native", ["redirect_uris"] = new[] { "http://127.0.0.1/callback" },
                ["grant_types"] = new[] { "authorization_code", "refresh_token" }, ["response_types"] = new[] { "code" },
            },
        });
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output, new Dictionary<string, string> { ["CLIENTS"] = clients, ["AT_TTL"] = "2" });

        var login = await lk.RunWithInputAsync(Canary + "\n", "login", "pre", "--resource", lk.Peer.Resource, "--client-id", "latchkey-pre", "--client-secret-stdin", "--client-auth", method);
        Assert.True(login.ExitCode == 0, $"{login}\n{lk.ReadBrowserLog()}");
        await lk.UntilExpiredAsync("pre"); // the token is due: the refresh authenticates with the stored secret
        var token = await lk.TokenAsync("pre");
        var status = await lk.RunAsync("status", "pre", "--json");

        Assert.True(token.ExitCode == 0, token.ToString());
        Assert.Equal(1, (await lk.Peer.CountersAsync()).Refresh);
        var record = (await lk.ReadAsync("pre"))!;
        Assert.Equal(("preregistered", method), (record.Metadata.Client!.Source, record.Metadata.Client.AuthMethod));
        Assert.Equal("latchkey-pre", LatchkeyAgainstPeer.JwtPayload(token.Token!).GetProperty("client_id").GetString());
        Assert.DoesNotContain("CANARY", login.All + token.Stderr + status.All, StringComparison.Ordinal);
        foreach (var file in Directory.GetFiles(lk.Home))
        {
            Assert.Equal(-1, (await File.ReadAllBytesAsync(file)).AsSpan().IndexOf("CANARY"u8));
        }
    }

    [Fact]
    public async Task Login_ServerEnforcesPkce_RequestWithoutPkceRefusedAndLatchkeySignsInWithS256()
    {
        var clients = JsonSerializer.Serialize(new[]
        {
            new Dictionary<string, object>
            {
                ["client_id"] = "public-native", ["token_endpoint_auth_method"] = "none", ["application_type"] = "native",
                ["redirect_uris"] = new[] { "http://127.0.0.1/callback" }, ["grant_types"] = new[] { "authorization_code", "refresh_token" }, ["response_types"] = new[] { "code" },
            },
        });
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output, new Dictionary<string, string> { ["CLIENTS"] = clients });
        const string redirect = "http://127.0.0.1:9/callback";
        var withoutPkce = new Uri($"{lk.Peer.Issuer}/auth?response_type=code&client_id=public-native&redirect_uri={Uri.EscapeDataString(redirect)}&state=s1&resource={Uri.EscapeDataString(lk.Peer.Resource)}&scope=mcp%3Atools");

        using var browser = new CookieBrowser(output.WriteLine) { StopPrefix = redirect };
        var (answer, _) = await browser.WalkAsync(withoutPkce, CancellationToken.None);
        var query = System.Web.HttpUtility.ParseQueryString(answer.Query);
        await lk.LoginAsync("pkce", "--resource", lk.Peer.Resource, "--client-id", "public-native");

        Assert.Equal("invalid_request", query["error"]);
        Assert.Contains("PKCE", query["error_description"], StringComparison.Ordinal);
        Assert.Null(query["code"]);
        Assert.Equal(0, (await lk.TokenAsync("pkce")).ExitCode);
    }

    [Fact]
    public async Task Login_Device_UserApprovesOnAnotherDevice_GrantStoredWithResourceAudience()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);
        var info = lk.StartInfo("login", "tv", "--resource", lk.Peer.Resource, "--device");
        info.Environment.Remove("LATCHKEY_BROWSER"); // the device flow never opens a browser here
        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = new StringBuilder();
        string? complete = null;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (complete is null && await process.StandardError.ReadLineAsync(timeout.Token) is { } line)
        {
            stderr.AppendLine(line);
            if (line.StartsWith("Or open: ", StringComparison.Ordinal))
            {
                complete = line["Or open: ".Length..].Trim();
            }
        }

        Assert.True(complete is not null, stderr.ToString());

        // The user side, on "another device": open the complete URL, confirm, sign in, consent.
        using (var phone = new CookieBrowser(output.WriteLine) { StopText = "Sign-in Success" })
        {
            var (_, page) = await phone.WalkAsync(new Uri(complete), timeout.Token);
            Assert.Contains("Sign-in Success", page, StringComparison.Ordinal);
        }

        var rest = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        output.WriteLine(stderr + await rest + await stdout);
        Assert.Equal(0, process.ExitCode);
        var token = await lk.TokenAsync("tv");
        Assert.Equal(lk.Peer.Resource, LatchkeyAgainstPeer.JwtPayload(token.Token!).GetProperty("aud").GetString());
        var record = (await lk.ReadAsync("tv"))!;
        Assert.NotNull(record.Secrets.RefreshToken);
        Assert.Equal("dcr", record.Metadata.Client!.Source);
    }

    [Fact]
    public async Task Login_ClientCredentials_MachineTokenForTheResourceAndGrantRerunWhenDue()
    {
        var clients = JsonSerializer.Serialize(new[]
        {
            new Dictionary<string, object>
            {
                ["client_id"] = "machine", ["client_secret"] = Canary, ["token_endpoint_auth_method"] = "client_secret_basic",
                ["grant_types"] = new[] { "client_credentials" }, ["response_types"] = Array.Empty<string>(), ["redirect_uris"] = Array.Empty<string>(),
            },
        });
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output, new Dictionary<string, string> { ["CLIENTS"] = clients, ["AT_TTL"] = "2" });

        var login = await lk.RunWithInputAsync(Canary + "\n", "login", "m2m", "--resource", lk.Peer.Resource, "--client-credentials", "--client-id", "machine", "--client-secret-stdin");
        Assert.True(login.ExitCode == 0, login.ToString());
        var first = await lk.TokenAsync("m2m");
        await lk.UntilExpiredAsync("m2m");
        var second = await lk.TokenAsync("m2m");

        Assert.True(first.ExitCode == 0 && second.ExitCode == 0, $"{first}\n{second}");
        Assert.NotEqual(first.Token, second.Token);
        var claims = LatchkeyAgainstPeer.JwtPayload(second.Token!);
        Assert.Equal(lk.Peer.Resource, claims.GetProperty("aud").GetString());
        Assert.Equal("machine", claims.GetProperty("client_id").GetString());
        var counters = await lk.Peer.CountersAsync();
        Assert.Equal(2, counters.TokenRequests); // the sign-in, then one rerun when the token was due
        Assert.Equal(0, counters.RefreshRequests);
        Assert.Null((await lk.ReadAsync("m2m"))!.Secrets.RefreshToken);
        Assert.DoesNotContain("CANARY", login.All + first.Stderr + second.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Logout_SignedIn_RefreshTokenRevokedAtTheServerThenRecordRemoved()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);
        await lk.LoginAsync("mcp", "--resource", lk.Peer.Resource);
        var refreshToken = (await lk.ReadAsync("mcp"))!.Secrets.RefreshToken!;
        Assert.True((await lk.Peer.IntrospectAsync(refreshToken)).GetProperty("active").GetBoolean());

        var logout = await lk.RunAsync("logout", "mcp");

        Assert.Equal(0, logout.ExitCode);
        Assert.Contains("its grant was revoked", logout.Stdout, StringComparison.Ordinal);
        var after = await lk.Peer.IntrospectAsync(refreshToken);
        Assert.False(after.GetProperty("active").GetBoolean(), after.ToString());
        Assert.True((await lk.Peer.CountersAsync()).Revoked >= 1);
        Assert.Null(await lk.ReadAsync("mcp"));
        Assert.Equal(4, (await lk.TokenAsync("mcp")).ExitCode);
    }

    [Fact]
    public async Task Refresh_RotationWithReuseDetection_ReplayOfTheOldTokenRevokesTheGrantAndNeedsAuthSaysInvalidGrant()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);
        await lk.LoginExpiredAsync("mcp", "--resource", lk.Peer.Resource);
        var before = (await lk.ReadAsync("mcp"))!;

        await lk.Peer.SetFaultsAsync(new { atTtl = 2 });
        var refreshed = await lk.TokenAsync("mcp");
        var after = (await lk.ReadAsync("mcp"))!;

        Assert.Equal(0, refreshed.ExitCode);
        Assert.NotEqual(before.RefreshTokenFingerprint, after.RefreshTokenFingerprint); // rotated, and the rotation stored
        Assert.True((await lk.Peer.IntrospectAsync(before.Secrets.RefreshToken!)).GetProperty("consumed").GetBoolean());
        Assert.True((await lk.Peer.IntrospectAsync(after.Secrets.RefreshToken!)).GetProperty("active").GetBoolean());

        // Someone replays the consumed token: the server refuses it and revokes the whole grant, RT2 included.
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        using var replay = await http.PostAsync(new Uri(after.Metadata.TokenEndpoint!), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "refresh_token", ["refresh_token"] = before.Secrets.RefreshToken!, ["client_id"] = after.Metadata.Client!.ClientId, ["resource"] = lk.Peer.Resource,
        }));
        Assert.Equal(HttpStatusCode.BadRequest, replay.StatusCode);
        Assert.Contains("invalid_grant", await replay.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False((await lk.Peer.IntrospectAsync(after.Secrets.RefreshToken!)).GetProperty("active").GetBoolean());

        await lk.UntilExpiredAsync("mcp"); // AT2 is due: the next refresh presents RT2, which is dead now
        var refused = await lk.TokenAsync("mcp");
        var status = await lk.StatusAsync("mcp");

        Assert.Equal(3, refused.ExitCode);
        Assert.Contains("needs sign-in", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("latchkey login mcp", refused.Stderr, StringComparison.Ordinal);
        Assert.Equal("needs-auth", status.GetProperty("state").GetString());
        Assert.Equal("invalid_grant", status.GetProperty("reason").GetProperty("code").GetString());
        Assert.Contains("invalid_grant", status.GetProperty("reason").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(after.Secrets.RefreshToken, (await lk.ReadAsync("mcp"))!.Secrets.RefreshToken); // kept, never blanked
    }

    [Fact]
    public async Task Login_8ConcurrentSignIns_EveryGrantBoundToItsOwnRegistration()
    {
        const int signIns = 8;
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);

        var results = await Task.WhenAll(Enumerable.Range(0, signIns).Select(i => Task.Run(() => lk.RunAsync("login", $"s{i}", "--resource", lk.Peer.Resource))));

        Assert.All(results, r => Assert.True(r.ExitCode == 0, $"{r}\n{lk.ReadBrowserLog()}"));
        var clients = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < signIns; i++)
        {
            var record = (await lk.ReadAsync($"s{i}"))!;
            var clientId = record.Metadata.Client!.ClientId;
            Assert.True(clients.Add(clientId), $"two grants share the client {clientId}");
            var token = await lk.TokenAsync($"s{i}");
            Assert.Equal(clientId, LatchkeyAgainstPeer.JwtPayload(token.Token!).GetProperty("client_id").GetString());
            var refresh = await lk.Peer.IntrospectAsync(record.Secrets.RefreshToken!);
            Assert.True(refresh.GetProperty("active").GetBoolean());
            Assert.Equal(clientId, refresh.GetProperty("client_id").GetString()); // the RT belongs to the stored client
        }
    }

    [Fact]
    public async Task Login_KilledWhileWaitingForTheBrowser_OldGrantIntactAndUsable()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);
        await lk.LoginAsync("mcp", "--resource", lk.Peer.Resource);
        var before = await lk.SnapshotAsync("mcp");

        var info = lk.StartInfo("login", "mcp");
        info.Environment["LATCHKEY_BROWSER"] = "true"; // a browser that opens nothing: nobody ever comes back
        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (await process.StandardError.ReadLineAsync(timeout.Token) is { } line && !line.Contains("/auth?", StringComparison.Ordinal))
        {
        }

        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync(timeout.Token);

        Assert.Equal(before, await lk.SnapshotAsync("mcp"));
        Assert.Equal(0, (await lk.TokenAsync("mcp")).ExitCode);
    }

    [Fact]
    public async Task Login_AgainWithAnotherScope_StepUpAsksForTheUnionSwapsTheGrantThenRevokesTheOldRefreshToken()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);
        await lk.LoginAsync("mcp", "--resource", lk.Peer.Resource);
        var before = (await lk.ReadAsync("mcp"))!;

        await lk.LoginAsync("mcp", "--scope", "mcp:admin");

        var after = (await lk.ReadAsync("mcp"))!;
        Assert.Equal(before.Metadata.Client!.ClientId, after.Metadata.Client!.ClientId); // the stored registration is reused
        Assert.Equal(["mcp:admin", "mcp:tools", "offline_access"], after.Metadata.ScopesRequested.Order(StringComparer.Ordinal));
        Assert.Equal(["mcp:admin", "mcp:tools"], after.Metadata.ScopesGranted.Order(StringComparer.Ordinal));
        var scopes = LatchkeyAgainstPeer.JwtPayload((await lk.TokenAsync("mcp")).Token!).GetProperty("scope").GetString()!.Split(' ');
        Assert.Contains("mcp:admin", scopes);
        Assert.Contains("mcp:tools", scopes);
        Assert.False((await lk.Peer.IntrospectAsync(before.Secrets.RefreshToken!)).GetProperty("active").GetBoolean()); // retired after the swap
        Assert.True((await lk.Peer.IntrospectAsync(after.Secrets.RefreshToken!)).GetProperty("active").GetBoolean());
        Assert.Equal("ok", (await lk.StatusAsync("mcp")).GetProperty("state").GetString());
    }

    [Fact]
    public async Task Login_TwoAccountsOnOneServer_RefreshAndLogoutOfOneLeaveTheOtherUntouched()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);
        await lk.Peer.SetFaultsAsync(new { user = "alice", atTtl = 2 });
        await lk.LoginAsync("alice", "--resource", lk.Peer.Resource);
        await lk.Peer.SetFaultsAsync(new { user = "bob", atTtl = 300 });
        await lk.LoginAsync("bob", "--resource", lk.Peer.Resource);
        var bob = await lk.SnapshotAsync("bob");
        var bobRefresh = (await lk.ReadAsync("bob"))!.Secrets.RefreshToken!;

        await lk.UntilExpiredAsync("alice"); // alice's token is due: her refresh must not touch bob
        var aliceToken = await lk.TokenAsync("alice");
        var bobToken = await lk.TokenAsync("bob");
        Assert.Equal("alice", LatchkeyAgainstPeer.JwtPayload(aliceToken.Token!).GetProperty("sub").GetString());
        Assert.Equal("bob", LatchkeyAgainstPeer.JwtPayload(bobToken.Token!).GetProperty("sub").GetString());
        Assert.Equal(1, (await lk.Peer.CountersAsync()).Refresh);
        Assert.Equal(bob, await lk.SnapshotAsync("bob"));

        Assert.Equal(0, (await lk.RunAsync("logout", "alice")).ExitCode);

        Assert.Equal(bob, await lk.SnapshotAsync("bob"));
        var introspected = await lk.Peer.IntrospectAsync(bobRefresh);
        Assert.True(introspected.GetProperty("active").GetBoolean(), introspected.ToString());
        Assert.Equal("bob", introspected.GetProperty("sub").GetString());
        Assert.Equal(0, (await lk.TokenAsync("bob")).ExitCode);
    }

    [Fact]
    public async Task Login_OpaqueAccessTokens_NoClientChangeAndTheServerKnowsTheToken()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output, new Dictionary<string, string> { ["AT_FORMAT"] = "opaque" });

        await lk.LoginAsync("mcp", "--resource", lk.Peer.Resource);
        var token = await lk.TokenAsync("mcp");

        Assert.Equal(0, token.ExitCode);
        Assert.DoesNotContain('.', token.Token!);
        var introspected = await lk.Peer.IntrospectAsync(token.Token!);
        Assert.True(introspected.GetProperty("active").GetBoolean(), introspected.ToString());
        Assert.Equal("AccessToken", introspected.GetProperty("kind").GetString());
    }

    [Fact]
    public async Task Commands_RealTokensAfterLoginAndRefresh_NeverInAnyOutputOrInTheStoreFilesInClear()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output, new Dictionary<string, string> { ["AT_TTL"] = "2" });
        var outputs = new List<Processes.Result> { await lk.RunAsync("login", "mcp", "--resource", lk.Peer.Resource) };
        await lk.UntilExpiredAsync("mcp");
        var token = await lk.TokenAsync("mcp"); // a refresh: new tokens written
        var record = (await lk.ReadAsync("mcp"))!;
        outputs.Add(await lk.RunAsync("status"));
        outputs.Add(await lk.RunAsync("status", "mcp", "--json"));
        outputs.Add(await lk.RunAsync("list", "--json"));
        outputs.Add(await lk.RunAsync("history", "mcp"));
        outputs.Add(await lk.RunAsync("doctor"));

        string[] secrets = [record.Secrets.AccessToken!, record.Secrets.RefreshToken!];
        Assert.Equal(record.Secrets.AccessToken, token.Token);
        foreach (var secret in secrets)
        {
            Assert.All(outputs, o => Assert.DoesNotContain(secret, o.All, StringComparison.Ordinal));
            Assert.DoesNotContain(secret, token.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, lk.ReadBrowserLog(), StringComparison.Ordinal);
            foreach (var file in Directory.GetFiles(lk.Home))
            {
                Assert.Equal(-1, (await File.ReadAllBytesAsync(file)).AsSpan().IndexOf(System.Text.Encoding.UTF8.GetBytes(secret)));
            }
        }
    }
}
