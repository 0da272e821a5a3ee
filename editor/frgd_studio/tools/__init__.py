"""Developer tools of the editor (e.g. the scripted README screenshot)."""
