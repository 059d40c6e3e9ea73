"""VapourSynth filter ``core.hat.Upscale(clip, ...)``: a native shim (hat_shim.c) that hands calls to Python.

Install the shim with ``python -m vs_filter install``; scripts then need no import.
"""
