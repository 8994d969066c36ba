namespace Latchkey.Store;

/// <summary>What is needed to create a credential; the store assigns id, version, state and timestamps.</summary>
internal sealed record NewCredential(string Name, CredentialKind Kind, CredentialMetadata Metadata, CredentialSecrets Secrets);
