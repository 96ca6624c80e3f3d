"""Converters from each source's own files to a :class:`~MammoDNNLib.data.manifest.Manifest`.

Every converter is a function ``convert_<source>(src, ...) -> Manifest``; :func:`convert` picks one by name
(the ``mammodnn data convert SOURCE_KIND SRC`` command). The mapping of each source and the quirks handled are
in ``docs/data.md``; what a converter skipped or assumed is listed in the manifest's ``notes``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..manifest import Manifest

# kind -> (module, function)
CONVERTERS: dict[str, tuple[str, str]] = {
    "phantom": ("phantom", "convert_phantom"),
    "mias": ("mias", "convert_mias"),
    "cbis-ddsm": ("cbis_ddsm", "convert_cbis_ddsm"),
    "vindr": ("vindr", "convert_vindr"),
    "inbreast": ("inbreast", "convert_inbreast"),
}


def converter(kind: str) -> Callable[..., Manifest]:
    """The converter function for a source kind (``"mias"``, ``"cbis-ddsm"``, ...)."""
    try:
        module_name, function_name = CONVERTERS[kind]
    except KeyError:
        raise ValueError(f"unknown source kind {kind!r}; expected one of {', '.join(CONVERTERS)}") from None
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, function_name)


def convert(kind: str, src: Any, **options: Any) -> Manifest:
    return converter(kind)(src, **options)
