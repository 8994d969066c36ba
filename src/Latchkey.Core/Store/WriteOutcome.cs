namespace Latchkey.Store;

/// <summary>How a write ended. Anything but <see cref="Written"/> changed nothing.</summary>
internal enum WriteOutcome
{
    Written,
    NotFound,
    AlreadyExists,
    ConditionFailed,
    Quarantined,
}
