namespace Latchkey.Tests;

/// <summary>A private temporary folder holding a home folder and the start barrier file beside it.</summary>
public sealed class TempHome : IDisposable
{
    public TempHome()
    {
        Root = Directory.CreateTempSubdirectory("latchkey-e2e-").FullName;
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
