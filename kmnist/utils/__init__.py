"""Small utilities: atomic writes, option hints, hashing, a network probe."""
