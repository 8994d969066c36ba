using System.Text;

namespace Latchkey.Cli;

/// <summary>
/// Reads a secret from standard input, or from a prompt that does not echo. Secrets are never taken from the
/// command line, where <c>ps</c> and shell history would show them.
/// </summary>
internal static class SecretInput
{
    /// <summary>The largest secret accepted, far above any real key or token.</summary>
    public const int MaxLength = 64 * 1024;

    public static string Read(CliConsole console, string prompt)
    {
        string secret;
        if (console.InputIsTerminal)
        {
            console.Error.Write(prompt);
            secret = ReadHidden();
            console.Error.WriteLine();
        }
        else
        {
            var buffer = new char[MaxLength + 2];
            var length = 0;
            int read;
            while (length < buffer.Length && (read = console.In.Read(buffer, length, buffer.Length - length)) > 0)
            {
                length += read;
            }

            if (length > MaxLength)
            {
                throw new CliException(ExitCodes.Usage, $"The secret on standard input is longer than {MaxLength} characters.", "Check what is being piped in.");
            }

            secret = new string(buffer, 0, length);
            Array.Clear(buffer);
            secret = secret.EndsWith("\r\n", StringComparison.Ordinal) ? secret[..^2] : secret.EndsWith('\n') ? secret[..^1] : secret;
        }

        if (secret.Length == 0)
        {
            throw new CliException(ExitCodes.Usage, "No secret was given: standard input was empty.",
                "Pipe the secret in, e.g. 'latchkey add NAME --upstream URL < key.txt', or run in a terminal to be prompted.");
        }

        if (secret.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0)
        {
            throw new CliException(ExitCodes.Usage, "The secret contains a line break or NUL character, which no HTTP header can carry.",
                "Give the secret alone, on one line.");
        }

        return secret;
    }

    private static string ReadHidden()
    {
        var builder = new StringBuilder();
        while (true)
        {
            var key = Console.ReadKey(intercept: true);
            if (key.Key == ConsoleKey.Enter)
            {
                break;
            }

            if (key.Key == ConsoleKey.Backspace)
            {
                if (builder.Length > 0)
                {
                    builder.Length--;
                }

                continue;
            }

            if (!char.IsControl(key.KeyChar) && builder.Length < MaxLength)
            {
                builder.Append(key.KeyChar);
            }
        }

        var secret = builder.ToString();
        builder.Clear();
        return secret;
    }
}
