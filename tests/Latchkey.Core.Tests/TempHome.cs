using Latchkey.Store;

namespace Latchkey.Tests;

/// <summary>A private temporary home folder, deleted with the test.</summary>
public sealed class TempHome : IDisposable
{
    public TempHome()
    {
        Root = Directory.CreateTempSubdirectory("latchkey-test-").FullName;
        Path = System.IO.Path.Combine(Root, "home");
    }

    public string Root { get; }

    public string Path { get; }

    internal StoreHome Home => new(Path);

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
