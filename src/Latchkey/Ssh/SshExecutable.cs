using Latchkey.Diagnostics;

namespace Latchkey.Ssh;

/// <summary>The system's OpenSSH client that <c>latchkey ssh</c> drives.</summary>
internal static class SshExecutable
{
    /// <summary>The ssh executable to run instead of the one on PATH.</summary>
    public const string Variable = "LATCHKEY_SSH";

    /// <summary>
    /// The executable <see cref="Variable"/> names, else the first <c>ssh</c> on <c>PATH</c>; an
    /// <see cref="ActionableException"/> saying how to install one when there is none.
    /// </summary>
    public static string Find()
    {
        if (Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } configured)
        {
            return configured;
        }

        foreach (var folder in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(folder, "ssh");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new ActionableException("There is no 'ssh' on PATH: latchkey ssh runs the system's OpenSSH client.",
            $"Install it (Debian/Ubuntu: apt-get install openssh-client; Fedora: dnf install openssh-clients), or point {Variable} at it.");
    }
}
