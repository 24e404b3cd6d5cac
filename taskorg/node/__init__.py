"""The node service: registration, heartbeats, and the role loop."""
