using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Latchkey.Store;

/// <summary>
/// What a row seal covers, as bytes: a domain tag naming the table and format, then each bound field in a fixed
/// order, each written as a type byte, a 4-byte big-endian length and its bytes (null has its own type byte and no
/// length). No two different rows, and no row of one table and one of another, encode to the same bytes, so a
/// seal moved between rows, tables or fields never verifies.
/// </summary>
/// <remarks>
/// <para>The seal itself is HMAC-SHA256 of these bytes under a key derived from the master key
/// (<see cref="SecretProtector.SealRow"/>), so someone who can write the database but lacks the key file can
/// neither make a seal for a row they wrote nor change a sealed field without the row failing to verify.</para>
/// <para>Not bound, deliberately: refresh coordination (lease, attempt, backoff, failure count), which the token
/// engine writes without a content write; changing it can delay a refresh, never send a secret anywhere. The last
/// refresh error and the last upstream failure are sealed on their own (<see cref="Diagnostic"/>), since their
/// text is shown to people and agents; one that does not verify is dropped. Also not bound:
/// <c>created_at</c>, <c>updated_at</c>, <c>updated_by</c> of credentials and <c>last_used_at</c> of client keys,
/// which are shown, never acted on.</para>
/// </remarks>
internal static class RowSeal
{
    /// <summary>The type byte that starts each field.</summary>
    private enum Field : byte
    {
        Null = 0,
        Text = 1,
        Integer = 2,
        Bytes = 3,
    }

    /// <summary>A credential row: everything that decides where its secret goes and how.</summary>
    public static byte[] Credential(
        string id, string name, string kind, long version, string state, string? reasonJson, string metadataJson,
        string keyId, ReadOnlySpan<byte> sealedSecrets, string? refreshTokenFingerprint, string? accessTokenFingerprint)
    {
        var writer = Content("latchkey/row/credential/v1", id, name, kind, version, state, reasonJson, metadataJson, keyId, sealedSecrets, refreshTokenFingerprint);
        Text(writer, accessTokenFingerprint);
        return writer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// A saved version: its content, bound to the record it belongs to (id, and the name and kind that record had
    /// when the version was saved; neither ever changes for an id), so a version cannot be moved to another record
    /// or changed before a restore brings it back.
    /// </summary>
    public static byte[] History(
        string credentialId, string name, string kind, long version, string state, string? reasonJson, string metadataJson,
        string keyId, ReadOnlySpan<byte> sealedSecrets, string? refreshTokenFingerprint, long writtenAt)
    {
        var writer = Content("latchkey/row/credential-history/v1", credentialId, name, kind, version, state, reasonJson, metadataJson, keyId, sealedSecrets, refreshTokenFingerprint);
        Integer(writer, writtenAt);
        return writer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// A client key: who it is, which key value matches it, what it may use and until when, the client it was made
    /// for, and what it may spend. A key made for no client and without limits encodes exactly as before those fields
    /// existed (<c>client-key/v1</c>), and one made for a client without limits as <c>client-key/v2</c> (the client
    /// last), so the seals of keys written before stay valid; a key with any limit is <c>client-key/v3</c>, with the
    /// client (or null) and each limit (or null) last. So setting, clearing, raising or lowering any of them breaks
    /// the seal.
    /// </summary>
    public static byte[] ClientKey(string name, string keyId, string secretFingerprint, string credentialsJson, long createdAt, long? expiresAt, long? revokedAt, string? madeFor, ClientKeyLimits? limits = null)
    {
        limits = limits?.OrNull();
        var writer = Start(limits is not null ? "latchkey/row/client-key/v3" : madeFor is null ? "latchkey/row/client-key/v1" : "latchkey/row/client-key/v2");
        Text(writer, name);
        Text(writer, keyId);
        Text(writer, secretFingerprint);
        Text(writer, credentialsJson);
        Integer(writer, createdAt);
        Integer(writer, expiresAt);
        Integer(writer, revokedAt);
        if (limits is not null)
        {
            Text(writer, madeFor);
            Integer(writer, limits.Rate?.Count);
            Integer(writer, limits.Rate?.WindowSeconds);
            Integer(writer, limits.TokensPerDay);
            Integer(writer, limits.Concurrent);
        }
        else if (madeFor is not null)
        {
            Text(writer, madeFor);
        }

        return writer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// A diagnostic a process records without a content write (the last refresh error, the last upstream failure),
    /// bound to the record's name and its column: its text reaches <c>status</c> and agents' error answers, so it must
    /// be Latchkey's own, not a sentence someone wrote into the database.
    /// </summary>
    public static byte[] Diagnostic(string name, string column, string json)
    {
        var writer = Start("latchkey/row/diagnostic/v1");
        Text(writer, name);
        Text(writer, column);
        Text(writer, json);
        return writer.WrittenSpan.ToArray();
    }

    /// <summary>The marker a store gets when its rows were first sealed: from then on, an unsealed row is a changed row.</summary>
    public static byte[] RowsSealedMarker()
    {
        var writer = Start("latchkey/store/rows-sealed/v1");
        Text(writer, "every row of this store carries a seal");
        return writer.WrittenSpan.ToArray();
    }

    /// <summary>The fields a credential row and a saved version share, in their order, after the domain tag.</summary>
    private static ArrayBufferWriter<byte> Content(
        string domain, string id, string name, string kind, long version, string state, string? reasonJson, string metadataJson,
        string keyId, ReadOnlySpan<byte> sealedSecrets, string? refreshTokenFingerprint)
    {
        var writer = Start(domain);
        Text(writer, id);
        Text(writer, name);
        Text(writer, kind);
        Integer(writer, version);
        Text(writer, state);
        Text(writer, reasonJson);
        Text(writer, metadataJson);
        Text(writer, keyId);
        Bytes(writer, SecretProtector.SealIdentity(sealedSecrets));
        Text(writer, refreshTokenFingerprint);
        return writer;
    }

    private static ArrayBufferWriter<byte> Start(string domain)
    {
        var writer = new ArrayBufferWriter<byte>(256);
        Text(writer, domain);
        return writer;
    }

    private static void Text(ArrayBufferWriter<byte> writer, string? value)
    {
        if (value is null)
        {
            writer.Write([(byte)Field.Null]);
            return;
        }

        var length = Encoding.UTF8.GetByteCount(value);
        Header(writer, Field.Text, length);
        writer.Advance(Encoding.UTF8.GetBytes(value, writer.GetSpan(length)));
    }

    private static void Integer(ArrayBufferWriter<byte> writer, long? value)
    {
        if (value is not { } v)
        {
            writer.Write([(byte)Field.Null]);
            return;
        }

        Header(writer, Field.Integer, 8);
        BinaryPrimitives.WriteInt64BigEndian(writer.GetSpan(8), v);
        writer.Advance(8);
    }

    private static void Bytes(ArrayBufferWriter<byte> writer, ReadOnlySpan<byte> value)
    {
        Header(writer, Field.Bytes, value.Length);
        writer.Write(value);
    }

    private static void Header(ArrayBufferWriter<byte> writer, Field type, int length)
    {
        var span = writer.GetSpan(5);
        span[0] = (byte)type;
        BinaryPrimitives.WriteInt32BigEndian(span[1..], length);
        writer.Advance(5);
    }
}
