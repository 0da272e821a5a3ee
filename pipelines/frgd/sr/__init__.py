"""General super-resolution and GFPGAN backends: ncnn reader/converter, tiling, upscaler registry, pipelines.

Importing the package imports :mod:`.registry` (torch-free), which registers the SR weights converters with
:mod:`frgd.weights`, so converting on first use works whichever ``frgd.sr`` module is used.
"""

from . import registry  # noqa: F401 - registers the `realesrgan-ncnn` weights converter
