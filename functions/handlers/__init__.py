"""Lambda entry points: thin adapters between AWS events and the domain."""
