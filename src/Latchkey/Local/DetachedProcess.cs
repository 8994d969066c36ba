using System.Runtime.InteropServices;

namespace Latchkey.Local;

/// <summary>
/// Starts a long-lived background process (the gateway <c>latchkey run</c> starts) fully detached, with
/// <c>posix_spawn</c>: a new session, standard input from <c>/dev/null</c>, standard output and error appended to a
/// log file, and no other descriptor of the starter. <see cref="System.Diagnostics.Process"/> cannot do this: it
/// hands the child the starter's own descriptors 1 and 2 (or pipes back to it), and the .NET runtime duplicates
/// descriptors 0-2 when it starts, before <c>Main</c> runs, so the child cannot undo that itself. An inherited
/// duplicate of the starter's output pipe keeps whoever reads that output (a test, <c>$(latchkey run ...)</c>)
/// waiting for as long as the gateway lives.
/// </summary>
/// <remarks>Linux only (glibc or musl). Not thread-safe with respect to other code that changes this process's
/// descriptors while it runs; the returned process is a child of this one until this process exits.</remarks>
internal static unsafe partial class DetachedProcess
{
    private const int ReadOnly = 0;         // O_RDONLY
    private const int WriteOnly = 1;        // O_WRONLY
    private const int Create = 0x40;        // O_CREAT
    private const int Append = 0x400;       // O_APPEND
    private const int SetSignalDefaults = 0x04; // POSIX_SPAWN_SETSIGDEF
    private const int SetSignalMask = 0x08;     // POSIX_SPAWN_SETSIGMASK
    private const int SetSession = 0x80;        // POSIX_SPAWN_SETSID (glibc 2.26+, musl)
    private const int NoHang = 1;               // WNOHANG
    private const uint PrivateMode = 384;       // 0600
    private const int OpaqueSize = 1024;        // larger than glibc's posix_spawnattr_t (336) and file actions (80)

    /// <summary>Whether this platform can start a detached process this way.</summary>
    public static bool IsSupported => OperatingSystem.IsLinux();

    /// <summary>
    /// Starts <paramref name="path"/> with <paramref name="arguments"/> (argv[1..]) and this process's environment
    /// plus <paramref name="environment"/> (a null value removes a variable). Returns the child's pid.
    /// </summary>
    /// <exception cref="IOException">posix_spawn failed; the message names the error number.</exception>
    public static int Start(string path, IReadOnlyList<string> arguments, string logPath, IReadOnlyDictionary<string, string?> environment)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
        {
            env[(string)e.Key] = (string?)e.Value ?? string.Empty;
        }

        foreach (var (name, value) in environment)
        {
            if (value is null)
            {
                env.Remove(name);
            }
            else
            {
                env[name] = value;
            }
        }

