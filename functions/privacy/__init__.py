"""Privacy primitives: data and pseudonymisation keys, tokens, sealing, encryption and generalisation,
used by ingest (to protect what lands) and sharing (to re-key, unmask or coarsen what is given)."""
