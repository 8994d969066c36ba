namespace Latchkey.Tests.Ssh;

/// <summary>A test that needs the real sshd fixture: skipped, with the reason, where <see cref="SshServer"/> cannot run.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class SkippableSshFactAttribute : FactAttribute
{
    public SkippableSshFactAttribute()
    {
        if (SshServer.Unavailable() is { } why)
        {
            Skip = why;
        }
    }
}

/// <summary>
/// A test that also runs the built <c>latchkey</c> as the fixture's throwaway user: skipped when a folder on the way
/// to it is closed to other users (a checkout under a 0700 home folder, say).
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class SkippableSshRunFactAttribute : FactAttribute
{
    public SkippableSshRunFactAttribute()
    {
        if (SshServer.Unavailable() is { } why)
        {
            Skip = why;
            return;
        }

        for (var folder = Path.GetDirectoryName(Processes.LatchkeyExe); !string.IsNullOrEmpty(folder); folder = Path.GetDirectoryName(folder))
        {
            if ((File.GetUnixFileMode(folder) & UnixFileMode.OtherExecute) == 0)
            {
                Skip = $"another user cannot reach the built latchkey: {folder} is closed to other users";
                return;
            }
        }
    }
}
