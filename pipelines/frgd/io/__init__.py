"""Image loading and saving (one concern per module; every public name is importable from ``frgd.io``).

* :mod:`.decode`: :func:`load_image` / :func:`load_image_bytes` read JPEG, PNG, WebP, TIFF and BMP files into a
  :class:`LoadedImage` (``rgb`` ``(H, W, 3)`` uint8 or uint16, optional ``alpha`` ``(H, W)``), with the EXIF
  orientation applied and grayscale / palette / LA / RGBA / CMYK / 16-bit inputs handled. Every failure (missing,
  unreadable, empty, corrupt, truncated, not an image, too many pixels) raises the one error type
  :class:`ImageLoadError`.
* :mod:`.encode`: :func:`save_image` writes atomically (temp file in the same folder + rename), never over an existing
  file unless ``overwrite=True`` and never over a ``protect``-ed path (the input photo), and embeds
  :class:`Provenance` metadata.
* :mod:`.provenance`: :class:`Provenance`, how it is embedded per format (PNG iTXt chunks, JPEG/WebP EXIF, TIFF
  ImageDescription) and :func:`read_provenance`.
* :mod:`.files`: :func:`read_file_bytes` is the one way user files are read (regular files only, at most
  :data:`MAX_FILE_BYTES`, enforced while reading); :func:`save_bytes` is the protected atomic save for any bytes (JSON
  reports, sessions) and :func:`check_output` its up-front check, run before any work. Temp files of interrupted saves
  are removed on SIGINT/SIGTERM (:func:`remove_pending_temps`) and stale ones of crashed saves on the next save to
  that folder.
* :mod:`.exif` (tags, orientation), :mod:`.png_chunks` (chunk writer and checker), :mod:`.pixels` (dtype
  conversions).
"""

from .decode import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_FORMATS,
    ImageLoadError,
    LoadedImage,
    load_image,
    load_image_bytes,
    load_mask,
    load_rgb,
)
from .encode import SAVE_EXTENSIONS, SIXTEEN_BIT_FORMATS, keeps_16_bits, save_image
from .exif import apply_orientation
from .files import (
    MAX_FILE_BYTES,
    STALE_TEMP_SECONDS,
    check_output,
    file_sha256,
    open_regular_file,
    read_file_bytes,
    remove_pending_temps,
    remove_stale_temps,
    save_bytes,
)
from .pixels import from_float, marked, to_float, to_uint8
from .provenance import IDENTITY_FLAG_KEY, PROVENANCE_KEY, Provenance, read_provenance

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IDENTITY_FLAG_KEY",
    "MAX_FILE_BYTES",
    "PROVENANCE_KEY",
    "SAVE_EXTENSIONS",
    "SIXTEEN_BIT_FORMATS",
    "STALE_TEMP_SECONDS",
    "SUPPORTED_FORMATS",
    "ImageLoadError",
    "LoadedImage",
    "Provenance",
    "apply_orientation",
    "check_output",
    "keeps_16_bits",
    "file_sha256",
    "load_image",
    "load_image_bytes",
    "load_mask",
    "load_rgb",
    "open_regular_file",
    "read_file_bytes",
    "read_provenance",
    "remove_pending_temps",
    "remove_stale_temps",
    "save_bytes",
    "save_image",
    "from_float",
    "marked",
    "to_float",
    "to_uint8",
]
