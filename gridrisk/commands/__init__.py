"""The gridrisk CLI commands, one module per stage."""
