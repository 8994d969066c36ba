using System.Security.Cryptography;
using System.Text;
using Latchkey.Diagnostics;

namespace Latchkey.Observability;

/// <summary>
/// The metrics key: the secret a scraper sends (<c>Authorization: Bearer KEY</c>) to read <c>/metrics</c> on a team
/// gateway. It is read from a file (<c>latchkey serve --metrics-key-file PATH</c> or
/// <c>LATCHKEY_METRICS_KEY_FILE</c>), never from the command line, and kept only as its SHA-256 digest, which
/// <see cref="Matches"/> compares in constant time.
/// </summary>
internal static class MetricsKey
{
    /// <summary>The variable that names the key file when <c>--metrics-key-file</c> is not given.</summary>
    public const string FileVariable = "LATCHKEY_METRICS_KEY_FILE";

    /// <summary>The fewest characters a metrics key may have (<c>openssl rand -hex 32</c> makes 64).</summary>
    public const int MinLength = 32;

    /// <summary>How to make a key, for the messages that refuse one.</summary>
    public const string MakeOne = "Make one with: (umask 077; openssl rand -hex 32 > metrics.key), and give Prometheus the same file (authorization: credentials_file).";

    /// <summary>
    /// Reads the key in <paramref name="path"/> (its only line; surrounding white space is ignored) and returns its digest.
    /// </summary>
    /// <exception cref="ActionableException">The file cannot be read, or does not hold a usable key: says which, and what to do.</exception>
    public static byte[] Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ActionableException($"The metrics key file '{path}' cannot be read: {ex.Message}", MakeOne, ex);
        }

        var key = text.Trim();
        if (key.Length < MinLength)
        {
            throw new ActionableException($"The metrics key file '{path}' holds {(key.Length == 0 ? "nothing" : $"a key of {key.Length} characters")}; a metrics key needs at least {MinLength}.", MakeOne);
        }

        foreach (var c in key)
        {
            if (c is <= ' ' or > '~')
            {
                throw new ActionableException($"The metrics key in '{path}' holds a space, a line break or a character outside printable ASCII; it must be one line that an HTTP header can carry.", MakeOne);
            }
        }

        return Digest(key);
    }

    /// <summary>Whether <paramref name="presented"/> is the key whose digest is <paramref name="digest"/>, in constant time.</summary>
    public static bool Matches(byte[] digest, string presented)
    {
        ArgumentNullException.ThrowIfNull(digest);
        ArgumentNullException.ThrowIfNull(presented);
        return CryptographicOperations.FixedTimeEquals(digest, Digest(presented));
    }

    private static byte[] Digest(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
