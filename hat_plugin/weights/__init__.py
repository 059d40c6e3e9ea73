"""HAT weights on demand: the manifest of known models, checksummed resumable downloads, and the local cache.

Environment: ``HAT_PLUGIN_CACHE`` (cache folder), ``HAT_PLUGIN_OFFLINE=1`` (never download),
``HAT_PLUGIN_MIRROR`` (a base URL tried first), ``HAT_PLUGIN_MANIFEST`` (another manifest file).
"""

from __future__ import annotations

from .api import fetch, get_entry, is_cached, list_models, local_path
from .cache import cache_dir
from .manifest import ManifestError, ModelEntry

__all__ = [
    "ManifestError",
    "ModelEntry",
    "cache_dir",
    "fetch",
    "get_entry",
    "is_cached",
    "list_models",
    "local_path",
]
