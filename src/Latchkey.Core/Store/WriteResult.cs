namespace Latchkey.Store;

/// <summary>
/// The result of a write: the record as committed when <see cref="Outcome"/> is
/// <see cref="WriteOutcome.Written"/>, otherwise the current record when there is one (so a caller whose
/// condition failed can adopt the winner's value without another read).
/// </summary>
internal sealed record WriteResult(WriteOutcome Outcome, CredentialRecord? Record)
{
    public bool Succeeded => Outcome == WriteOutcome.Written;
}
