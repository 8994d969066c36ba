// These tests run real processes and check Unix file modes (Linux and macOS).
[assembly: System.Runtime.Versioning.UnsupportedOSPlatform("windows")]

// The process tests already run many processes each; running test classes side by side on two cores would
// only make them slower and their timing less telling.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
