"""The catalog: datasets' metadata and their declared schemas."""
