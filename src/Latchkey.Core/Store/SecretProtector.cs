using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Latchkey.Store;

/// <summary>
/// At-rest protection: AES-256-GCM envelope encryption with the install's master key, and HMAC fingerprints of
/// tokens for fencing. Every sealed blob is bound to the record's id and the key id through the associated data,
/// so a ciphertext moved to another row, or sealed under another key, does not open.
/// </summary>
/// <remarks>
/// Layout of a sealed blob: <c>version(1) ‖ nonce(12) ‖ tag(16) ‖ ciphertext</c>. Thread-safe: every call uses its
/// own <see cref="AesGcm"/> instance. Fingerprints use <c>HKDF-SHA256(master, "latchkey/rt-fp/v1")</c> as their
/// key, so they never reveal the token and stay stable while the data key is used. Row seals (see
/// <see cref="RowSeal"/>) use <c>HKDF-SHA256(master, "latchkey/row-mac/v1")</c>, a key of their own.
/// </remarks>
internal sealed class SecretProtector : IDisposable
{
    private const byte FormatVersion = 1;
    private const int NonceSize = 12;
    private const int TagSize = 16;
    private const int HeaderSize = 1 + NonceSize + TagSize;

    private readonly byte[] _key;
    private readonly byte[] _fingerprintKey;
    private readonly byte[] _rowKey;

    public SecretProtector(ReadOnlySpan<byte> masterKey)
    {
        if (masterKey.Length != 32)
        {
            throw new ArgumentException("The master key must be 32 bytes.", nameof(masterKey));
        }

        _key = masterKey.ToArray();
        _fingerprintKey = HKDF.DeriveKey(HashAlgorithmName.SHA256, _key, 32, salt: [], info: "latchkey/rt-fp/v1"u8.ToArray());
        _rowKey = HKDF.DeriveKey(HashAlgorithmName.SHA256, _key, 32, salt: [], info: "latchkey/row-mac/v1"u8.ToArray());
        KeyId = IdOf(_key);
    }

    /// <summary>The public id of <paramref name="masterKey"/> (see <see cref="KeyId"/>).</summary>
    public static string IdOf(ReadOnlySpan<byte> masterKey) => Convert.ToHexStringLower(SHA256.HashData([.. "latchkey/key-id/v1"u8, .. masterKey]))[..16];

    /// <summary>A public identifier of the master key (a hash prefix), stored beside each sealed blob.</summary>
    public string KeyId { get; }

    /// <summary>Seals <paramref name="plaintext"/> for the record <paramref name="recordId"/>.</summary>
    public byte[] Seal(ReadOnlySpan<byte> plaintext, string recordId)
    {
        var sealedBlob = new byte[HeaderSize + plaintext.Length];
        sealedBlob[0] = FormatVersion;
        var nonce = sealedBlob.AsSpan(1, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(_key, TagSize);
        aes.Encrypt(nonce, plaintext, sealedBlob.AsSpan(HeaderSize), sealedBlob.AsSpan(1 + NonceSize, TagSize), AssociatedData(recordId, KeyId));
        return sealedBlob;
    }

    /// <summary>Opens a sealed blob; returns <see langword="false"/> with a reason when it cannot.</summary>
    /// <remarks>The caller owns <paramref name="plaintext"/> and should zero it when done.</remarks>
    public bool TryOpen(ReadOnlySpan<byte> sealedBlob, string recordId, string keyId, out byte[] plaintext, out string failure)
    {
        plaintext = [];
        if (!string.Equals(keyId, KeyId, StringComparison.Ordinal))
        {
            failure = $"it was sealed with key {keyId}, but the key file holds key {KeyId} (was the key file replaced?)";
            return false;
        }

        if (sealedBlob.Length < HeaderSize || sealedBlob[0] != FormatVersion)
        {
            failure = "its sealed secret is truncated or in an unknown format";
            return false;
        }

        var buffer = new byte[sealedBlob.Length - HeaderSize];
        try
        {
            using var aes = new AesGcm(_key, TagSize);
            aes.Decrypt(sealedBlob.Slice(1, NonceSize), sealedBlob[HeaderSize..], sealedBlob.Slice(1 + NonceSize, TagSize), buffer, AssociatedData(recordId, keyId));
        }
        catch (AuthenticationTagMismatchException)
        {
            failure = "its sealed secret failed the integrity check (its bytes were changed, on disk or in the database)";
            return false;
        }

        plaintext = buffer;
        failure = string.Empty;
        return true;
    }

    /// <summary>The fingerprint of a token: HMAC-SHA256 under the fingerprint key, lower-case hex.</summary>
    public string Fingerprint(string token)
    {
        var bytes = Encoding.UTF8.GetBytes(token);
        try
        {
            return Convert.ToHexStringLower(HMACSHA256.HashData(_fingerprintKey, bytes));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    /// <summary>
    /// The part of a sealed blob a row seal binds: its format byte, nonce and GCM tag. The tag authenticates the
    /// ciphertext under the master key, so binding it pins the exact ciphertext: another genuine blob (an earlier
    /// version's, say) has another nonce and tag, while changed ciphertext bytes under the same tag fail to open.
    /// </summary>
    public static ReadOnlySpan<byte> SealIdentity(ReadOnlySpan<byte> sealedBlob) => sealedBlob[..Math.Min(sealedBlob.Length, HeaderSize)];

    /// <summary>The seal of a row's bound fields (<see cref="RowSeal"/>): HMAC-SHA256 under the row key, lower-case hex.</summary>
    public string SealRow(ReadOnlySpan<byte> encodedFields) => Convert.ToHexStringLower(HMACSHA256.HashData(_rowKey, encodedFields));

    /// <summary>Whether <paramref name="seal"/> is the seal of <paramref name="encodedFields"/>, compared in constant time.</summary>
    public bool VerifyRow(ReadOnlySpan<byte> encodedFields, string? seal)
    {
        Span<byte> presented = stackalloc byte[32];
        if (seal is not { Length: 64 } || Convert.FromHexString(seal, presented, out _, out var written) != OperationStatus.Done || written != 32)
        {
            return false;
        }

        Span<byte> expected = stackalloc byte[32];
        HMACSHA256.HashData(_rowKey, encodedFields, expected);
        return CryptographicOperations.FixedTimeEquals(expected, presented);
    }

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_key);
        CryptographicOperations.ZeroMemory(_fingerprintKey);
        CryptographicOperations.ZeroMemory(_rowKey);
    }

    private static byte[] AssociatedData(string recordId, string keyId)
    {
        var id = Encoding.UTF8.GetBytes(recordId);
        var key = Encoding.UTF8.GetBytes(keyId);
        var aad = new byte[12 + 4 + id.Length + key.Length];
        "latchkey/v1\0"u8.CopyTo(aad);
        BinaryPrimitives.WriteInt32BigEndian(aad.AsSpan(12), id.Length);
        id.CopyTo(aad, 16);
        key.CopyTo(aad, 16 + id.Length);
        return aad;
    }
}
