"""HAT weights on demand: the manifest of known models, checksummed resumable downloads, and the local cache.

Environment: ``HAT_PLUGIN_CACHE`` (cache folder), ``HAT_PLUGIN_OFFLINE=1`` (never download),
``HAT_PLUGIN_MIRROR`` (a base URL tried first), ``HAT_PLUGIN_MANIFEST`` (another manifest file). The user's own
models (``hat_plugin.user_models.add_model``) live in ``user_manifest_path()``, merged over the manifest.
"""

from __future__ import annotations

from .api import (
    WEIGHTS_SUFFIXES,
    default_model,
    entry_for_file,
    fetch,
    get_entry,
    is_cached,
    list_models,
    local_path,
    model_label,
    resolve,
)
from .cache import cache_dir, is_offline, sha256_file
from .manifest import ManifestError, ModelEntry, user_manifest_path

__all__ = [
    "WEIGHTS_SUFFIXES",
    "ManifestError",
    "ModelEntry",
    "cache_dir",
    "default_model",
    "entry_for_file",
    "fetch",
    "get_entry",
    "is_cached",
    "is_offline",
    "list_models",
    "local_path",
    "model_label",
    "resolve",
    "sha256_file",
    "user_manifest_path",
]
