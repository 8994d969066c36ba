namespace Latchkey.Store;

/// <summary>
/// Tells whether a path is on a network filesystem, where SQLite's WAL is unsafe (sqlite.org/wal.html). Linux
/// reads the mount table; Windows asks the drive type; elsewhere it reports nothing.
/// </summary>
internal static class NetworkFilesystem
{
    private static readonly HashSet<string> NetworkTypes = new(StringComparer.Ordinal)
    {
        "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "afs", "afpfs", "ncpfs", "9p", "ceph", "glusterfs",
        "fuse.sshfs", "sshfs", "davfs", "fuse.davfs2", "fuse.rclone", "fuse.s3fs", "lustre", "gpfs", "beegfs",
    };

    /// <summary>Returns the filesystem type when <paramref name="path"/> is on a network filesystem.</summary>
    public static string? Detect(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            var root = Path.GetPathRoot(path);
            return root is not null && new DriveInfo(root).DriveType == DriveType.Network ? "network drive" : null;
        }

        if (OperatingSystem.IsLinux() && File.Exists("/proc/self/mounts"))
        {
            return DetectFromMountTable(File.ReadAllText("/proc/self/mounts"), path);
        }

        return null;
    }

    /// <summary>Finds the mount with the longest prefix of <paramref name="path"/> in a mount table.</summary>
    public static string? DetectFromMountTable(string mounts, string path)
    {
        string? bestType = null;
        var bestLength = -1;
        foreach (var line in mounts.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var fields = line.Split(' ');
            if (fields.Length < 3)
            {
                continue;
            }

            var mountPoint = fields[1].Replace("\\040", " ", StringComparison.Ordinal);
            var isPrefix = mountPoint == "/"
                || string.Equals(path, mountPoint, StringComparison.Ordinal)
                || path.StartsWith(mountPoint.TrimEnd('/') + "/", StringComparison.Ordinal);
            if (isPrefix && mountPoint.Length > bestLength)
            {
                bestLength = mountPoint.Length;
                bestType = fields[2];
            }
        }

        return bestType is not null && NetworkTypes.Contains(bestType) ? bestType : null;
    }
}
