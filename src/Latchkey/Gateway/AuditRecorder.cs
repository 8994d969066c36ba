using Latchkey.Audit;
using Latchkey.Usage;
using Microsoft.AspNetCore.Http;

namespace Latchkey.Gateway;

/// <summary>
/// Middleware that records one <see cref="AuditEntry"/> per request on an agent route — a credential route
/// (<c>/c/NAME</c>), a router (<c>/r/NAME</c>) or the MCP proxy (<c>/mcp/NAME</c>) — when the answer is done: who (the
/// client key's name), what (credential, route, method, path without query), and how it went (status, upstream
/// status, latency, reason). The routes fill in <see cref="AuditFacts"/> as they learn them.
/// </summary>
/// <remarks>
/// <para>A request the gateway refused (a 4xx) before a valid key allowed it (<see cref="AuditFacts.Authorized"/> unset)
/// goes to <see cref="AuditWriter.RecordRefused"/>, which rate-limits such entries per source and in total, so a flood
/// of refused requests can neither fill the table nor crowd out the entries of requests that were served. Every
/// column is bounded by <see cref="AuditEntry"/> itself.</para>
/// <para>The path and the name come from the caller, and <c>latchkey audit</c> prints them to a terminal: they are
/// quoted as every text Latchkey did not write is (<see cref="Diagnostics.ServerText.Quote(string, IEnumerable{string?}, int)"/>:
/// control and format characters replaced, client keys masked), which costs nothing for a printable ASCII path.</para>
/// </remarks>
internal sealed class AuditRecorder(AuditWriter writer, TimeProvider time)
{
    /// <summary>The source of a request arriving on the Unix socket (only this user can connect to it).</summary>
    public const string UnixSocketSource = "unix-socket";

    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var values = context.Request.RouteValues;
        string? name;
        string prefix;
        if (values.TryGetValue("credential", out var c) && c is string credential)
        {
            (name, prefix) = (credential, "/c/");
        }
        else if (values.TryGetValue("router", out var r) && r is string router)
        {
            (name, prefix) = (router, "/r/");
        }
        else if (values.TryGetValue("server", out var s) && s is string server)
        {
            (name, prefix) = (server, "/mcp/");
        }
        else
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        name = Diagnostics.ServerText.Quote(name, [], AuditEntry.MaxNameLength);
        var route = prefix + name;
        var facts = new AuditFacts { Credential = prefix == "/r/" ? null : name };
        context.Features.Set(facts);
        var at = time.GetUtcNow();
        var started = time.GetTimestamp();
        var failed = false;
        try
        {
            await next(context).ConfigureAwait(false);
        }
        catch
        {
            failed = true;
            throw;
        }
        finally
        {
            var reason = facts.Reason ?? (failed ? "gateway_error" : context.RequestAborted.IsCancellationRequested ? "client_closed" : null);
            var status = failed ? 500 : context.Response.StatusCode;
            var path = facts.Path ?? Diagnostics.ServerText.Quote(context.Request.Path.Value ?? string.Empty, [], AuditEntry.MaxPathLength);
            var entry = new AuditEntry(
                at, facts.ClientKey, facts.Credential, route, context.Request.Method, path,
                status, facts.UpstreamStatus, (long)time.GetElapsedTime(started).TotalMilliseconds,
                reason, AuditWriter.Replica);
            if (facts.Authorized || status is < 400 or >= 500)
            {
                // Served, or failed on the gateway's side (the store unavailable): a caller cannot cause those at will.
                writer.Record(entry, UsageOf(facts, at));
            }
            else
            {
                writer.RecordRefused(entry, SourceOf(context));
            }
        }
    }

    /// <summary>
    /// The usage the answer reported, as the writer adds it up: on the UTC day the request arrived, under the client
    /// key's name ('' without one: the Unix socket), the credential that served and the model the answer named (else
    /// the request's), quoted like every name Latchkey did not write; null when the answer reported none.
    /// </summary>
    internal static UsageCount? UsageOf(AuditFacts facts, DateTimeOffset at)
    {
        if (facts.Usage is not { } tokens)
        {
            return null;
        }

        var model = facts.AnswerModel ?? facts.RequestModel;
        return new UsageCount(
            DateOnly.FromDateTime(at.UtcDateTime), facts.ClientKey ?? string.Empty, facts.Credential ?? string.Empty,
            model is null ? string.Empty : Diagnostics.ServerText.Quote(model, [], UsageCount.MaxNameLength),
            1, tokens.Input, tokens.Output, tokens.CacheCreation, tokens.CacheRead);
    }

    /// <summary>The source every loopback address counts as (all of 127.0.0.0/8 and <c>::1</c> are this machine).</summary>
    public const string LoopbackSource = "loopback";

    /// <summary>
    /// Who sent the request, as the refused-entry budget counts it: an IPv4 address; for IPv6 the /64 it is in (one
    /// host is usually given a whole /64); every loopback address as one source (<see cref="LoopbackSource"/>: anyone
    /// on this machine can use all of 127.0.0.0/8); or the Unix socket.
    /// </summary>
    internal static string SourceOf(HttpContext context) => SourceOf(context.Connection.RemoteIpAddress);

    internal static string SourceOf(System.Net.IPAddress? address)
    {
        if (address is null)
        {
            return UnixSocketSource;
        }

        address = address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
        if (System.Net.IPAddress.IsLoopback(address))
        {
            return LoopbackSource;
        }

        if (address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
        {
            return address.ToString();
        }

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return new System.Net.IPAddress(bytes).ToString() + "/64";
    }
}
