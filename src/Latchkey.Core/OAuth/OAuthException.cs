namespace Latchkey.OAuth;

/// <summary>
/// An OAuth step failed in a way a person must act on: a server that lies about its issuer, a missing S256, a
/// wrong <c>state</c>, a document too large. <see cref="Code"/> is a stable reason code; the message names what was
/// wrong (and the URL involved) and never carries a secret.
/// </summary>
public sealed class OAuthException(string code, string message, Exception? innerException = null)
    : Exception(message, innerException)
{
    public string Code { get; } = code;
}
