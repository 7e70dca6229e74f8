"""API routes, one Router per area."""
