namespace Latchkey.Tests;

/// <summary>The test classes of this assembly that share one PostgreSQL server (they run one after another). xunit
/// reads collection definitions only from the test assembly itself, so each test project declares its own.</summary>
[CollectionDefinition(Name)]
public sealed class PostgresTests : ICollectionFixture<PostgresServer>
{
    public const string Name = "postgres";
}
