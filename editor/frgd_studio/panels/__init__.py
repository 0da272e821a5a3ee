"""Dock panels of the main window. Each panel observes the :class:`~frgd_studio.document.Document`, pushes
commands on the window's undo stack and starts torch work through the window's :class:`~frgd_studio.jobs.JobManager`.
"""

from .faces import FacesPanel
from .frgd_panel import FRGDPanel
from .gallery import GalleryPanel
from .gfpgan import GFPGANPanel
from .references import ReferencesPanel
from .sr import SRPanel

__all__ = ["FRGDPanel", "FacesPanel", "GFPGANPanel", "GalleryPanel", "ReferencesPanel", "SRPanel"]
