namespace Latchkey.Testing;

/// <summary>
/// A private temporary folder holding a Latchkey home folder (<see cref="Path"/>) and, beside it, the start barrier
/// file the store-driver processes wait for. Deleted with the test.
/// </summary>
public sealed class TempHome : IDisposable
{
    public TempHome()
    {
        Root = Directory.CreateTempSubdirectory("latchkey-test-").FullName;
        Path = System.IO.Path.Combine(Root, "home");
    }

    public string Root { get; }

    public string Path { get; }

    /// <summary>Releases every driver process waiting at the start barrier.</summary>
    public void Go() => File.WriteAllText(System.IO.Path.Combine(Root, "go"), "go");

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
