"""The audit trail: one hash chain per department (and one for the platform's security events)."""
