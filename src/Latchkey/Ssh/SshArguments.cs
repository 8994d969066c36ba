namespace Latchkey.Ssh;

/// <summary>
/// The arguments of <c>latchkey ssh</c> that belong to <c>ssh</c>: its options, the destination, and the remote
/// command, split the way OpenSSH's own <c>getopt</c> splits them (the first word that is not an option or an
/// option's value is the destination; everything after it is the command).
/// </summary>
/// <param name="Options">The ssh options, in order, as given (passed on to the <c>ssh</c> that connects).</param>
/// <param name="Destination">The host, <c>user@host</c> or <c>ssh://</c> URI.</param>
/// <param name="Command">The remote command's words (empty for an interactive shell).</param>
/// <param name="ConfigFile">The <c>-F</c> file, which every <c>ssh</c> invocation of the session needs.</param>
/// <param name="PseudoTerminal">'t' when <c>-t</c> was given, 'T' for <c>-T</c>, else null.</param>
internal sealed record SshArguments(IReadOnlyList<string> Options, string Destination, IReadOnlyList<string> Command, string? ConfigFile, char? PseudoTerminal)
{
    /// <summary>OpenSSH 9's option letters that take a value (<c>ssh.c</c>'s getopt string).</summary>
    private const string WithValue = "BbcDEeFIiJLlmOoPpQRSWw";

    /// <summary>OpenSSH 9's option letters that take none.</summary>
    private const string Flags = "46AaCfGgKkMNnqsTtVvXxYy";

    /// <summary>
    /// Options that would break the session: it needs a remote command and a session of its own, and must not go
    /// to the background (the key is revoked when <c>ssh</c> exits).
    /// </summary>
    private static readonly Dictionary<char, string> Refused = new()
    {
        ['f'] = "-f sends ssh to the background, but the session key is revoked when ssh exits",
        ['N'] = "-N runs no remote command, so the remote side could not be given its environment",
        ['W'] = "-W forwards standard input and output instead of running a session",
        ['O'] = "-O controls a running master connection; latchkey ssh starts its own",
        ['M'] = "-M: latchkey ssh makes its connection a master itself (for its own forwards)",
        ['S'] = "-S: latchkey ssh uses a private control socket of its own",
        ['s'] = "-s runs a subsystem instead of a command",
        ['G'] = "-G only prints the configuration",
        ['V'] = "-V only prints the version",
        ['Q'] = "-Q only lists what ssh supports",
    };

    /// <summary>Splits <paramref name="words"/>; a description of the problem when they are not a usable ssh command line.</summary>
    public static (SshArguments? Arguments, string? Problem) Parse(IReadOnlyList<string> words)
    {
        var options = new List<string>();
        string? config = null;
        char? tty = null;
        var i = 0;
        while (i < words.Count)
        {
            var word = words[i];
            if (word == "--")
            {
                i++;
                break;
            }

            if (word.Length < 2 || word[0] != '-')
            {
                break;
            }

            options.Add(word);
            for (var c = 1; c < word.Length; c++)
            {
                var letter = word[c];
                if (Refused.TryGetValue(letter, out var why))
                {
                    return (null, $"The ssh option -{letter} cannot be used with latchkey ssh: {why}.");
                }

                if (WithValue.Contains(letter, StringComparison.Ordinal))
                {
                    string value;
                    if (c + 1 < word.Length)
                    {
                        value = word[(c + 1)..];
                    }
                    else if (i + 1 < words.Count)
                    {
                        value = words[++i];
                        options.Add(value);
                    }
                    else
                    {
                        return (null, $"The ssh option -{letter} needs a value.");
                    }

                    if (letter == 'F')
                    {
                        config = value;
                    }

                    break;
                }

                if (!Flags.Contains(letter, StringComparison.Ordinal))
                {
                    return (null, $"-{letter} is not an ssh option latchkey ssh knows.");
                }

                if (letter is 't' or 'T')
                {
                    tty = letter;
                }
            }

            i++;
        }

        if (i >= words.Count)
        {
            return (null, "No host was given.");
        }

        return (new SshArguments(options, words[i], [.. words.Skip(i + 1)], config, tty), null);
    }
}
