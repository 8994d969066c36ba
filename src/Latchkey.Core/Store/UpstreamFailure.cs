namespace Latchkey.Store;

/// <summary>
/// The last authentication failure an upstream answered the gateway with: never secret material, never a body.
/// </summary>
/// <param name="Code">A reason code, e.g. <c>credential_restricted</c> (docs/gateway.md lists them).</param>
/// <param name="Message">What happened, in a sentence.</param>
/// <param name="Fix">What to do about it, or null.</param>
/// <param name="Status">The upstream's HTTP status.</param>
/// <param name="RequestId">The upstream's request id (<c>request-id</c>, <c>x-request-id</c>), for its support.</param>
/// <param name="At">When it happened.</param>
internal sealed record UpstreamFailure(string Code, string Message, string? Fix, int Status, string? RequestId, DateTimeOffset At);
