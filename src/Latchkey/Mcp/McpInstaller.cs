using System.Text.Json.Nodes;
using Latchkey.Diagnostics;
using Latchkey.Store;

namespace Latchkey.Mcp;

/// <summary>What <c>latchkey mcp install</c> is asked to do.</summary>
/// <param name="Server">The MCP server's name (added with <c>latchkey mcp add</c>).</param>
/// <param name="Client">The client whose configuration is written.</param>
/// <param name="Location">The client's file (<see cref="McpConfigLocation.For"/>).</param>
/// <param name="Via"><c>http</c> (the gateway's <c>/mcp/NAME</c> with a client key) or <c>stdio</c> (the bridge).</param>
/// <param name="GatewayUrl">The gateway's base URL, for <c>http</c>.</param>
/// <param name="Executable">The <c>latchkey</c> executable the stdio entry starts.</param>
/// <param name="Remove">Take the entry out (and revoke the key it carried) instead of writing it.</param>
/// <param name="DryRun">Compute and describe the change; write nothing, mint and revoke nothing.</param>
/// <param name="BridgeEnvironment">For <c>stdio</c>: what the bridge needs to find this store (see <see cref="McpClientConfig.StdioEntry"/>).</param>
internal sealed record McpInstallRequest(string Server, McpClient Client, McpConfigLocation Location, string Via, string GatewayUrl, string Executable, bool Remove, bool DryRun, IReadOnlyDictionary<string, string>? BridgeEnvironment = null);

/// <summary>What an install or removal did (or, for a dry run, would do).</summary>
internal enum McpInstallOutcome
{
    Added,
    Replaced,
    Unchanged,
    Removed,
    NotPresent,
}

/// <summary>The result of <see cref="McpInstaller.RunAsync"/>.</summary>
/// <param name="Outcome">What happened to the entry.</param>
/// <param name="Diff">The unified diff of the file (keys masked); empty when nothing changes.</param>
/// <param name="Backup">The copy of the previous file, when one was written.</param>
/// <param name="MintedKey">The name of the client key written into the file, when one was made.</param>
/// <param name="RevokedKeys">The keys revoked because the entry that carried them was replaced or removed.</param>
internal sealed record McpInstallResult(McpInstallOutcome Outcome, string Diff, string? Backup, string? MintedKey, IReadOnlyList<string> RevokedKeys);

/// <summary>
/// <c>latchkey mcp install</c>: writes one MCP server's entry into a client's own configuration file, and takes it
/// out again. The entry's shape comes from <see cref="McpClientConfig"/> (the same as <c>latchkey mcp config</c>
/// prints); the file is edited by <see cref="JsonConfigDocument"/> or <see cref="TomlConfigDocument"/>, which change
/// that one entry and nothing else, and written by <see cref="McpConfigFile"/> (atomic, the owner's permissions only, backup kept).
/// </summary>
/// <remarks>
/// <para><b>Idempotent.</b> An entry that already is what would be written is left alone, and no key is minted: for
/// <c>http</c>, the entry's key must still be valid, made for this client and allowing this server.</para>
/// <para><b>Keys.</b> A new key allows only the server and records the client it was made for
/// (<see cref="ClientKey.MadeFor"/>). A key Latchkey made for an entry it then replaces or removes is revoked; a key
/// made by hand is never revoked here. If the file cannot be written, the key just made is deleted again.</para>
/// <para><b>Failures.</b> A file that does not parse raises an <see cref="ActionableException"/> naming the file,
/// line and column; nothing is written and no key is made.</para>
/// </remarks>
internal sealed class McpInstaller(IClientKeyStore keys, TimeProvider time)
{
    /// <summary>Stands for the key a dry run would mint (not key-shaped, so it is never mistaken for one).</summary>
    public const string DryRunKey = "lk_(a-new-key-made-on-install)";

