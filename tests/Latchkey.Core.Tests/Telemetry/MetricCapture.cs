using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Latchkey.Telemetry;

namespace Latchkey.Tests.Telemetry;

/// <summary>
/// Captures the measurements Latchkey's meter records for the test that made it, and only for it: a listener sees
/// every measurement of the process, so each one is kept only when it was recorded in the creating test's own
/// asynchronous flow (an <see cref="AsyncLocal{T}"/> set by the constructor), which parallel tests never share.
/// </summary>
internal sealed class MetricCapture : IDisposable
{
    private static readonly AsyncLocal<MetricCapture?> Owner = new();
    private readonly MeterListener _listener = new();

    public MetricCapture(params string[] instruments)
    {
        Owner.Value = this;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == LatchkeyTelemetry.Name && instruments.Contains(instrument.Name))
            {
                listener.EnableMeasurementEvents(instrument, this);
            }
        };
        _listener.SetMeasurementEventCallback<long>((i, v, t, s) => Keep(i, v, t, s));
        _listener.SetMeasurementEventCallback<int>((i, v, t, s) => Keep(i, v, t, s));
        _listener.SetMeasurementEventCallback<double>((i, v, t, s) => Keep(i, v, t, s));
        _listener.Start();
    }

    public ConcurrentQueue<(string Instrument, double Value, IReadOnlyDictionary<string, object?> Tags)> Measurements { get; } = new();

    /// <summary>Polls the observable instruments (gauges) now.</summary>
    public void Observe() => _listener.RecordObservableInstruments();

    /// <summary>The sum of <paramref name="instrument"/>'s measurements whose tags include <paramref name="tags"/>.</summary>
    public double Sum(string instrument, params (string Name, object Value)[] tags) =>
        Measurements.Where(m => m.Instrument == instrument && tags.All(t => m.Tags.TryGetValue(t.Name, out var v) && Equals(v, t.Value))).Sum(m => m.Value);

    public void Dispose() => _listener.Dispose();

    private void Keep(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
    {
        if (ReferenceEquals(state, this) && (ReferenceEquals(Owner.Value, this) || instrument.IsObservable))
        {
            Measurements.Enqueue((instrument.Name, value, tags.ToArray().ToDictionary(t => t.Key, t => t.Value, StringComparer.Ordinal)));
        }
    }
}
