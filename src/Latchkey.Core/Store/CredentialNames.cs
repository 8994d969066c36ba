namespace Latchkey.Store;

/// <summary>Rules for credential names: they appear in URLs (<c>/c/NAME/…</c>), commands and file listings.</summary>
internal static class CredentialNames
{
    public const int MaxLength = 64;

    /// <summary>Returns a sentence describing what is wrong with <paramref name="name"/>, or <see langword="null"/>.</summary>
    public static string? Validate(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return "A credential name cannot be empty.";
        }

        if (name.Length > MaxLength)
        {
            return $"A credential name is at most {MaxLength} characters long.";
        }

        if (!char.IsAsciiLetterOrDigit(name[0]))
        {
            return "A credential name starts with a letter or digit.";
        }

        foreach (var c in name)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('-' or '_' or '.'))
            {
                return "A credential name has only letters, digits, '-', '_' and '.' (it is used in URLs and commands).";
            }
        }

        return null;
    }
}
