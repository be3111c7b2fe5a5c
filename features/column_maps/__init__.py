"""Header and value mappings from utility export files to the data contract (default.toml ships here)."""
