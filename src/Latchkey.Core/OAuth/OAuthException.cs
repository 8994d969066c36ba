namespace Latchkey.OAuth;

/// <summary>
/// An OAuth step failed in a way a person must act on: a server that lies about its issuer, a missing S256, a
/// wrong <c>state</c>, a document too large. <see cref="Code"/> is a stable reason code; the message names what was
/// wrong (and the URL involved) and never carries a secret.
/// </summary>
public sealed class OAuthException : Exception
{
    public OAuthException()
    {
        Code = "oauth_error";
    }

    public OAuthException(string message)
        : base(message)
    {
        Code = "oauth_error";
    }

    public OAuthException(string message, Exception innerException)
        : base(message, innerException)
    {
        Code = "oauth_error";
    }

    public OAuthException(string code, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Code = code;
    }

    public string Code { get; }
}
