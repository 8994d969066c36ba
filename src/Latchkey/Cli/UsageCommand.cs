using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Latchkey.Usage;
using Spectre.Console;

namespace Latchkey.Cli;

/// <summary><c>latchkey usage</c>: the tokens the providers counted, per client key, credential or model (docs/usage-json.md).</summary>
internal static class UsageCommand
{
    private static readonly UsageJsonContext Json = new(new JsonSerializerOptions(UsageJsonContext.Default.Options)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    public static Command Build(CliApp app)
    {
        var since = new Option<string>("--since")
        {
            Description = "From this far back (90s, 12h, 7d; whole UTC days: the day it falls on is included) or from a date (2026-01-31). Default 7d.",
            DefaultValueFactory = _ => "7d",
        };
        var by = new Option<string>("--by") { Description = "Add up by client key, credential or model.", DefaultValueFactory = _ => "key" };
        by.AcceptOnlyFromAmong("key", "credential", "model");
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts instead of a table (the shape is in docs/usage-json.md)." };
        var command = new Command("usage", "Show the tokens the providers counted in the gateway's answers, per client key, credential or model, with totals.")
        {
            since, by, json,
        };
        command.SetAction(async (parse, ct) =>
        {
            var first = ParseSince(parse.GetValue(since)!, app.Time);
            var grouping = Enum.Parse<UsageGrouping>(parse.GetValue(by)!, ignoreCase: true);
            await using var services = app.Open(parse);
            var rows = await services.Store.QueryUsageAsync(first, ct);
            var totals = UsageGroups.Totals(rows, grouping, first);
            var total = UsageGroups.Total(rows, first);
            if (parse.GetValue(json))
            {
                var view = new UsageView(
                    UsageCount.DayText(first), parse.GetValue(by)!,
                    [.. totals.Select(g => UsageRowView.From(null, UsageGroups.NameOf(g, grouping), g))],
                    [.. UsageGroups.PerDay(rows, grouping).Select(g => UsageRowView.From(UsageCount.DayText(g.Day), UsageGroups.NameOf(g, grouping), g))],
                    UsageRowView.From(null, null, total));
                app.Console.Out.WriteLine(JsonSerializer.Serialize(view, Json.UsageView));
                return ExitCodes.Success;
            }

            if (rows.Count == 0)
            {
                app.Console.Out.WriteLine($"No usage since {UsageCount.DayText(first)} (UTC). The gateway ('latchkey serve') counts the tokens of every answer on /c/ and /r/ routes that reports them.");
                return ExitCodes.Success;
            }

            var table = CredentialCommands.NewTable(grouping.ToString().ToUpperInvariant(), "REQUESTS", "INPUT", "OUTPUT", "CACHE WRITE", "CACHE READ", "TOTAL");
            foreach (var g in totals)
            {
                AddRow(table, Markup.Escape(Label(UsageGroups.NameOf(g, grouping), grouping)), g);
            }

            AddRow(table, "[bold]total[/]", total);
            app.Console.Out.WriteLine($"Tokens counted since {UsageCount.DayText(first)} (UTC), by {grouping.ToString().ToLowerInvariant()}:");
            CredentialCommands.Render(app, table);
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>The first UTC day of the period: the day a duration back from now falls on, or a date (or time) given.</summary>
    internal static DateOnly ParseSince(string text, TimeProvider time)
    {
        if (DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day))
        {
            return day;
        }

        return DateOnly.FromDateTime(AuditCommand.ParseSince(text, time).UtcDateTime);
    }

    /// <summary>What an empty name stands for in a table.</summary>
    private static string Label(string name, UsageGrouping by) => name.Length > 0 ? name : by switch
    {
        UsageGrouping.Key => "(no key: Unix socket)",
        UsageGrouping.Model => "(model not named)",
        _ => "(none)",
    };

    private static void AddRow(Table table, string name, UsageCount c) => table.AddRow(
        name, Number(c.Requests), Number(c.InputTokens), Number(c.OutputTokens), Number(c.CacheCreationTokens), Number(c.CacheReadTokens), Number(c.Tokens));

    private static string Number(long value) => value.ToString("N0", CultureInfo.InvariantCulture);
}

/// <summary>What <c>latchkey usage --json</c> prints (documented in docs/usage-json.md).</summary>
internal sealed record UsageView(string Since, string By, IReadOnlyList<UsageRowView> Rows, IReadOnlyList<UsageRowView> Days, UsageRowView Total);

/// <summary>One group's counts (<c>day</c> only in <c>days</c>, <c>name</c> absent from <c>total</c>).</summary>
internal sealed record UsageRowView(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Day,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Name,
    long Requests, long InputTokens, long OutputTokens, long CacheCreationTokens, long CacheReadTokens, long TotalTokens)
{
    public static UsageRowView From(string? day, string? name, UsageCount c) =>
        new(day, name, c.Requests, c.InputTokens, c.OutputTokens, c.CacheCreationTokens, c.CacheReadTokens, c.Tokens);
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(UsageView))]
internal sealed partial class UsageJsonContext : JsonSerializerContext;
