"""Authorisation: Cedar policies from `policies/`, evaluated in-process, every decision audited."""
