"""General super-resolution and GFPGAN backends: ncnn reader/converter, tiling, upscaler registry, pipelines."""
