using Latchkey.Store;

namespace Latchkey.Tests;

/// <summary>A <see cref="TempHome"/> as the store library sees it (the shared test-support project does not
/// reference the store library).</summary>
internal static class TempHomeStore
{
    extension(TempHome home)
    {
        public StoreHome Home => new(home.Path);
    }
}
