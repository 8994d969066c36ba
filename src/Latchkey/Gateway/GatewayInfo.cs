namespace Latchkey.Gateway;

/// <summary>The <c>/healthz</c> answer.</summary>
internal sealed record HealthView(string Status, string Version, string Store, int Pid, string Home);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.SnakeCaseLower)]
[System.Text.Json.Serialization.JsonSerializable(typeof(HealthView))]
[System.Text.Json.Serialization.JsonSerializable(typeof(GatewayInfo))]
internal sealed partial class GatewayJsonContext : System.Text.Json.Serialization.JsonSerializerContext;

/// <summary>What a running gateway writes to <c>gateway.json</c> in the home folder (0600), so <c>latchkey run</c>
/// finds it. <paramref name="ProofKey"/> is the key it proves itself with (<see cref="GatewayProof"/>): secret.</summary>
internal sealed record GatewayInfo(string Url, string? Socket, int Pid, DateTimeOffset StartedAt, string? ProofKey)
{
    public override string ToString() => $"GatewayInfo({Url}, {Socket}, pid {Pid}, {StartedAt:u})";
}
