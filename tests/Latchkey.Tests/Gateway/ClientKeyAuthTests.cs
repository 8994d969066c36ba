using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Latchkey.Gateway;
using Latchkey.Store;
using Microsoft.AspNetCore.Http;

namespace Latchkey.Tests.Gateway;

/// <summary>
/// The client-key check: a value that is not a well-formed key never reaches the store; and finding the key: every
/// header that holds it, however it is written there, is among those removed before forwarding.
/// </summary>
public sealed class ClientKeyAuthTests
{
    /// <summary>What may stand before a key in a header value: nothing, a scheme word (space or tab), a parameter, quotes, a list.</summary>
    private static readonly string[] Before = ["", "Bearer ", "Bearer\t", "Bearer  ", "Basic ", "Key id=", "token=", "s=", "\"", "'", "a,", "a, ", "[", "{\"k\":\"", "xlk_", "lk_", "lk_lk_", "Bearer lk_x "];

    /// <summary>What may stand after it.</summary>
    private static readonly string[] After = ["", "\"", "'", "; path=/", ",b", ", b", " ", "\t", "}", "]", "lk_", "==", "x"];

    private static readonly string[] Names = ["X-Custom", "X-Session", "Cookie", "api-key", "Authorization", "x-api-key", "x-goog-api-key", "Proxy-Authorization", "anthropic-beta"];

    /// <summary>A valid key, and one header that holds it: in its value with text around it, among other values, or in its name.</summary>
    private static Gen<Spelled> KeySpellings() =>
        from key in Gen.Fresh(() => ClientKeyFormat.Generate().Value)
        from inName in Gen.Elements(false, false, false, true)
        from name in Gen.Elements(Names)
        from before in Gen.Elements(Before)
        from after in Gen.Elements(After)
        from alongside in Gen.Elements(false, true)
        select inName
            ? new Spelled(key, before.Length % 2 == 0 ? key : "x-" + key + "-y", ["1"])
            : new Spelled(key, name, alongside ? ["unrelated", before + key + after] : [before + key + after]);

    [Property(MaxTest = 2000)]
    public Property Find_KeyWrittenAnywhereInAnyHeader_EveryHeaderHoldingItIsRemoved() =>
        Prop.ForAll(Arb.From(KeySpellings()), spelled =>
        {
            var request = new DefaultHttpContext().Request;
            request.Headers["x-api-key"] = spelled.Key; // the agent presents its key where SDKs put it...
            request.Headers["anthropic-version"] = "2023-06-01";
            request.Headers.Append(spelled.Name, spelled.Values); // ...and holds it somewhere else as well

            var presented = ClientKeyAuth.Find(request);
            foreach (var header in presented?.Headers ?? [])
            {
                request.Headers.Remove(header);
            }

            var left = request.Headers.Where(h => h.Key.Contains(spelled.Key, StringComparison.Ordinal) || h.Value.Any(v => v!.Contains(spelled.Key, StringComparison.Ordinal))).Select(h => h.Key).ToList();
            return (presented is not null).Label("a key was found")
                .And((left.Count == 0).Label($"still holding the key: {string.Join(", ", left)}"))
                .And(request.Headers.ContainsKey("anthropic-version").Label("a header without a key is kept"));
        });

    [Theory]
    [InlineData("bulk_upload")]
    [InlineData("walk_lk_")]
    [InlineData("lk_abc")] // too short to be a key: not taken for one unless it stands where a key does
    [InlineData("lk_abcdefghijkl_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")] // one character short
    public void Find_ValueWithLkButNoKeyInAnOrdinaryPlace_KeptAndNotPresented(string value)
    {
        var request = new DefaultHttpContext().Request;
        request.Headers["X-Custom"] = "a=" + value;

        Assert.Null(ClientKeyAuth.Find(request));
    }

    [Theory]
    [InlineData("lk_")]
    [InlineData("lk_garbage")]
    [InlineData("lk_abcdefghijkl_tooshort")]
    [InlineData("lk_ABCDEFGHIJKL_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")] // id outside the key alphabet
    [InlineData("lk_abcdefghijkl_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!")]
    public async Task CheckAsync_MalformedKey_IsMalformedWithoutAStoreLookup(string presented)
    {
        var store = new CountingKeys();
        var auth = new ClientKeyAuth(store, TimeProvider.System, new GatewayOptions());

        var check = await auth.CheckAsync(presented, default);

        Assert.Equal(ClientKeyStatus.Malformed, check.Status);
        Assert.Equal(0, store.Lookups);
    }

    [Fact]
    public async Task CheckAsync_WellFormedKey_IsLookedUpOncePerCacheTime()
    {
        var store = new CountingKeys();
        var auth = new ClientKeyAuth(store, TimeProvider.System, new GatewayOptions { CacheTime = TimeSpan.FromMinutes(1) });
        var (value, _) = ClientKeyFormat.Generate();

        Assert.Equal(ClientKeyStatus.Unknown, (await auth.CheckAsync(value, default)).Status);
        Assert.Equal(ClientKeyStatus.Unknown, (await auth.CheckAsync(value, default)).Status);
        Assert.Equal(1, store.Lookups);
    }

    private sealed class CountingKeys : IClientKeyStore
    {
        public int Lookups { get; private set; }

        public Task<ClientKeyCheck> VerifyKeyAsync(string presented, CancellationToken cancellationToken)
        {
            Lookups++;
            return Task.FromResult(ClientKeyCheck.Unknown);
        }

        public Task<(ClientKey Key, string Value)?> CreateKeyAsync(string name, IReadOnlyList<string> credentials, DateTimeOffset? expiresAt, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<(ClientKey Key, string Value)?> CreateKeyAsync(string name, IReadOnlyList<string> credentials, DateTimeOffset? expiresAt, string? madeFor, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<(ClientKey Key, string Value)?> CreateKeyAsync(string name, IReadOnlyList<string> credentials, DateTimeOffset? expiresAt, string? madeFor, ClientKeyLimits? limits, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<(KeyLimitsOutcome Outcome, ClientKey? Key)> SetKeyLimitsAsync(string name, Func<ClientKeyLimits?, ClientKeyLimits?> change, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<IReadOnlyList<ClientKey>> ListKeysAsync(CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<bool> RevokeKeyAsync(string name, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<bool> DeleteKeyAsync(string name, CancellationToken cancellationToken) => throw new NotSupportedException();
    }

    /// <summary>A key and the header that holds it; shown in a failure with the key replaced, so no key reaches the test output.</summary>
    internal sealed record Spelled(string Key, string Name, string[] Values)
    {
        public override string ToString() =>
            $"{Name.Replace(Key, "<key>", StringComparison.Ordinal)}: {string.Join(" | ", Values.Select(v => v.Replace(Key, "<key>", StringComparison.Ordinal)))}";
    }
}
