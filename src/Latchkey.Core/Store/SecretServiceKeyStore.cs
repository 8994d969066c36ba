using System.Security.Cryptography;
using Tmds.DBus.Protocol;

namespace Latchkey.Store;

/// <summary>
/// The freedesktop.org Secret Service (GNOME Keyring, KWallet, KeePassXC) on the D-Bus session bus, through
/// Tmds.DBus.Protocol. The item lives in the default collection (the login keyring), with the attributes
/// <c>application=latchkey</c> and <c>home=PATH</c>, so <c>secret-tool lookup application latchkey home PATH</c>
/// finds it.
/// </summary>
/// <remarks>
/// The session uses the <c>plain</c> algorithm: the secret crosses the user's own session bus unencrypted, as
/// with <c>secret-tool</c>. A locked collection is never unlocked here (that needs a prompt, which a command in a
/// terminal or a service cannot answer): it is reported, naming what to unlock.
/// </remarks>
internal sealed class SecretServiceKeyStore(string? busAddress) : IOsKeyStore
{
    private const string Service = "org.freedesktop.secrets";
    private const string ServicePath = "/org/freedesktop/secrets";
    private const string ServiceInterface = "org.freedesktop.Secret.Service";
    private const string ItemInterface = "org.freedesktop.Secret.Item";
    private const string CollectionInterface = "org.freedesktop.Secret.Collection";
    private const string NoPrompt = "/";

    /// <summary>How long one call may take before the store counts as out of reach.</summary>
    public static TimeSpan CallTimeout { get; set; } = TimeSpan.FromSeconds(10);

    public string Kind => "secret-service";

    public string Description => "the Secret Service (GNOME Keyring or KWallet) on the D-Bus session bus";

    public string UnlockHint =>
        "Unlock the login keyring (log in to the desktop, or open Passwords and Keys / KWallet Manager and unlock it; on a server: echo PASSWORD | gnome-keyring-daemon --unlock --replace)";

    public string ReachHint =>
        "Run Latchkey in the desktop session where the keyring runs, or set DBUS_SESSION_BUS_ADDRESS to that session's bus (usually unix:path=/run/user/$(id -u)/bus; it must be the same user's, with the login keyring unlocked)";

    public string RemoveCommand(string account) => $"secret-tool clear application latchkey home {OsKeyStores.ShellQuote(account)}";

    public byte[]? Read(string account) => Run<byte[]?>(async connection =>
    {
        var (unlocked, locked) = await SearchAsync(connection, account);
        if (unlocked.Length == 0)
        {
            return locked.Length > 0
                ? throw new OsKeyStoreException(OsKeyStoreFailure.Locked, "the keyring holding Latchkey's master key is locked")
                : null;
        }

        var session = await OpenSessionAsync(connection);
        return await GetSecretAsync(connection, unlocked[0], session);
    });

    public void Write(string account, ReadOnlySpan<byte> secret)
    {
        var value = secret.ToArray();
        try
        {
            Run(async connection =>
            {
                var collection = await DefaultCollectionAsync(connection);
                if (await IsLockedAsync(connection, collection))
                {
                    throw new OsKeyStoreException(OsKeyStoreFailure.Locked, $"the default keyring ({collection}) is locked");
                }

                var session = await OpenSessionAsync(connection);
                var prompt = await CreateItemAsync(connection, collection, account, session, value);
                return prompt == NoPrompt
                    ? 0
                    : throw new OsKeyStoreException(OsKeyStoreFailure.Locked, "the Secret Service asks for a prompt (the keyring is locked)");
            });
        }
        finally
        {
            CryptographicOperations.ZeroMemory(value);
        }
    }

    public bool Delete(string account) => Run(async connection =>
    {
        var (unlocked, locked) = await SearchAsync(connection, account);
        if (unlocked.Length == 0 && locked.Length > 0)
        {
            throw new OsKeyStoreException(OsKeyStoreFailure.Locked, "the keyring holding Latchkey's master key is locked");
        }

        foreach (var item in unlocked)
        {
            var prompt = await CallAsync(connection, item, ItemInterface, "Delete", null, static (m, _) => m.GetBodyReader().ReadObjectPathAsString(), static (ref MessageWriter _) => { });
            if (prompt != NoPrompt)
            {
                throw new OsKeyStoreException(OsKeyStoreFailure.Locked, "the Secret Service asks for a prompt to delete the item (the keyring is locked)");
            }
        }

        return unlocked.Length > 0;
    });

    private T Run<T>(Func<DBusConnection, Task<T>> action)
    {
        if (string.IsNullOrWhiteSpace(busAddress))
        {
            throw new OsKeyStoreException(OsKeyStoreFailure.Unavailable, "there is no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)");
        }

        // Off the caller's thread: a command's synchronous path must not wait on a continuation it blocks.
        return Task.Run(async () =>
        {
            using var connection = new DBusConnection(busAddress);
            try
            {
                await connection.ConnectAsync().AsTask().WaitAsync(CallTimeout);
            }
            catch (Exception ex) when (ex is DBusConnectFailedException or DBusConnectionException or TimeoutException or IOException)
            {
                throw new OsKeyStoreException(OsKeyStoreFailure.Unavailable, $"the D-Bus session bus does not answer ({ex.Message})", ex);
            }

            try
            {
                return await action(connection).WaitAsync(CallTimeout);
            }
            catch (TimeoutException ex)
            {
                throw new OsKeyStoreException(OsKeyStoreFailure.Unavailable, $"the Secret Service did not answer within {CallTimeout.TotalSeconds:0} s", ex);
            }
            catch (DBusErrorReplyException ex) when (ex.ErrorName is "org.freedesktop.DBus.Error.ServiceUnknown" or "org.freedesktop.DBus.Error.NameHasNoOwner" or "org.freedesktop.DBus.Error.NoReply"
                || ex.ErrorName.StartsWith("org.freedesktop.DBus.Error.Spawn", StringComparison.Ordinal))
            {
                throw new OsKeyStoreException(OsKeyStoreFailure.Unavailable, $"no Secret Service runs on the D-Bus session bus ({ex.ErrorName})", ex);
            }
            catch (DBusErrorReplyException ex) when (ex.ErrorName == "org.freedesktop.Secret.Error.IsLocked")
            {
                throw new OsKeyStoreException(OsKeyStoreFailure.Locked, "the keyring is locked", ex);
            }
            catch (DBusErrorReplyException ex)
            {
                throw new OsKeyStoreException(OsKeyStoreFailure.Failed, $"the Secret Service refused: {ex.ErrorName}: {ex.ErrorMessage}", ex);
            }
            catch (Exception ex) when (ex is DBusConnectionException or DBusReadException or DBusMessageException or IOException)
            {
                throw new OsKeyStoreException(OsKeyStoreFailure.Unavailable, $"the D-Bus connection failed ({ex.Message})", ex);
            }
        }).GetAwaiter().GetResult();
    }

