using FsCheck;
using FsCheck.Xunit;
using Latchkey.Store;

namespace Latchkey.Tests.Store;

/// <summary>A partial update never erases what it does not name, so a token response that leaves a field out
/// cannot erase it.</summary>
public sealed class CredentialPatchTests
{
    private static readonly CredentialMetadata Stored = new()
    {
        Upstream = "https://up.example",
        Issuer = "https://issuer.example",
        Client = new ClientRegistration("c1", "dcr", "none"),
        Resource = "https://rs.example",
        ScopesRequested = ["a", "b"],
        ScopesGranted = ["a"],
        ExpiresAt = DateTimeOffset.UnixEpoch.AddDays(1),
        RefreshAfter = DateTimeOffset.UnixEpoch.AddHours(20),
        ObtainedAt = DateTimeOffset.UnixEpoch,
    };

    private static readonly CredentialSecrets StoredSecrets = new() { AccessToken = "at", RefreshToken = "rt", ClientSecret = "cs", IdToken = "id" };

    /// <summary>Every subset of the fields a token response can carry: bit i set means field i is present.</summary>
    [Property(MaxTest = 256)]
    public bool ApplyTo_AnySubsetOfFields_KeepsEveryFieldNotInThePatch(byte mask)
    {
        bool Has(int bit) => (mask & (1 << bit)) != 0;
        var patch = new CredentialPatch
        {
            AccessToken = Has(0) ? "at2" : null,
            RefreshToken = Has(1) ? "rt2" : null,
            ScopesGranted = Has(2) ? ["a", "b"] : null,
            IdToken = Has(4) ? "id2" : null,
            Metadata = m => m with
            {
                ExpiresAt = Has(3) ? DateTimeOffset.UnixEpoch.AddDays(2) : m.ExpiresAt,
                RefreshAfter = Has(5) ? DateTimeOffset.UnixEpoch.AddDays(1.5) : m.RefreshAfter,
                ObtainedAt = Has(6) ? DateTimeOffset.UnixEpoch.AddDays(1) : m.ObtainedAt,
                Issuer = Has(7) ? "https://other.example" : m.Issuer,
            },
        };

        var m = patch.ApplyTo(Stored);
        var s = patch.ApplyTo(StoredSecrets);

        return s.AccessToken == (Has(0) ? "at2" : "at")
            && s.RefreshToken == (Has(1) ? "rt2" : "rt")
            && m.ScopesGranted.SequenceEqual(Has(2) ? ["a", "b"] : ["a"])
            && m.ExpiresAt == (Has(3) ? DateTimeOffset.UnixEpoch.AddDays(2) : Stored.ExpiresAt)
            && s.IdToken == (Has(4) ? "id2" : "id")
            && m.RefreshAfter == (Has(5) ? DateTimeOffset.UnixEpoch.AddDays(1.5) : Stored.RefreshAfter)
            && m.ObtainedAt == (Has(6) ? DateTimeOffset.UnixEpoch.AddDays(1) : Stored.ObtainedAt)
            && m.Issuer == (Has(7) ? "https://other.example" : Stored.Issuer)
            && s.ClientSecret == "cs"
            && m.Client == Stored.Client
            && m.Resource == Stored.Resource
            && m.Upstream == Stored.Upstream
            && m.ScopesRequested.SequenceEqual(Stored.ScopesRequested);
    }

    [Property]
    public bool ApplyTo_EmptyOrMissingRefreshToken_NeverErasesTheStoredOne(bool empty, NonEmptyString accessToken) =>
        new CredentialPatch { RefreshToken = empty ? string.Empty : null, AccessToken = accessToken.Get }
            .ApplyTo(StoredSecrets).RefreshToken == "rt";
}
