"""FRGD Studio editor (PySide6). Imports go one way: ``frgd_studio`` -> ``frgd``; never the reverse."""
