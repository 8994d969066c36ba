// These tests check Unix file modes and run on Linux and macOS; Windows ACLs need tests of their own.
[assembly: System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
