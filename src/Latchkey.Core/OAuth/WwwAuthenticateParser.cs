namespace Latchkey.OAuth;

/// <summary>
/// A complete RFC 9110 §11 <c>WWW-Authenticate</c> parser: several field lines, several challenges per line, quoted
/// strings with escapes, token68, case-insensitive names, duplicate parameters reported. Runs in time linear in
/// its input and never throws for bad input: a malformed challenge is dropped with a reason and scanning resumes
/// at the next challenge. <c>WwwAuthenticateParserTests</c> holds the vectors it meets, with the reason for each.
/// </summary>
internal static class WwwAuthenticateParser
{
    public const int MaxLength = 16 * 1024;
    public const int MaxChallenges = 32;
    public const int MaxParameters = 64;

    /// <summary>Parses the field lines of one response, combined as RFC 9110 §5.3 says.</summary>
    public static WwwAuthenticateResult Parse(IEnumerable<string> fieldLines)
    {
        ArgumentNullException.ThrowIfNull(fieldLines);
        return Parse(string.Join(", ", fieldLines));
    }

    public static WwwAuthenticateResult Parse(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return WwwAuthenticateResult.Empty;
        }

        if (value.Length > MaxLength)
        {
            return new([], [new DroppedChallenge("too_large", 0)]);
        }

