using System.Security.Cryptography;

namespace Latchkey.Store;

/// <summary>Which backend a command or the gateway uses, and where it is (see <see cref="StoreSelector"/>).</summary>
/// <param name="Backend"><c>sqlite</c> or <c>postgresql</c>.</param>
/// <param name="Postgres">The PostgreSQL location, for <c>postgresql</c>.</param>
internal sealed record StoreChoice(string Backend, PostgresLocation? Postgres);

/// <summary>
/// Picks the store backend from <c>--store</c>, else <c>LATCHKEY_STORE</c>, else SQLite in the home folder, and
/// opens it. Anything that is not a valid choice is refused with the list of valid ones.
/// </summary>
/// <remarks>
/// For PostgreSQL, the master key comes from <c>LATCHKEY_KEY_FILE</c> (a 32-byte 0600 file, or a folder holding
/// <c>master.key</c>) shared by every replica, else from the home folder's <c>master.key</c>. The database never
/// sees the key; it records the key's id and refuses a replica holding another one.
/// </remarks>
internal static class StoreSelector
{
    public const string StoreVariable = "LATCHKEY_STORE";

    public const string KeyFileVariable = "LATCHKEY_KEY_FILE";

    public const string ValidChoices =
        "sqlite (the default: latchkey.db in the home folder), postgresql://USER@HOST:PORT/DATABASE (or postgres://...), " +
        "or an Npgsql connection string such as 'Host=HOST;Database=DATABASE;Username=USER'";

    /// <summary>Decides the backend. <paramref name="storeOption"/> is the <c>--store</c> value (from the command line).</summary>
    /// <exception cref="StoreException">Not a valid choice, or a password on the command line.</exception>
    public static StoreChoice Choose(string? storeOption, Func<string, string?>? getEnvironment = null)
    {
        getEnvironment ??= Environment.GetEnvironmentVariable;
        var fromCommandLine = !string.IsNullOrWhiteSpace(storeOption);
        var spec = (fromCommandLine ? storeOption : getEnvironment(StoreVariable))?.Trim();
        var origin = fromCommandLine ? "--store" : StoreVariable;
        if (string.IsNullOrEmpty(spec) || spec.Equals("sqlite", StringComparison.OrdinalIgnoreCase))
        {
            return new StoreChoice("sqlite", null);
        }

        if (!PostgresLocation.Matches(spec))
        {
            throw new StoreException("unknown_store",
                $"{origin} '{PostgresLocation.Mask(spec)}' is not a store Latchkey knows. Valid choices: {ValidChoices}.");
        }

        var location = PostgresLocation.Parse(spec);
        if (fromCommandLine && location.HasPassword)
        {
            throw new StoreException("password_in_arguments",
                $"--store '{PostgresLocation.Mask(spec)}' carries a password, and command-line arguments show in 'ps' and shell history. " +
                $"Leave the password out and set PGPASSWORD or use ~/.pgpass, or put the whole URL in {StoreVariable}.");
        }

        return new StoreChoice("postgresql", location);
    }

    /// <summary>Opens the chosen store.</summary>
    /// <exception cref="StoreException">The store cannot be chosen or used; the message says why and what to do.</exception>
    public static ILatchkeyStore Open(string? storeOption, StoreHome home, TimeProvider time, Func<string, string?>? getEnvironment = null) =>
        Open(storeOption, home, time, getEnvironment, sealing => sealing);

    /// <summary>
    /// For <c>latchkey store seal</c>: what sealing the chosen store would seal, found in a transaction that is then
    /// rolled back; null when there is nothing to seal (the store is sealed already, or was created just now).
    /// </summary>
    /// <exception cref="StoreException">The store cannot be used, or must not be sealed (<c>store_rolled_back</c>).</exception>
    public static SealPreview? PreviewSealing(string? storeOption, StoreHome home, TimeProvider time, Func<string, string?>? getEnvironment = null)
    {
        StoreSealing? preview = null;
        using (Open(storeOption, home, time, getEnvironment, sealing => preview = sealing.ForPreview()) as IDisposable)
        {
        }

        return preview!.Found;
    }

    /// <summary>For <c>latchkey store seal</c>: seals the chosen store if it still holds exactly what <paramref name="approved"/> showed.</summary>
    /// <exception cref="StoreException">The store changed since (<c>store_changed</c>), cannot be used, or must not be sealed.</exception>
    public static void Seal(string? storeOption, StoreHome home, TimeProvider time, SealPreview approved, Func<string, string?>? getEnvironment = null)
    {
        ArgumentNullException.ThrowIfNull(approved);
        using (Open(storeOption, home, time, getEnvironment, sealing => sealing.ForApproval(approved)) as IDisposable)
        {
        }
    }

