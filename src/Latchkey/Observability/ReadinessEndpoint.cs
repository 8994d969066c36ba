using System.Text.Json;
using Latchkey.Store;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Latchkey.Observability;

/// <summary>
/// <c>/readyz</c>: 200 when the store answers and the master key unseals it (<see cref="ILatchkeyStore.CheckReadyAsync"/>),
/// 503 with the reason otherwise. <c>/healthz</c> stays what it was: the process is up.
/// </summary>
/// <remarks>
/// <para><b>Anyone may ask</b> (a load balancer, a kubelet), so the answer says only <c>ready</c>, or
/// <c>store_unavailable</c> or <c>master_key_mismatch</c> with a sentence: the store's own message (which names the
/// database's host or file) goes to the gateway's log, once each time the answer changes.</para>
/// <para><b>One check at a time.</b> An answer is reused for <see cref="CacheTime"/>, and callers that arrive while
/// a check runs share it, so a flood of <c>/readyz</c> costs the store at most one read a second.</para>
/// </remarks>
internal sealed partial class ReadinessEndpoint(ILatchkeyStore store, TimeProvider time, ILogger<ReadinessEndpoint> log)
{
    public const string Path = "/readyz";

    /// <summary>How long a check's answer is reused.</summary>
    public static readonly TimeSpan CacheTime = TimeSpan.FromSeconds(1);

    private readonly Lock _gate = new();
    private Task<StoreReadiness>? _running;
    private StoreReadiness? _last;
    private DateTimeOffset _lastUntil;
    private string? _loggedReason;

    public async Task HandleAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var readiness = await CheckAsync().WaitAsync(context.RequestAborted).ConfigureAwait(false);
        var response = context.Response;
        response.Headers.CacheControl = "no-store";
        response.ContentType = "application/json";
        response.StatusCode = readiness.IsReady ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
        if (!readiness.IsReady)
        {
            response.Headers.RetryAfter = "5";
        }

        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("status", readiness.IsReady ? "ready" : "not_ready");
            if (readiness.Reason is { } reason)
            {
                json.WriteString("reason", reason);
                json.WriteString("message", reason == CredentialStore.KeyMismatchReason
                    ? "The master key this gateway uses does not open its store's seal: it is not the key the store was sealed with. Its owner finds which in the gateway's log and with 'latchkey doctor'."
                    : "The gateway's credential store does not answer. It reconnects by itself; its owner finds the cause in the gateway's log and with 'latchkey status'.");
            }

            json.WriteEndObject();
        }

        response.ContentLength = buffer.Length;
        await response.Body.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>The last answer while it is fresh, else the check under way, else a new check.</summary>
    private Task<StoreReadiness> CheckAsync()
    {
        lock (_gate)
        {
            if (_last is { } last && time.GetUtcNow() < _lastUntil)
            {
                return Task.FromResult(last);
            }

            return _running ??= RunAsync();
        }
    }

    private async Task<StoreReadiness> RunAsync()
    {
        await Task.Yield(); // off the lock
        StoreReadiness readiness;
        try
        {
            // Not the caller's token: the check is shared, and one caller going away must not fail the others.
            readiness = await store.CheckReadyAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            readiness = new StoreReadiness(CredentialStore.UnavailableReason, ex.GetType().Name);
        }

        lock (_gate)
        {
            _last = readiness;
            _lastUntil = time.GetUtcNow() + CacheTime;
            _running = null;
            if (readiness.Reason != _loggedReason)
            {
                _loggedReason = readiness.Reason;
                if (readiness.Reason is { } reason)
                {
                    NotReady(log, reason, readiness.Detail ?? string.Empty);
                }
                else
                {
                    Ready(log);
                }
            }
        }

        return readiness;
    }

    [LoggerMessage(60, LogLevel.Warning, "Not ready ({Reason}): {Detail}")]
    private static partial void NotReady(ILogger logger, string reason, string detail);

    [LoggerMessage(61, LogLevel.Information, "Ready: the store answers and the master key unseals it")]
    private static partial void Ready(ILogger logger);
}
