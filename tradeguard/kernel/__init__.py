"""The kernel: plugin discovery and settings, the hook runner, the decision pipeline, the runtime and its
scheduler and clocks; what every plugin is handed."""
