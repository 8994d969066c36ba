using Latchkey.Store;

namespace Latchkey.Tests.Store;

public sealed class NetworkFilesystemTests
{
    private const string Mounts =
        """
        /dev/vda / ext4 rw,relatime 0 0
        server:/export /home/dev/nfs nfs4 rw 0 0
        //nas/share /mnt/smb cifs rw 0 0
        tmpfs /home/dev/nfs/local tmpfs rw 0 0
        host:/x /mnt/with\040space fuse.sshfs rw 0 0
        """;

    [Theory]
    [InlineData("/home/dev/.local/share/latchkey", null)]
    [InlineData("/home/dev/nfs/latchkey", "nfs4")]
    [InlineData("/home/dev/nfs", "nfs4")]
    [InlineData("/home/dev/nfsother/latchkey", null)]
    [InlineData("/mnt/smb/latchkey", "cifs")]
    [InlineData("/home/dev/nfs/local/latchkey", null)]
    [InlineData("/mnt/with space/latchkey", "fuse.sshfs")]
    public void DetectFromMountTable_Path_NamesNetworkFilesystemOrNull(string path, string? expected)
    {
        Assert.Equal(expected, NetworkFilesystem.DetectFromMountTable(Mounts, path));
    }

    [Fact]
    public void Open_HomeOnNetworkFilesystem_RefusedNamingTheTypeAndTheWayOut()
    {
        using var temp = new TempHome();
        var home = new StoreHome(temp.Path) { DetectNetworkFilesystem = _ => "nfs4" };

        var ex = Assert.Throws<StoreException>(() => SqliteCredentialStore.Open(home, TimeProvider.System));

        Assert.Equal("network_filesystem", ex.Code);
        Assert.Contains("nfs4", ex.Message, StringComparison.Ordinal);
        Assert.Contains("LATCHKEY_HOME", ex.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(home.DatabasePath));
    }
}
