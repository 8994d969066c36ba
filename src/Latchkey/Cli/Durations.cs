using Latchkey.Text;

namespace Latchkey.Cli;

/// <summary>A duration option (<see cref="HumanDuration"/>: <c>90s</c>, <c>30m</c>, <c>12h</c>, <c>7d</c>), or a usage error.</summary>
internal static class Durations
{
    public static TimeSpan Parse(string text, string option) =>
        HumanDuration.TryParse(text, out var duration)
            ? duration
            : throw new CliException(ExitCodes.Usage, HumanDuration.NotADuration(option, text), HumanDuration.Hint);
}
