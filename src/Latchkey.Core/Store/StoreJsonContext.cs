using System.Text.Json.Serialization;

namespace Latchkey.Store;

/// <summary>Source-generated JSON for what the store keeps as JSON: metadata, reasons and (sealed) secrets; and the home's seal ledger.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(CredentialMetadata))]
[JsonSerializable(typeof(StateReason))]
[JsonSerializable(typeof(CredentialSecrets))]
[JsonSerializable(typeof(UpstreamFailure))]
[JsonSerializable(typeof(string[]))]
[JsonSerializable(typeof(SealLedgerEntry))]
[JsonSerializable(typeof(KeychainNote))]
internal sealed partial class StoreJsonContext : JsonSerializerContext;
