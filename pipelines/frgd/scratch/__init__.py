"""Damage detection: find the scratches, cracks, spots and tears of a scanned photo (:mod:`.detect`), with a detector
trained on synthetic damage (:mod:`.synth`, :mod:`.train`). Its mask is what ``frgd enhance --damage`` and the
editor's damage layer take; :func:`frgd.diffusion.damage.repair_image` fills it."""

from .detect import DAMAGE_WEIGHTS, DamageDetection, detect_damage, load_detector

__all__ = ["DAMAGE_WEIGHTS", "DamageDetection", "detect_damage", "load_detector"]
