"""Per-library hooks, each applied when the application imports that library."""
