"""gridrisk's front door: the `gridrisk` command and its settings."""

__version__ = "0.1.0"
