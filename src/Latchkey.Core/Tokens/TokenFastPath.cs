using Latchkey.Store;

namespace Latchkey.Tokens;

/// <summary>
/// Recognises the plain shapes of <c>latchkey token NAME</c> (optionally with <c>--home PATH</c> before or after),
/// which run once per agent request through <c>apiKeyHelper</c>, so that they skip building and parsing the whole
/// command tree. Anything else, including <c>--help</c>, response files and <c>--home=PATH</c>, goes through the
/// command tree, which gives the same result more slowly.
/// </summary>
/// <remarks>Here, below both programs, so the full <c>latchkey</c> and the native <c>latchkey-token</c> accept exactly
/// the same plain shapes.</remarks>
internal static class TokenFastPath
{
    public static bool TryMatch(IReadOnlyList<string> args, out string name, out string? home)
    {
        name = string.Empty;
        home = null;
        var rest = new List<string>(args.Count);
        for (var i = 0; i < args.Count; i++)
        {
            if (args[i] == "--home")
            {
                if (home is not null || i + 1 >= args.Count || !IsPlainValue(args[i + 1]))
                {
                    return false;
                }

                home = args[++i];
            }
            else
            {
                rest.Add(args[i]);
            }
        }

        // A valid name starts with a letter or digit, so it is never an option, a response file or "--".
        if (rest is not ["token", var candidate] || CredentialNames.Validate(candidate) is not null)
        {
            return false;
        }

        name = candidate;
        return true;
    }

    private static bool IsPlainValue(string value) => value.Length > 0 && value[0] is not ('-' or '@');
}
