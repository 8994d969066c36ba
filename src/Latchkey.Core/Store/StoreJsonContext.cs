using System.Text.Json.Serialization;

namespace Latchkey.Store;

/// <summary>Source-generated JSON for what the store keeps as JSON: metadata, reasons and (sealed) secrets.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(CredentialMetadata))]
[JsonSerializable(typeof(StateReason))]
[JsonSerializable(typeof(CredentialSecrets))]
[JsonSerializable(typeof(UpstreamFailure))]
[JsonSerializable(typeof(string[]))]
internal sealed partial class StoreJsonContext : JsonSerializerContext;
