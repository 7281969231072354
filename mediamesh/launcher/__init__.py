"""`mediamesh up`: run the whole mesh as local processes, without Docker."""