    private static Task<T> CallAsync<T>(DBusConnection connection, string path, string @interface, string member, string? signature, MessageValueReader<T> read, WriteBody write)
    {
        var writer = connection.GetMessageWriter();
        try
        {
            writer.WriteMethodCallHeader(destination: Service, path: path, @interface: @interface, member: member, signature: signature);
            write(ref writer);
            return connection.CallMethodAsync(writer.CreateMessage(), read, null);
        }
        finally
        {
            writer.Dispose();
        }
    }

    private delegate void WriteBody(ref MessageWriter writer);

    private static void WriteAttributes(ref MessageWriter writer, string account)
    {
        var dictionary = writer.WriteDictionaryStart();
        foreach (var (key, value) in Attributes(account))
        {
            writer.WriteDictionaryEntryStart();
            writer.WriteString(key);
            writer.WriteString(value);
        }

        writer.WriteDictionaryEnd(dictionary);
    }

    private static KeyValuePair<string, string>[] Attributes(string account) => [new("application", "latchkey"), new("home", account)];

    private static Task<(string[] Unlocked, string[] Locked)> SearchAsync(DBusConnection connection, string account) =>
        CallAsync(connection, ServicePath, ServiceInterface, "SearchItems", "a{ss}",
            static (m, _) =>
            {
                var reader = m.GetBodyReader();
                return (reader.ReadArrayOfObjectPath().Select(p => p.ToString()).ToArray(), reader.ReadArrayOfObjectPath().Select(p => p.ToString()).ToArray());
            },
            (ref MessageWriter w) => WriteAttributes(ref w, account));

    private static Task<string> OpenSessionAsync(DBusConnection connection) =>
        CallAsync(connection, ServicePath, ServiceInterface, "OpenSession", "sv",
            static (m, _) =>
            {
                var reader = m.GetBodyReader();
                reader.ReadVariantValue();
                return reader.ReadObjectPathAsString();
            },
            static (ref MessageWriter w) =>
            {
                w.WriteString("plain");
                w.WriteVariantString(string.Empty);
            });

    private static Task<byte[]> GetSecretAsync(DBusConnection connection, string item, string session) =>
        CallAsync(connection, item, ItemInterface, "GetSecret", "o",
            static (m, _) =>
            {
                var reader = m.GetBodyReader();
                reader.AlignStruct();
                reader.ReadObjectPath();
                reader.ReadArrayOfByte();
                return reader.ReadArrayOfByte();
            },
            (ref MessageWriter w) => w.WriteObjectPath(session));

    private static async Task<string> DefaultCollectionAsync(DBusConnection connection)
    {
        var path = await CallAsync(connection, ServicePath, ServiceInterface, "ReadAlias", "s",
            static (m, _) => m.GetBodyReader().ReadObjectPathAsString(),
            static (ref MessageWriter w) => w.WriteString("default"));
        return path == NoPrompt
            ? throw new OsKeyStoreException(OsKeyStoreFailure.Unavailable, "the Secret Service has no default keyring (create a login keyring in Passwords and Keys, or KWallet)")
            : path;
    }

    private static Task<bool> IsLockedAsync(DBusConnection connection, string collection) =>
        CallAsync(connection, collection, "org.freedesktop.DBus.Properties", "Get", "ss",
            static (m, _) => m.GetBodyReader().ReadVariantValue().GetBool(),
            static (ref MessageWriter w) =>
            {
                w.WriteString(CollectionInterface);
                w.WriteString("Locked");
            });

    private static Task<string> CreateItemAsync(DBusConnection connection, string collection, string account, string session, byte[] value) =>
        CallAsync(connection, collection, CollectionInterface, "CreateItem", "a{sv}(oayays)b",
            static (m, _) =>
            {
                var reader = m.GetBodyReader();
                reader.ReadObjectPath();
                return reader.ReadObjectPathAsString();
            },
            (ref MessageWriter w) =>
            {
                var attributes = new Dict<string, string>();
                foreach (var (key, v) in Attributes(account))
                {
                    attributes.Add(key, v);
                }

                w.WriteDictionary(new Dictionary<string, VariantValue>
                {
                    ["org.freedesktop.Secret.Item.Label"] = VariantValue.String($"Latchkey master key ({account})"),
                    ["org.freedesktop.Secret.Item.Attributes"] = attributes.AsVariantValue(),
                });
                w.WriteStructureStart();
                w.WriteObjectPath(session);
                w.WriteArray(ReadOnlySpan<byte>.Empty);
                w.WriteArray(value.AsSpan());
                w.WriteString("text/plain");
                w.WriteBool(true);
            });
}
