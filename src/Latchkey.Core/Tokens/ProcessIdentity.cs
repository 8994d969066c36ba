using System.Globalization;
using System.Security.Cryptography;

namespace Latchkey.Tokens;

/// <summary>
/// Who holds a lease: <c>host/boot/pid/start/nonce</c>. On the same host and boot, a holder whose process is gone
/// (or whose PID was reused by a process that started later) is known dead, so its lease is free at once
/// instead of when it runs out.
/// </summary>
internal static class ProcessIdentity
{
    private static readonly string Host = Environment.MachineName;
    private static readonly string Boot = ReadBootId();

    /// <summary>This process's identity, with a fresh nonce per engine instance.</summary>
    public static string NewOwner() =>
        $"{Host}/{Boot}/{Environment.ProcessId}/{StartTicks(Environment.ProcessId)}/{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}";

    /// <summary>Whether an owner string names a process on this host and boot that is certainly no longer running.</summary>
    public static bool IsKnownDead(string owner)
    {
        var parts = owner.Split('/');
        if (parts.Length != 5 || parts[0] != Host || parts[1] != Boot || !int.TryParse(parts[2], CultureInfo.InvariantCulture, out var pid))
        {
            return false; // another machine, another boot, or a foreign format: only the lease time can tell
        }

        var start = StartTicks(pid);
        return start is null || !string.Equals(start, parts[3], StringComparison.Ordinal);
    }

    private static string ReadBootId()
    {
        try
        {
            return File.Exists("/proc/sys/kernel/random/boot_id") ? File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim() : "boot";
        }
        catch (IOException)
        {
            return "boot";
        }
    }

    /// <summary>The process's start time in clock ticks since boot (Linux <c>/proc/PID/stat</c> field 22), or null when it is gone.</summary>
    private static string? StartTicks(int pid)
    {
        try
        {
            if (OperatingSystem.IsLinux())
            {
                var stat = File.ReadAllText($"/proc/{pid}/stat");
                var afterName = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                return afterName[19];
            }

            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return process.StartTime.ToUniversalTime().Ticks.ToString(CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or InvalidOperationException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