        // A leftover obs-fold (CR LF followed by SP or HTAB) is one space.
        value = value.Replace("\r\n ", " ", StringComparison.Ordinal).Replace("\r\n\t", " ", StringComparison.Ordinal);
        return new Scanner(value).Run();
    }

    private sealed class Scanner(string s)
    {
        private readonly List<AuthChallenge> _challenges = [];
        private readonly List<DroppedChallenge> _dropped = [];
        private int _i;

        public WwwAuthenticateResult Run()
        {
            while (true)
            {
                SkipWhitespaceAndCommas();
                if (_i >= s.Length)
                {
                    break;
                }

                var start = _i;
                var error = ReadChallenge(out var challenge);
                if (error is null)
                {
                    _challenges.Add(challenge!);
                }
                else if (error == "too_large")
                {
                    return new([], [new DroppedChallenge("too_large", start)]);
                }
                else
                {
                    _dropped.Add(new DroppedChallenge(error, start));
                    if (error != "duplicate_param" && error != "param_without_scheme")
                    {
                        Recover();
                    }
                }

                if (_challenges.Count > MaxChallenges)
                {
                    return new([], [new DroppedChallenge("too_large", start)]);
                }
            }

            return new(_challenges, _dropped);
        }

        /// <summary>Reads one challenge starting at a scheme; returns an error code, or null with the challenge.</summary>
        private string? ReadChallenge(out AuthChallenge? challenge)
        {
            challenge = null;
            var scheme = ReadToken();
            if (scheme.Length == 0)
            {
                return At(_i) == '"' || At(_i) == '=' ? "unexpected_token" : "bad_char";
            }

            // A "token =" where a scheme should be is a parameter that lost its challenge.
            var afterScheme = _i;
            SkipWhitespace();
            if (At(_i) == '=')
            {
                _i = afterScheme;
                SkipWhitespace();
                _i++;
                SkipWhitespace();
                var valueError = ReadValue(out _);
                return valueError ?? "param_without_scheme";
            }

            var parameters = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            var duplicate = false;
            if (_i >= s.Length || (afterScheme == _i && s[_i] == ','))
            {
                // Nothing, or a comma straight after the scheme: a challenge without parameters.
                challenge = new AuthChallenge(scheme, null, parameters);
                return null;
            }

            if (afterScheme == _i)
            {
                return "unexpected_token"; // the scheme must be followed by a space
            }

            // After 1*SP: a token68 alone, or a list of auth-params (which may start with empty elements).
            if (s[_i] != ',')
            {
                if (TryReadParameter(out var name, out var value, out var paramError))
                {
                    parameters[name!] = value!;
                }
                else if (paramError is not null)
                {
                    return paramError;
                }
                else
                {
                    var token68 = ReadToken68();
                    SkipWhitespace();
                    if (token68.Length == 0 || (_i < s.Length && s[_i] != ','))
                    {
                        return "unexpected_token";
                    }

                    challenge = new AuthChallenge(scheme, token68, parameters);
                    return null;
                }
            }

            // More parameters: after each comma, a "token BWS =" continues this challenge; anything else starts the next.
            while (true)
            {
                SkipWhitespace();
                if (_i >= s.Length)
                {
                    break;
                }

                if (s[_i] != ',')
                {
                    return "unexpected_token";
                }

                var beforeComma = _i;
                SkipWhitespaceAndCommas();
                if (_i >= s.Length || !StartsParameter())
                {
                    _i = beforeComma;
                    break;
                }

                if (!TryReadParameter(out var nextName, out var nextValue, out var nextError))
                {
                    return nextError ?? "unexpected_token";
                }

                if (!parameters.TryAdd(nextName!, nextValue!))
                {
                    duplicate = true;
                }

                if (parameters.Count > MaxParameters)
                {
                    return "too_large";
                }
            }

            if (duplicate)
            {
                return "duplicate_param";
            }

            challenge = new AuthChallenge(scheme, null, parameters);
            return null;
        }

        /// <summary>Whether the text at the cursor is "token BWS =" followed by a value (not token68 padding).</summary>
        private bool StartsParameter()
        {
            var save = _i;
            var name = ReadToken();
            SkipWhitespace();
            var result = name.Length > 0 && At(_i) == '=';
            _i = save;
            return result;
        }

        /// <summary>
        /// Reads "token BWS = BWS (token / quoted-string)". Returns false, restoring the cursor, when the text is not
        /// a parameter (it may be a token68); sets <paramref name="error"/> when it is a broken one.
        /// </summary>
        private bool TryReadParameter(out string? name, out string? value, out string? error)
        {
            var save = _i;
            value = null;
            error = null;
            name = ReadToken();
            SkipWhitespace();
            if (name.Length == 0 || At(_i) != '=')
            {
                _i = save;
                name = null;
                return false;
            }

            _i++;
            SkipWhitespace();
            if (_i >= s.Length || s[_i] == ',' || s[_i] == '=')
            {
                // "abc=" or "abc==": an auth-param needs a value, so this is a token68.
                _i = save;
                name = null;
                return false;
            }

            error = ReadValue(out value);
            if (error is not null)
            {
                name = null;
                return false;
            }

            return true;
        }

        private string? ReadValue(out string? value)
        {
            value = null;
            if (At(_i) == '"')
            {
                return ReadQuoted(out value);
            }

            var token = ReadToken();
            if (token.Length == 0)
            {
                return "unexpected_token";
            }

            value = token;
            return null;
        }

        private string? ReadQuoted(out string? value)
        {
            value = null;
            var builder = new System.Text.StringBuilder();
            _i++; // opening quote
            while (_i < s.Length)
            {
                var c = s[_i];
                if (c == '"')
                {
                    _i++;
                    value = builder.ToString();
                    return null;
                }

                if (c == '\\')
                {
                    if (_i + 1 >= s.Length)
                    {
                        break;
                    }

                    var escaped = s[_i + 1];
                    if (!IsQuotedPairChar(escaped))
                    {
                        _i = s.Length;
                        return "bad_char";
                    }

                    builder.Append(escaped);
                    _i += 2;
                    continue;
                }

                if (!IsQdText(c))
                {
                    _i++;
                    return "bad_char";
                }

                builder.Append(c);
                _i++;
            }

            _i = s.Length; // an unterminated quoted string consumes the rest of the value
            return "unterminated_quote";
        }

        /// <summary>Skips to the next top-level comma followed by a token that is not followed by "=".</summary>
        private void Recover()
        {
            var inQuote = false;
            while (_i < s.Length)
            {
                var c = s[_i];
                if (inQuote)
                {
                    if (c == '\\')
                    {
                        _i += 2;
                        continue;
                    }

                    if (c == '"')
                    {
                        inQuote = false;
                    }

                    _i++;
                    continue;
                }

                if (c == '"')
                {
                    inQuote = true;
                    _i++;
                    continue;
                }

                if (c == ',')
                {
                    SkipWhitespaceAndCommas();
                    var candidate = _i;
                    if (ReadToken().Length > 0)
                    {
                        var afterToken = _i;
                        SkipWhitespace();
                        if (At(_i) != '=')
                        {
                            _i = candidate;
                            return;
                        }

                        _i = afterToken;
                    }

                    continue;
                }

                _i++;
            }
        }

        private string ReadToken()
        {
            var start = _i;
            while (_i < s.Length && IsTChar(s[_i]))
            {
                _i++;
            }

            return s[start.._i];
        }

        private string ReadToken68()
        {
            var start = _i;
            while (_i < s.Length && (char.IsAsciiLetterOrDigit(s[_i]) || s[_i] is '-' or '.' or '_' or '~' or '+' or '/'))
            {
                _i++;
            }

            if (_i == start)
            {
                return string.Empty;
            }

            while (_i < s.Length && s[_i] == '=')
            {
                _i++;
            }

            return s[start.._i];
        }

        private void SkipWhitespace()
        {
            while (_i < s.Length && s[_i] is ' ' or '\t')
            {
                _i++;
            }
        }

        private void SkipWhitespaceAndCommas()
        {
            while (_i < s.Length && s[_i] is ' ' or '\t' or ',')
            {
                _i++;
            }
        }

        private char At(int index) => index < s.Length ? s[index] : '\0';

        private static bool IsTChar(char c) =>
            char.IsAsciiLetterOrDigit(c) || c is '!' or '#' or '$' or '%' or '&' or '\'' or '*' or '+' or '-' or '.' or '^' or '_' or '`' or '|' or '~';

        private static bool IsQdText(char c) => c is '\t' or ' ' or '!' || (c >= '#' && c <= '[') || (c >= ']' && c <= '~') || c >= '\u0080';

        private static bool IsQuotedPairChar(char c) => c is '\t' or ' ' || (c >= '!' && c <= '~') || c >= '\u0080';
    }
}
