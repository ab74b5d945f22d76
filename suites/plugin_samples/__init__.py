"""Samples the plugin's own tests load (bad factories, plugins injected with -p)."""
