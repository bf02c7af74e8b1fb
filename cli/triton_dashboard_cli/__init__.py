"""triton-dashboard: Triton Dashboard's API from the command line."""
