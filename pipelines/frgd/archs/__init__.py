"""Network architectures, one per file; state-dict names match the official releases they load."""