    /// <summary>Installs or removes the entry as <paramref name="request"/> says.</summary>
    /// <exception cref="ActionableException">The file does not parse, holds the server in a form not edited here, or cannot be written.</exception>
    public async Task<McpInstallResult> RunAsync(McpInstallRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var path = request.Location.Path;
        var before = McpConfigFile.Read(path);
        var document = Parse(request.Location, before ?? string.Empty);
        var existing = document.Entry(request.Server);
        var existingKey = await OwnKeyAsync(McpClientConfig.KeyIn(existing), cancellationToken).ConfigureAwait(false);

        if (request.Remove)
        {
            if (existing is null)
            {
                return new(McpInstallOutcome.NotPresent, string.Empty, null, null, []);
            }

            var without = document.WithoutEntry(request.Server);
            var diff = LineDiff.Unified(path, before, without);
            if (request.DryRun)
            {
                return new(McpInstallOutcome.Removed, diff, null, null, existingKey is null ? [] : [existingKey.Name]);
            }

            var backup = Write(path, without);
            return new(McpInstallOutcome.Removed, diff, backup, null, await RevokeAsync(existingKey, cancellationToken).ConfigureAwait(false));
        }

        var id = McpClientConfig.Id(request.Client);
        JsonObject desired;
        if (request.Via == "stdio")
        {
            desired = McpClientConfig.StdioEntry(request.Client, request.Server, request.Executable, request.BridgeEnvironment);
        }
        else
        {
            var url = $"{request.GatewayUrl.TrimEnd('/')}/mcp/{request.Server}";
            var reusable = existingKey is not null && existingKey.MadeFor == id && existingKey.Allows(request.Server)
                ? McpClientConfig.KeyIn(existing)
                : null;
            desired = McpClientConfig.HttpEntry(request.Client, url, reusable ?? DryRunKey);
        }

        desired = KeepUnmanaged(existing, desired);
        if (existing is not null && JsonNode.DeepEquals(existing, desired))
        {
            return new(McpInstallOutcome.Unchanged, string.Empty, null, null, []);
        }

        var outcome = existing is null ? McpInstallOutcome.Added : McpInstallOutcome.Replaced;
        var kept = McpClientConfig.KeyIn(desired) is { } carried && carried == McpClientConfig.KeyIn(existing);
        var dropped = kept ? null : existingKey; // the key of the entry being replaced, unless the new entry carries it on
        var replacedKeys = dropped is null ? Array.Empty<string>() : [dropped.Name];
        if (request.DryRun)
        {
            return new(outcome, LineDiff.Unified(path, before, document.WithEntry(request.Server, desired)), null, null, replacedKeys);
        }

        string? minted = null;
        if (McpClientConfig.KeyIn(desired) == DryRunKey)
        {
            var (key, value) = await MintAsync(request.Server, id, cancellationToken).ConfigureAwait(false);
            minted = key.Name;
            desired = KeepUnmanaged(existing, McpClientConfig.HttpEntry(request.Client, $"{request.GatewayUrl.TrimEnd('/')}/mcp/{request.Server}", value));
        }

        var after = document.WithEntry(request.Server, desired);
        string? written;
        try
        {
            written = Write(path, after);
        }
        catch (ActionableException) when (minted is not null)
        {
            await keys.DeleteKeyAsync(minted, CancellationToken.None).ConfigureAwait(false);
            throw;
        }

        return new(outcome, LineDiff.Unified(path, before, after), written, minted, await RevokeAsync(dropped, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>
    /// The new entry, plus every setting of the existing one that Latchkey does not write (a client's own switches
    /// such as <c>disabled</c>, <c>autoApprove</c>, <c>enabled_tools</c>, <c>default_tools_approval_mode</c> or
    /// <c>startup_timeout_sec</c>), so installing again never undoes what the user set in the client.
    /// </summary>
    private static JsonObject KeepUnmanaged(JsonObject? existing, JsonObject desired)
    {
        if (existing is null)
        {
            return desired;
        }

        var merged = (JsonObject)desired.DeepClone();
        foreach (var (key, value) in existing)
        {
            if (!McpClientConfig.ManagedKeys.Contains(key) && !merged.ContainsKey(key))
            {
                merged[key] = value?.DeepClone();
            }
        }

        return merged;
    }

    private static IMcpConfigDocument Parse(McpConfigLocation location, string text) => location.Format switch
    {
        McpConfigFormat.Toml => TomlConfigDocument.Parse(location.Path, text),
        _ => JsonConfigDocument.Parse(location.Path, text, location.ServersKey, location.Format == McpConfigFormat.JsonWithComments),
    };

    private static string? Write(string path, string text)
    {
        try
        {
            return McpConfigFile.Write(path, text);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ActionableException($"Could not write {path}: {ex.Message} The file is unchanged.", "Check that you own the file and its folder, then run the command again.", ex);
        }
    }

    /// <summary>The record of <paramref name="value"/> when it is a valid key Latchkey made for a client; null otherwise.</summary>
    private async Task<ClientKey?> OwnKeyAsync(string? value, CancellationToken cancellationToken)
    {
        if (value is null)
        {
            return null;
        }

        var check = await keys.VerifyKeyAsync(value, cancellationToken).ConfigureAwait(false);
        return check.Status == ClientKeyStatus.Valid && check.Key?.MadeFor is not null ? check.Key : null;
    }

    private async Task<(ClientKey Key, string Value)> MintAsync(string server, string client, CancellationToken cancellationToken)
    {
        var name = $"mcp-{server}-{client}-{time.GetUtcNow():yyyyMMddHHmmss}";
        for (var attempt = 2; ; attempt++)
        {
            if (await keys.CreateKeyAsync(name, [server], null, client, cancellationToken).ConfigureAwait(false) is { } created)
            {
                return created;
            }

            if (attempt > 9)
            {
                throw new ActionableException($"A client key named '{name}' already exists; nothing was written.", "Run the command again in a second.");
            }

            name = $"mcp-{server}-{client}-{time.GetUtcNow():yyyyMMddHHmmss}-{attempt}";
        }
    }

    private async Task<IReadOnlyList<string>> RevokeAsync(ClientKey? key, CancellationToken cancellationToken) =>
        key is not null && await keys.RevokeKeyAsync(key.Name, cancellationToken).ConfigureAwait(false) ? [key.Name] : [];
}
