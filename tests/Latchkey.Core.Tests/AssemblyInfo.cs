// These tests check Unix file modes and run on Linux and macOS; Windows ACLs need tests of their own.
[assembly: System.Runtime.Versioning.UnsupportedOSPlatform("windows")]

// No test may put a key into the keyring of the person running the tests: the OS keychain is off for this test
// run and the processes it starts, except where a test turns it on against a private keyring of its own.
internal static class NoRealKeychain
{
#pragma warning disable CA2255 // a module initializer in a test assembly, on purpose
    [System.Runtime.CompilerServices.ModuleInitializer]
#pragma warning restore CA2255
    internal static void TurnOff() => System.Environment.SetEnvironmentVariable("LATCHKEY_KEYCHAIN", "off");
}
