using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Latchkey.Audit;
using Spectre.Console;

namespace Latchkey.Cli;

/// <summary><c>latchkey audit</c>: the requests the gateway answered, from the store's audit log (docs/audit.md).</summary>
internal static class AuditCommand
{
    public const int MaxLimit = 100_000;

    private static readonly AuditJsonContext Json = new(new JsonSerializerOptions(AuditJsonContext.Default.Options)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    public static Command Build(CliApp app)
    {
        var since = new Option<string?>("--since") { Description = "Only entries at or after this: a duration back from now (90s, 15m, 12h, 7d) or a time (2026-01-31T12:00:00Z)." };
        var credential = new Option<string?>("--credential") { Description = "Only entries for this credential." };
        CompletionCommand.CompleteCredentialNames(credential.CompletionSources);
        var limit = new Option<int>("--limit") { Description = $"At most this many entries, the newest (default 100, at most {MaxLimit}).", DefaultValueFactory = _ => 100 };
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts instead of a table (the shape is in docs/audit.md)." };
        var command = new Command("audit", "Show the requests the gateway answered: when, which client key, credential and route, status, latency and reason.")
        {
            since, credential, limit, json,
        };
        command.SetAction(async (parse, ct) =>
        {
            var count = parse.GetValue(limit);
            if (count is < 1 or > MaxLimit)
            {
                throw new CliException(ExitCodes.Usage, $"--limit {count} is out of range.", $"Give a number from 1 to {MaxLimit}.");
            }

            var query = new AuditQuery(parse.GetValue(since) is { } s ? ParseSince(s, app.Time) : null, parse.GetValue(credential), count);
            await using var services = app.Open(parse);
            var store = services.Store;
            var entries = await store.QueryAsync(query, ct);
            if (parse.GetValue(json))
            {
                app.Console.Out.WriteLine(JsonSerializer.Serialize<IReadOnlyList<AuditView>>([.. entries.Select(AuditView.From)], Json.IReadOnlyListAuditView));
                return ExitCodes.Success;
            }

            if (entries.Count == 0)
            {
                app.Console.Out.WriteLine("No audit entries match. The gateway ('latchkey serve') records every request it answers on /c/ and /r/ routes.");
                return ExitCodes.Success;
            }

            var table = CredentialCommands.NewTable("TIME", "KEY", "CREDENTIAL", "ROUTE", "REQUEST", "STATUS", "UPSTREAM", "MS", "REASON");
            foreach (var e in entries)
            {
                table.AddRow(
                    e.At.ToString("yyyy-MM-dd HH:mm:ss.fff", CultureInfo.InvariantCulture),
                    Markup.Escape(e.ClientKey ?? "-"),
                    Markup.Escape(e.Credential ?? "-"),
                    Markup.Escape(e.Route),
                    Markup.Escape($"{e.Method} {e.Path}"),
                    e.Status < 400 ? $"[green]{e.Status}[/]" : $"[red]{e.Status}[/]",
                    e.UpstreamStatus?.ToString(CultureInfo.InvariantCulture) ?? "-",
                    e.LatencyMs.ToString(CultureInfo.InvariantCulture),
                    Markup.Escape(e.Reason ?? "-"));
            }

            CredentialCommands.Render(app, table);
            return ExitCodes.Success;
        });
        return command;
    }

    internal static DateTimeOffset ParseSince(string text, TimeProvider time)
    {
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var at)
            && text.Contains('-', StringComparison.Ordinal))
        {
            return at;
        }

        try
        {
            return time.GetUtcNow() - Durations.Parse(text, "--since");
        }
        catch (CliException)
        {
            throw new CliException(ExitCodes.Usage, $"--since '{text}' is neither a duration nor a time.", "Write a duration back from now (90s, 15m, 12h, 7d) or a time such as 2026-01-31T12:00:00Z.");
        }
    }
}

/// <summary>One entry as <c>latchkey audit --json</c> prints it (documented in docs/audit.md).</summary>
internal sealed record AuditView(
    long Id, DateTimeOffset Time, string? ClientKey, string? Credential, string Route, string Method, string Path,
    int Status, int? UpstreamStatus, long LatencyMs, string? Reason, string Replica)
{
    public static AuditView From(AuditEntry e) =>
        new(e.Id, e.At, e.ClientKey, e.Credential, e.Route, e.Method, e.Path, e.Status, e.UpstreamStatus, e.LatencyMs, e.Reason, e.Replica);
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(IReadOnlyList<AuditView>))]
internal sealed partial class AuditJsonContext : JsonSerializerContext;
