"""Chapter II (chapter2) compatibility: loading, mapping, migration, traces."""