        var strings = new List<IntPtr>();
        var actions = NativeMemory.AllocZeroed(OpaqueSize);
        var attributes = NativeMemory.AllocZeroed(OpaqueSize);
        var signals = NativeMemory.AllocZeroed(128); // sigset_t
        try
        {
            IntPtr Utf8(string s)
            {
                var p = Marshal.StringToCoTaskMemUTF8(s);
                strings.Add(p);
                return p;
            }

            var argv = new IntPtr[arguments.Count + 2];
            argv[0] = Utf8(path);
            for (var i = 0; i < arguments.Count; i++)
            {
                argv[i + 1] = Utf8(arguments[i]);
            }

            var envp = new IntPtr[env.Count + 1];
            var n = 0;
            foreach (var (name, value) in env)
            {
                envp[n++] = Utf8(name + "=" + value);
            }

            Check(FileActionsInit(actions), "posix_spawn_file_actions_init");
            Check(AddOpen(actions, 0, Utf8("/dev/null"), ReadOnly, 0), "posix_spawn_file_actions_addopen");
            Check(AddOpen(actions, 1, Utf8(logPath), WriteOnly | Create | Append, PrivateMode), "posix_spawn_file_actions_addopen");
            Check(AddDup2(actions, 1, 2), "posix_spawn_file_actions_adddup2");
            AddCloseFromIfAvailable(actions);

            Check(AttrInit(attributes), "posix_spawnattr_init");
            _ = SignalEmptySet(signals);
            Check(AttrSetSignalMask(attributes, signals), "posix_spawnattr_setsigmask");
            _ = SignalFillSet(signals);
            Check(AttrSetSignalDefault(attributes, signals), "posix_spawnattr_setsigdefault");
            Check(AttrSetFlags(attributes, SetSession | SetSignalMask | SetSignalDefaults), "posix_spawnattr_setflags");

            // Descriptors someone else opened without close-on-exec (a test runner, a shell) must not leak either,
            // where glibc is too old for closefrom.
            NativeMethods.CloseDescriptorsOnExec();
            int pid;
            fixed (IntPtr* a = argv)
            fixed (IntPtr* e = envp)
            {
                Check(Spawn(&pid, argv[0], actions, attributes, (IntPtr)a, (IntPtr)e), "posix_spawn " + path);
            }

            return pid;
        }
        finally
        {
            _ = FileActionsDestroy(actions);
            _ = AttrDestroy(attributes);
            NativeMemory.Free(actions);
            NativeMemory.Free(attributes);
            NativeMemory.Free(signals);
            foreach (var p in strings)
            {
                Marshal.FreeCoTaskMem(p);
            }
        }
    }

    /// <summary>Whether the child <paramref name="pid"/> has exited (and reaps it if so). False while it runs.</summary>
    public static bool HasExited(int pid)
    {
        int status;
        return WaitPid(pid, &status, NoHang) == pid;
    }

    private static void Check(int result, string call)
    {
        if (result != 0)
        {
            throw new IOException($"{call} failed (error {result}).");
        }
    }

    private static void AddCloseFromIfAvailable(void* actions)
    {
        // posix_spawn_file_actions_addclosefrom_np: glibc 2.34+. Older C libraries rely on close-on-exec marks.
        if ((NativeLibrary.TryLoad("libc.so.6", out var libc) || NativeLibrary.TryLoad("libc", typeof(DetachedProcess).Assembly, null, out libc))
            && NativeLibrary.TryGetExport(libc, "posix_spawn_file_actions_addclosefrom_np", out var export))
        {
            var closeFrom = (delegate* unmanaged<void*, int, int>)export;
            _ = closeFrom(actions, 3);
        }
    }

    [LibraryImport("libc", EntryPoint = "posix_spawn")]
    private static partial int Spawn(int* pid, IntPtr path, void* actions, void* attributes, IntPtr argv, IntPtr envp);

    [LibraryImport("libc", EntryPoint = "posix_spawn_file_actions_init")]
    private static partial int FileActionsInit(void* actions);

    [LibraryImport("libc", EntryPoint = "posix_spawn_file_actions_destroy")]
    private static partial int FileActionsDestroy(void* actions);

    [LibraryImport("libc", EntryPoint = "posix_spawn_file_actions_addopen")]
    private static partial int AddOpen(void* actions, int descriptor, IntPtr path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "posix_spawn_file_actions_adddup2")]
    private static partial int AddDup2(void* actions, int descriptor, int newDescriptor);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_init")]
    private static partial int AttrInit(void* attributes);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_destroy")]
    private static partial int AttrDestroy(void* attributes);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_setflags")]
    private static partial int AttrSetFlags(void* attributes, short flags);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_setsigmask")]
    private static partial int AttrSetSignalMask(void* attributes, void* mask);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_setsigdefault")]
    private static partial int AttrSetSignalDefault(void* attributes, void* set);

    [LibraryImport("libc", EntryPoint = "sigemptyset")]
    private static partial int SignalEmptySet(void* set);

    [LibraryImport("libc", EntryPoint = "sigfillset")]
    private static partial int SignalFillSet(void* set);

    [LibraryImport("libc", EntryPoint = "waitpid", SetLastError = true)]
    private static partial int WaitPid(int pid, int* status, int options);
}
