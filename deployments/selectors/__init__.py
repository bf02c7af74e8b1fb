"""Non-trivial reads, shared by pages and the API."""
