"""Authenticated HTTP between services: server helpers, client, master lookup."""
