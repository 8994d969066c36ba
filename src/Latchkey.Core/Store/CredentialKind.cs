namespace Latchkey.Store;

/// <summary>What a credential is: a static API key, or an OAuth grant that the token engine keeps fresh.</summary>
internal enum CredentialKind
{
    ApiKey,
    OAuth,
}
