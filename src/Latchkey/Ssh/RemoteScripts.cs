using System.Text;

namespace Latchkey.Ssh;

/// <summary>
/// The POSIX <c>sh</c> scripts <c>latchkey ssh</c> runs on the remote host. They hold no secret: the session key
/// reaches the remote side only through a FIFO in a private folder, written by a second session over the same
/// connection, so it is never in an argument list (visible in <c>ps</c>), never in a file at rest, and never
/// depends on the server's <c>AcceptEnv</c>.
/// </summary>
internal static class RemoteScripts
{
    /// <summary>The private folder of one session, relative to the remote home (its parents are created 0700).</summary>
    public static string SessionFolder(string id) => ".latchkey/ssh/" + id;

    /// <summary>
    /// The main session: makes the private folder and the FIFO, waits for the environment on the FIFO, removes
    /// it, then runs the user's command (<c>$1</c>, through the login shell as ssh would) or a login shell. The
    /// folder (FIFO and forwarded socket) is removed when the session ends.
    /// </summary>
    private const string MainScript = """
        d="$HOME/.latchkey/ssh/$1"; shift
        umask 077
        if ! mkdir -p "$d" || ! mkfifo "$d/env"; then echo "latchkey ssh: cannot make the private folder $d on this host" >&2; exit 125; fi
        trap 'rm -rf "$d"' EXIT
        trap 'exit 129' HUP
        trap 'exit 130' INT
        trap 'exit 143' TERM
        . "$d/env" || exit 125
        rm -f "$d/env"
        unset ANTHROPIC_API_KEY
        if [ $# -gt 0 ]; then "${SHELL:-/bin/sh}" -c "$1"; else "${SHELL:-/bin/sh}" -l; fi
        """;

    /// <summary>
    /// The hand-over session: waits for the main session's FIFO (so the private folder exists), prints the remote
    /// home, and copies its standard input (the environment) into the FIFO.
    /// </summary>
    private const string HandOverScript = """
        d="$HOME/.latchkey/ssh/$1"
        i=0
        while [ ! -p "$d/env" ]; do i=$((i+1)); if [ $i -gt 600 ]; then echo "latchkey ssh: the session never made $d/env" >&2; exit 124; fi; sleep 0.1; done
        printf 'home %s\n' "$HOME"
        cat > "$d/env"
        """;

    /// <summary>The remote command of the main session.</summary>
    public static string MainSession(string id, IReadOnlyList<string> command) =>
        command.Count == 0
            ? $"sh -c {Quote(MainScript)} latchkey-ssh {id}"
            : $"sh -c {Quote(MainScript)} latchkey-ssh {id} {Quote(string.Join(' ', command))}";

    /// <summary>The remote command of the hand-over session.</summary>
    public static string HandOver(string id) => $"sh -c {Quote(HandOverScript)} latchkey-ssh {id}";

    /// <summary>The environment as <c>export</c> lines for <c>sh</c> to source.</summary>
    public static string Environment(IEnumerable<KeyValuePair<string, string>> variables)
    {
        var text = new StringBuilder();
        foreach (var (name, value) in variables)
        {
            text.Append("export ").Append(name).Append('=').Append(Quote(value)).Append('\n');
        }

        return text.ToString();
    }

    /// <summary>Quotes <paramref name="text"/> as one word for a POSIX shell.</summary>
    public static string Quote(string text) => "'" + text.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