    /// <summary>
    /// Who may seal a store from before seals, for this home: the store on open when the master key is the home's
    /// own <c>master.key</c> (always so for SQLite); only <c>latchkey store seal</c> when it comes from
    /// <c>LATCHKEY_KEY_FILE</c>, a team's shared key (see <see cref="StoreSealing"/>).
    /// </summary>
    public static StoreSealing Sealing(StoreChoice choice, StoreHome home, Func<string, string?> getEnvironment)
    {
        ArgumentNullException.ThrowIfNull(choice);
        ArgumentNullException.ThrowIfNull(home);
        ArgumentNullException.ThrowIfNull(getEnvironment);
        var ledger = SealLedger.In(home);
        return choice.Postgres is not null && getEnvironment(KeyFileVariable) is { Length: > 0 }
            ? StoreSealing.ForSharedKey(ledger)
            : StoreSealing.ForHomeKey(ledger);
    }

    private static ILatchkeyStore Open(string? storeOption, StoreHome home, TimeProvider time, Func<string, string?>? getEnvironment, Func<StoreSealing, StoreSealing> adjust)
    {
        ArgumentNullException.ThrowIfNull(home);
        ArgumentNullException.ThrowIfNull(time);
        getEnvironment ??= Environment.GetEnvironmentVariable;
        var choice = Choose(storeOption, getEnvironment);
        var sealing = adjust(Sealing(choice, home, getEnvironment));
        if (choice.Postgres is null)
        {
            return SqliteCredentialStore.Open(home, time, sealing);
        }

        var key = LoadSharedKey(home, getEnvironment);
        if (getEnvironment(KeyFileVariable) is not { Length: > 0 } && MasterKeys.For(home, getEnvironment).Where() == MasterKeyPlace.Keychain)
        {
            sealing = sealing.WithKeyInKeychain(); // the home's key, in a keychain: see StoreSealing
        }

        SecretProtector protector;
        try
        {
            protector = new SecretProtector(key);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }

        return PostgresCredentialStore.Open(choice.Postgres, protector, time, sealing: sealing);
    }

    /// <summary>
    /// The master key for a shared store: the file <c>LATCHKEY_KEY_FILE</c> names (never created: every replica
    /// must hold the same one), else the home folder's <c>master.key</c> (created on first use).
    /// </summary>
    public static byte[] LoadSharedKey(StoreHome home, Func<string, string?> getEnvironment)
    {
        ArgumentNullException.ThrowIfNull(home);
        ArgumentNullException.ThrowIfNull(getEnvironment);
        if (getEnvironment(KeyFileVariable) is { Length: > 0 } configured)
        {
            var path = Directory.Exists(configured) ? Path.Combine(configured, "master.key") : configured;
            return ReadKeyFile(path);
        }

        // Only the key lives in the home folder here, so a network filesystem is no danger to it.
        var keyHome = new StoreHome(home.Path) { DetectNetworkFilesystem = _ => null };
        keyHome.EnsureReady();
        return MasterKeys.For(keyHome, getEnvironment).LoadOrCreate();
    }

    private static byte[] ReadKeyFile(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new StoreException("key_missing",
                $"The key file {path} ({KeyFileVariable}) does not exist. Copy it from a replica that works; for the very first replica, create one: (umask 077; head -c 32 /dev/urandom > '{path}').",
                innerException: ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StoreException("key_unavailable",
                $"The key file {path} ({KeyFileVariable}) cannot be read ({ex.Message}). Nothing was changed; fix its owner or mode (chmod 600) and try again.",
                retryable: true, innerException: ex);
        }

        if (bytes.Length != 32)
        {
            CryptographicOperations.ZeroMemory(bytes);
            throw new StoreException("key_invalid",
                $"The key file {path} ({KeyFileVariable}) is {bytes.Length} bytes long, not 32: it is damaged or not Latchkey's. Nothing was changed. Copy the key file from a replica that works.");
        }

        if (StoreHome.CheckFileMode(path) is { } problem)
        {
            CryptographicOperations.ZeroMemory(bytes);
            throw new StoreException("key_permissions", problem);
        }

        return bytes;
    }
}
