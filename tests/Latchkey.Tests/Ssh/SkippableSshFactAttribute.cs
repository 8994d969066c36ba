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
