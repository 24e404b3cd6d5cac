"""taskorg: container task orchestration for small LAN clusters."""

__version__ = "0.1.0"
