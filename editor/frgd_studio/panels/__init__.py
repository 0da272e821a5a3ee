"""Dock panels of the main window. Each panel renders the :class:`~frgd_studio.model.editor.EditorModel`'s state
(document events, pane ``changed`` events) and calls its actions; dialogs go through :class:`~frgd_studio.ui.ViewHooks`.
Panels never import the main window (an import-linter contract)."""

from .faces import FacesPanel
from .frgd_panel import FRGDPanel
from .gallery import GalleryPanel
from .gfpgan import GFPGANPanel
from .references import ReferencesPanel
from .sr import SRPanel

__all__ = ["FRGDPanel", "FacesPanel", "GFPGANPanel", "GalleryPanel", "ReferencesPanel", "SRPanel"]
