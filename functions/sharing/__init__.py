"""Sharing: access requests, stewards' grants and governed reads."""
