namespace Latchkey.Tests.Security;

/// <summary>
/// Asserts that secrets are absent from some text without ever printing them: xunit's own
/// <c>Assert.DoesNotContain</c> would put the secret in the failure message, and so in the test output.
/// </summary>
internal static class SecretAssert
{
    /// <summary>Fails, naming the secret (never showing it) and <paramref name="where"/>, when any secret occurs in <paramref name="text"/>.</summary>
    public static void Absent(string text, string where, params (string Name, string Value)[] secrets)
    {
        foreach (var (name, value) in secrets)
        {
            Assert.False(string.IsNullOrEmpty(value), $"the test has no {name} to look for");
            Assert.False(text.Contains(value, StringComparison.Ordinal), $"The {name} appears in {where}.");
        }
    }

    /// <summary>The status line, every header and the body of a response, as one text to search.</summary>
    public static async Task<string> AllOfAsync(HttpResponseMessage response)
    {
        ArgumentNullException.ThrowIfNull(response);
        var headers = response.Headers.Concat(response.Content.Headers).Select(h => $"{h.Key}: {string.Join(", ", h.Value)}");
        return $"{(int)response.StatusCode}\n{string.Join('\n', headers)}\n\n{await response.Content.ReadAsStringAsync()}";
    }
}
