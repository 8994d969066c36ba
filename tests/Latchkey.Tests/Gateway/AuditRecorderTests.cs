using System.Net;
using Latchkey.Gateway;

namespace Latchkey.Tests.Gateway;

/// <summary>Which source a refused request counts against: one per machine, not one per address it can use.</summary>
public sealed class AuditRecorderTests
{
    [Theory]
    [InlineData("127.0.0.1", "loopback")]
    [InlineData("127.0.3.233", "loopback")] // every address of 127.0.0.0/8 is this machine
    [InlineData("::1", "loopback")]
    [InlineData("::ffff:127.0.0.9", "loopback")]
    [InlineData("192.0.2.7", "192.0.2.7")]
    [InlineData("::ffff:192.0.2.7", "192.0.2.7")]
    [InlineData("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64")] // one host usually holds a whole /64
    [InlineData("2001:db8:1:2::1", "2001:db8:1:2::/64")]
    [InlineData("2001:db8:1:3::1", "2001:db8:1:3::/64")]
    public void SourceOf_Address_GroupedAsOneMachine(string address, string source) =>
        Assert.Equal(source, AuditRecorder.SourceOf(IPAddress.Parse(address)));

    [Fact]
    public void SourceOf_UnixSocket_IsItsOwnSource() =>
        Assert.Equal(AuditRecorder.UnixSocketSource, AuditRecorder.SourceOf((IPAddress?)null));
}
