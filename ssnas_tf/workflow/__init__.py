"""Run settings and the steps of one run directory."""
