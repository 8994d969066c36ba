namespace Latchkey.Diagnostics;

/// <summary>
/// A failure a person must act on, raised below the commands (starting or finding this home's gateway, an SSH
/// session): a sentence saying what went wrong and, when there is one, what to type next. The command line prints
/// both and exits 1. Never carries secret material.
/// </summary>
internal sealed class ActionableException(string message, string? fix = null, Exception? innerException = null) : Exception(message, innerException)
{
    /// <summary>What to type or do next, or null when the message says it all.</summary>
    public string? Fix { get; } = fix;
}
