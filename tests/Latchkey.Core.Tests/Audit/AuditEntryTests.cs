using Latchkey.Audit;

namespace Latchkey.Tests.Audit;

/// <summary>Every text column of an audit entry is bounded however the entry is made.</summary>
public sealed class AuditEntryTests
{
    private static readonly string Huge = new('x', 8192);

    [Fact]
    public void New_EightKilobyteValuesInEveryColumn_EachCutToItsBound()
    {
        var entry = new AuditEntry(DateTimeOffset.UnixEpoch, Huge, Huge, "/c/" + Huge, Huge, "/c/" + Huge, 401, null, 1, Huge, Huge);

        Assert.Equal(
            (AuditEntry.MaxNameLength, AuditEntry.MaxNameLength, AuditEntry.MaxRouteLength, AuditEntry.MaxMethodLength, AuditEntry.MaxPathLength, AuditEntry.MaxReasonLength, AuditEntry.MaxReplicaLength),
            (entry.ClientKey!.Length, entry.Credential!.Length, entry.Route.Length, entry.Method.Length, entry.Path.Length, entry.Reason!.Length, entry.Replica.Length));
    }

    [Fact]
    public void With_EightKilobyteValues_CutToo()
    {
        var entry = new AuditEntry(DateTimeOffset.UnixEpoch, "k", "c", "/c/c", "GET", "/c/c/x", 200, 200, 1, null, "h/1") with { Path = Huge, Credential = Huge };

        Assert.Equal((AuditEntry.MaxPathLength, AuditEntry.MaxNameLength), (entry.Path.Length, entry.Credential!.Length));
    }

    [Fact]
    public void New_ShortValues_KeptExactly()
    {
        var entry = new AuditEntry(DateTimeOffset.UnixEpoch, "ci-bot", "anthropic", "/c/anthropic", "POST", "/c/anthropic/v1/messages", 200, 200, 1, null, "gw/1");

        Assert.Equal(("ci-bot", "anthropic", "/c/anthropic", "POST", "/c/anthropic/v1/messages", null, "gw/1"), (entry.ClientKey, entry.Credential, entry.Route, entry.Method, entry.Path, entry.Reason, entry.Replica));
    }

    [Fact]
    public void Cut_AtASurrogatePair_NeverSplitsIt()
    {
        var text = new string('a', AuditEntry.MaxPathLength - 1) + "😀";

        var cut = new AuditEntry(DateTimeOffset.UnixEpoch, null, null, "/c/x", "GET", text, 200, null, 0, null, "h").Path;

        Assert.Equal(AuditEntry.MaxPathLength - 1, cut.Length);
        Assert.False(char.IsHighSurrogate(cut[^1]));
    }
}
