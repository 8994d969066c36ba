using System.Diagnostics;
using Latchkey.Tests.Peers;
using Microsoft.Data.Sqlite;
using Xunit.Abstractions;

namespace Latchkey.Tests.Tokens;

/// <summary>
/// The token engine across real OS processes against a real authorization server with single-use rotating
/// refresh tokens and reuse detection (oidc-provider revokes the whole grant when a consumed token is replayed):
/// many processes refreshing one expired grant at once, a long soak of short-lived tokens, a lost answer and a
/// refresher killed mid-refresh, with the server's own counters as the judge. docs/failure-modes.md explains each
/// failure these tests rule out.
/// </summary>
public sealed class RefreshRealServerTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Token_32ProcessesOnAnExpiredGrant_ExactlyOneRefreshAndEveryoneGetsTheSameValidToken()
    {
        const int processes = 32;
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);
        await lk.LoginExpiredAsync("mcp", "--resource", lk.Peer.Resource);
        var before = (await lk.ReadAsync("mcp"))!;
        await lk.Peer.ResetCountersAsync();
        await lk.Peer.SetFaultsAsync(new { delayMs = 1000 }); // the refresh takes a while: everyone piles up behind it

        var clock = Stopwatch.StartNew();
        var runs = await Task.WhenAll(Enumerable.Range(0, processes).Select(_ => Task.Run(() => lk.TokenAsync("mcp"))));
        output.WriteLine($"{processes} processes: {clock.Elapsed.TotalSeconds:0.0} s");

        var counters = await lk.Peer.CountersAsync();
        Assert.All(runs, r => Assert.True(r.ExitCode == 0, r.ToString()));
        Assert.Equal(1, counters.RefreshRequests);
        Assert.Equal(1, counters.Refresh);
        Assert.Equal(0, counters.RefreshError); // no invalid_grant, so no reuse detection either
        Assert.Equal(0, counters.Revoked);
        var token = Assert.Single(runs.Select(r => r.Token).Distinct());
        var introspected = await lk.Peer.IntrospectAsync(token!);
        Assert.True(introspected.GetProperty("active").GetBoolean(), introspected.ToString());
        Assert.Equal(lk.Peer.Resource, introspected.GetProperty("aud").GetString());
        var after = (await lk.ReadAsync("mcp"))!;
        Assert.NotEqual(before.RefreshTokenFingerprint, after.RefreshTokenFingerprint);
        Assert.True((await lk.Peer.IntrospectAsync(after.Secrets.RefreshToken!)).GetProperty("active").GetBoolean()); // the family is alive
        Assert.Equal(before.Version + 1, after.Version);
    }

    [Fact]
    public async Task Token_8ProcessesLoopingOn3GrantsWithA2SecondLifetime_NoInvalidGrantAndAboutOneRefreshPerLifetime()
    {
        var duration = TimeSpan.FromSeconds(30); // bench/refresh-storm.sh --soak runs the 60 s version
        const int workers = 8;
        string[] grants = ["g0", "g1", "g2"];
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output, new Dictionary<string, string> { ["AT_TTL"] = "2" });
        foreach (var g in grants)
        {
            await lk.LoginAsync(g, "--resource", lk.Peer.Resource);
        }

        await lk.Peer.ResetCountersAsync();
        var clock = Stopwatch.StartNew();
        var calls = 0;
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        await Task.WhenAll(Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
        {
            for (var i = w; clock.Elapsed < duration; i++)
            {
                var r = await lk.TokenAsync(grants[i % grants.Length]);
                Interlocked.Increment(ref calls);
                if (r.ExitCode != 0 || string.IsNullOrEmpty(r.Token))
                {
                    failures.Add($"{grants[i % grants.Length]}: {r}");
                }
            }
        })));
        var elapsed = clock.Elapsed;

        var counters = await lk.Peer.CountersAsync();
        var perGrant = counters.ByGrant.Values.Order().ToList();
        output.WriteLine($"{calls} token calls in {elapsed.TotalSeconds:0.0} s; refreshes per grant: {string.Join(", ", perGrant)}; ideal about {elapsed.TotalSeconds / 2:0} (elapsed / lifetime), refreshes happen at 75-85 % of it");
        Assert.Empty(failures);
        Assert.Equal(0, counters.RefreshError);
        Assert.Equal(0, counters.Revoked);
        Assert.Equal(counters.Refresh, counters.RefreshRequests);
        Assert.Equal(grants.Length, perGrant.Count);

        // A refresh commits refresh_after = sent + 75-85 % of 2 s, so one grant can never refresh more often than
        // every 1.5 s; and with callers always waiting, it refreshes at least once per expiry plus a generous slack.
        var most = (int)Math.Floor(elapsed.TotalSeconds / 1.5) + 1;
        var least = (int)Math.Floor(elapsed.TotalSeconds / 4);
        Assert.All(perGrant, n => Assert.InRange(n, least, most));
        foreach (var g in grants)
        {
            Assert.Contains((await lk.StatusAsync(g)).GetProperty("state").GetString(), new[] { "ok", "expiring" }); // a 2 s token is soon due again
        }
    }

    [Fact]
    public async Task Token_ServerRotatedButTheAnswerWasLost_OneDeliberateRetryThenNeedsAuthLostResponseRotation()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);
        await lk.LoginExpiredAsync("mcp", "--resource", lk.Peer.Resource);
        var before = (await lk.ReadAsync("mcp"))!;
        await lk.Peer.ResetCountersAsync();
        await lk.Peer.SetFaultsAsync(new { dropNextRefresh = true });

        var first = await lk.TokenAsync("mcp");
        var again = await lk.TokenAsync("mcp");
        var status = await lk.StatusAsync("mcp");

        // The server committed RT2 and the answer was lost. The retry with RT1 is a replay to this server (no grace
        // window), so it refuses and revokes the grant: the documented outcome is needs-auth with that reason.
        var counters = await lk.Peer.CountersAsync();
        Assert.Equal(2, counters.RefreshRequests); // the lost one and exactly one retry: no loop
        Assert.Equal(1, counters.Refresh);
        Assert.Equal(1, counters.RefreshError);
        Assert.Equal(3, first.ExitCode);
        Assert.Equal(3, again.ExitCode);
        Assert.Contains("answer was lost", first.Stderr, StringComparison.Ordinal);
        Assert.Contains("latchkey login mcp", first.Stderr, StringComparison.Ordinal);
        Assert.Equal("needs-auth", status.GetProperty("state").GetString());
        Assert.Equal("lost_response_rotation", status.GetProperty("reason").GetProperty("code").GetString());
        var after = (await lk.ReadAsync("mcp"))!;
        Assert.Equal(before.Secrets.RefreshToken, after.Secrets.RefreshToken); // explained, never blanked
        Assert.Equal(before.Secrets.AccessToken, after.Secrets.AccessToken);
    }

    [Fact]
    public async Task Token_AnswerLostBeforeTheServerCommitted_DeliberateRetrySucceedsAndNobodySignsIn()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);
        await lk.LoginExpiredAsync("mcp", "--resource", lk.Peer.Resource);
        var before = (await lk.ReadAsync("mcp"))!;
        await lk.Peer.ResetCountersAsync();
        await lk.Peer.SetFaultsAsync(new { dropNextRefreshBeforeCommit = true });

        var token = await lk.TokenAsync("mcp");

        var counters = await lk.Peer.CountersAsync();
        Assert.True(token.ExitCode == 0, token.ToString());
        Assert.Equal(2, counters.RefreshRequests);
        Assert.Equal(1, counters.Refresh);
        Assert.Equal(0, counters.RefreshError);
        var after = (await lk.ReadAsync("mcp"))!;
        Assert.NotEqual(before.RefreshTokenFingerprint, after.RefreshTokenFingerprint);
        Assert.True((await lk.Peer.IntrospectAsync(after.Secrets.RefreshToken!)).GetProperty("active").GetBoolean());
        Assert.Equal("ok", (await lk.StatusAsync("mcp")).GetProperty("state").GetString());
    }

    [Fact]
    public async Task Token_RefresherKilledAfterTheServerAnsweredBeforeItSaved_OthersRecoverOnceWithTheDocumentedOutcome()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);
        await lk.LoginExpiredAsync("mcp", "--resource", lk.Peer.Resource);
        var before = (await lk.ReadAsync("mcp"))!;
        await lk.Peer.ResetCountersAsync();
        await lk.Peer.SetFaultsAsync(new { holdNextRefresh = true });

        // The refresher sends; the server rotates and holds the answer; the refresher is killed with SIGKILL.
        using var refresher = Process.Start(lk.StartInfo("token", "mcp"))!;
        refresher.StandardInput.Close();
        Assert.True(await RealTime.UntilAsync(async () => (await lk.Peer.CountersAsync()).Held > 0, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(50)), "the refresh never reached the server");

        refresher.Kill(); // SIGKILL: no finally blocks, no lease release, the attempt marker stays
        await refresher.WaitForExitAsync();
        await lk.Peer.SetFaultsAsync(new { release = true });
        var stranded = (await lk.ReadAsync("mcp"))!;
        Assert.NotNull(stranded.Coordination.Attempt);
        Assert.NotNull(stranded.Coordination.Lease.Owner);

        // Four others arrive together: the dead holder's lease is free, one of them recovers, the rest adopt.
        var others = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => lk.TokenAsync("mcp"))));
        var status = await lk.StatusAsync("mcp");

        var counters = await lk.Peer.CountersAsync();
        Assert.Equal(2, counters.RefreshRequests); // the killed one's, then exactly one deliberate retry
        Assert.Equal(1, counters.Refresh);
        Assert.Equal(1, counters.RefreshError); // this server has no grace window: the retry is a replay
        Assert.All(others, r => Assert.True(r.ExitCode == 3, r.ToString()));
        Assert.All(others, r => Assert.Contains("needs sign-in", r.Stderr, StringComparison.Ordinal));
        Assert.Equal("needs-auth", status.GetProperty("state").GetString());
        var reason = status.GetProperty("reason");
        Assert.Equal("lost_response_rotation", reason.GetProperty("code").GetString());
        Assert.Equal("latchkey login mcp", reason.GetProperty("fix").GetString());
        var after = (await lk.ReadAsync("mcp"))!;
        Assert.Null(after.Coordination.Attempt);
        Assert.Equal(before.Secrets.RefreshToken, after.Secrets.RefreshToken);
    }

    [Fact]
    public async Task Token_ServerBrieflyUnavailable_CredentialKeptBackoffSharedThenTheNextCallRefreshes()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);
        await lk.LoginExpiredAsync("mcp", "--resource", lk.Peer.Resource);
        var before = (await lk.ReadAsync("mcp"))!;
        await lk.Peer.ResetCountersAsync();
        await lk.Peer.SetFaultsAsync(new { failNext = 1 });

        var during = await lk.TokenAsync("mcp");
        var status = await lk.StatusAsync("mcp");
        var kept = (await lk.ReadAsync("mcp"))!;
        await RealTime.PastAsync(kept.Coordination.BackoffUntil!.Value, TimeSpan.FromMilliseconds(200)); // the backoff the processes share, on the real clock
        var later = await lk.TokenAsync("mcp");

        Assert.Equal(1, during.ExitCode); // retryable, not "needs sign-in"
        Assert.DoesNotContain("needs sign-in", during.Stderr, StringComparison.Ordinal);
        Assert.Contains(status.GetProperty("state").GetString(), new[] { "ok", "expiring" }); // never needs-auth
        Assert.Equal("refresh_failed", status.GetProperty("last_error").GetProperty("code").GetString());
        Assert.Contains("temporarily_unavailable", status.GetProperty("last_error").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(before.Secrets.RefreshToken, kept.Secrets.RefreshToken);
        Assert.Equal(before.Version, kept.Version);
        Assert.True(later.ExitCode == 0, later.ToString());
        var counters = await lk.Peer.CountersAsync();
        Assert.Equal(2, counters.TokenRequests);
        Assert.Equal(1, counters.Refresh);
    }

    [Fact]
    public async Task Token_ServerDoesNotRotate_RefreshTokenKeptAndRefreshesKeepWorking()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output, new Dictionary<string, string> { ["ROTATE"] = "0" });
        await lk.LoginExpiredAsync("mcp", "--resource", lk.Peer.Resource);
        var before = (await lk.ReadAsync("mcp"))!;
        await lk.Peer.SetFaultsAsync(new { atTtl = 2 });

        var first = await lk.TokenAsync("mcp");
        await lk.UntilExpiredAsync("mcp");
        var second = await lk.TokenAsync("mcp");

        Assert.True(first.ExitCode == 0 && second.ExitCode == 0, $"{first}\n{second}");
        Assert.NotEqual(first.Token, second.Token);
        var after = (await lk.ReadAsync("mcp"))!;
        Assert.Equal(before.RefreshTokenFingerprint, after.RefreshTokenFingerprint);
        Assert.Equal(before.Secrets.RefreshToken, after.Secrets.RefreshToken);
        var counters = await lk.Peer.CountersAsync();
        Assert.Equal((2, 0), (counters.Refresh, counters.RefreshError));
    }

    [Fact]
    public async Task Token_RefresherOnAnotherHostWentSilentAfterTheServerAnswered_OthersTakeOverOnlyWhenItsLeaseExpires()
    {
        await using var lk = await LatchkeyAgainstPeer.StartAsync(output);
        await lk.LoginExpiredAsync("mcp", "--resource", lk.Peer.Resource);
        await lk.Peer.ResetCountersAsync();
        await lk.Peer.SetFaultsAsync(new { holdNextRefresh = true });
        using (var refresher = Process.Start(lk.StartInfo("token", "mcp"))!)
        {
            refresher.StandardInput.Close();
            Assert.True(await RealTime.UntilAsync(async () => (await lk.Peer.CountersAsync()).Held > 0, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(50)), "the refresh never reached the server");

            refresher.Kill();
            await refresher.WaitForExitAsync();
        }

        await lk.Peer.SetFaultsAsync(new { release = true });

        // Make the stranded lease and marker look like another machine's (so its death cannot be proven): the
        // lease runs 3 more seconds, and the attempt will then be older than the lease duration (90 s).
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        using (var connection = new SqliteConnection($"Data Source={Path.Combine(lk.Home, "latchkey.db")};Pooling=False"))
        {
            connection.Open();
            using var update = connection.CreateCommand();
            update.CommandText = "UPDATE credential SET lease_owner = $o, attempt_owner = $o, lease_until = $until, attempt_sent_at = $sent WHERE name = 'mcp'";
            update.Parameters.AddWithValue("$o", "another-host/another-boot/4242/1/feedface");
            update.Parameters.AddWithValue("$until", now + 3_000);
            update.Parameters.AddWithValue("$sent", now - 89_000);
            Assert.Equal(1, update.ExecuteNonQuery());
        }

        var clock = Stopwatch.StartNew();
        var others = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => lk.TokenAsync("mcp"))));
        output.WriteLine($"the others finished after {clock.Elapsed.TotalSeconds:0.0} s");

        var counters = await lk.Peer.CountersAsync();
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(2.5), "a live lease was taken over"); // they waited for it
        Assert.Equal(2, counters.RefreshRequests); // the silent one's, then exactly one deliberate retry
        Assert.All(others, r => Assert.True(r.ExitCode == 3, r.ToString()));
        var reason = (await lk.StatusAsync("mcp")).GetProperty("reason");
        Assert.Equal("lost_response_rotation", reason.GetProperty("code").GetString());
        Assert.Null((await lk.ReadAsync("mcp"))!.Coordination.Lease.Owner);
    }
}
