namespace Latchkey.Store;

/// <summary>
/// The store cannot be used: it could not be opened, reached, or trusted. The message says what was wrong and
/// what to do next, and never carries secret material. <see cref="Retryable"/> tells a transient cause (busy,
/// unavailable) from one a person must fix.
/// </summary>
public sealed class StoreException(string code, string message, bool retryable = false, Exception? innerException = null)
    : Exception(message, innerException)
{
    /// <summary>A stable reason code, e.g. <c>home_permissions</c>, <c>network_filesystem</c>, <c>database_corrupt</c>.</summary>
    public string Code { get; } = code;

    public bool Retryable { get; } = retryable;
}
