namespace Latchkey.Store;

/// <summary>
/// Why a credential is in its state: a stable machine-readable <paramref name="Code"/>, a sentence for a person,
/// and the command that fixes it. Never holds secret material.
/// </summary>
/// <param name="Code">A stable reason code such as <c>invalid_grant</c> or <c>decrypt_failed</c>.</param>
/// <param name="Message">What happened, in words a person understands.</param>
/// <param name="Fix">What to type next, or <see langword="null"/> when nothing can be done from here.</param>
/// <param name="At">When the reason was recorded.</param>
internal sealed record StateReason(string Code, string Message, string? Fix, DateTimeOffset At);
