"""The system model: which detector, localization, malignancy and matcher models and which BI-RADS mapping
make
up one analysis, and the pipeline options tuned for them.

A system is a registry folder (:mod:`MammoDNNLib.models.registry`) of kind ``"system"``::

    Resources/Models/mammodnn/0.2.0/
      manifest.json   name, version, kind "system", classes (finding types),
                      config.components  stage -> {name, version, sha256 of that model's manifest.json}
                      config.pipeline    PipelineOptions (operating point, outline settings)
                      components         [birads.json with its sha256 and size, role "birads-mapping"]
                      training_data      which phantom seeds tuned and tested the system; metrics: held-out
                      figures
      birads.json     the BI-RADS mapping (MammoDNNLib.birads format)
      MODEL_CARD.md

Components are found by name and version like any registered model (the user cache first, then the shipped
``Resources/Models``), and the sha256 of each one's manifest must equal the recorded one: the manifest pins
every
weight file by its own hash, which that model's loader checks before reading a byte of it. ``detector`` is
required; ``localization``, ``malignancy`` and ``matcher`` may be left out (their stage is then skipped and
the
report says so).

:func:`load_system` takes a system name or folder, or a single component model (kind detector, localization,
malignancy or matcher, as the Slicer module's model list offers them), which then replaces that component of
the
default system. Run ``python -m MammoDNNLib.pipeline --help`` to write a system folder.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError
from .config import PipelineOptions

log = logging.getLogger(__name__)

SYSTEM_KIND = "system"
DEFAULT_SYSTEM = "mammodnn"
BIRADS_FILE = "birads.json"
BIRADS_ROLE = "birads-mapping"
# Stages backed by a registry model, with their model kind; "birads" is the mapping file inside the system.
MODEL_STAGES: dict[str, str] = {
    "detector": "detector",
    "localization": "localization",
    "malignancy": "malignancy",
    "matcher": "matcher",
}
REQUIRED_STAGES: tuple[str, ...] = ("detector",)


@dataclass(frozen=True)
class ComponentRef:
    """One model of a system: by registry name and version, pinned by the sha256 of its manifest."""

    stage: str
    name: str
    version: str
    sha256: str  # of the component's manifest.json
    path: Path | None = None  # its folder once resolved

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


@dataclass
class SystemModel:
    """A resolved system: every component's folder found and its manifest hash checked."""

    name: str
    version: str
    sha256: str  # of the system's manifest.json
    path: Path | None
    components: dict[str, ComponentRef]  # stage -> component (absent stages are skipped)
    options: PipelineOptions
    birads_path: Path | None  # the mapping file (None: MammoDNNLib/configs/birads.json defaults)
    birads_sha256: str = ""
    overrides: dict[str, str] = field(default_factory=dict)  # stage -> what replaced the system's component

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    def model_info(self) -> dict[str, Any]:
        """``Report.model`` fields: name, version, sha256 and per stage {name, version, sha256}."""
        components = {stage: ref.to_dict() for stage, ref in self.components.items()}
        birads_name = "bi-rads-5th-edition (built-in defaults)" if self.birads_path is None else BIRADS_FILE
        components["birads"] = {"name": birads_name, "version": "1", "sha256": self.birads_sha256}
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "components": components}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_json(path: Path) -> tuple[dict[str, Any], str]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise ModelError(f"{path}: a manifest is a JSON object")
    return parsed, sha256_bytes(data)


def _manifest(folder: Path) -> tuple[dict[str, Any], str]:
    from ..models.registry import MANIFEST

    return _read_json(folder / MANIFEST)


def resolve_component(stage: str, name: str, version: str | None, sha256: str | None) -> ComponentRef:
    """Find a component model by name (and version) and check its manifest's kind and hash."""
    from ..models.registry import resolve_model

    folder = resolve_model(name, None if Path(name).is_dir() else version)
    data, digest = _manifest(folder)
    if version and str(data.get("version")) != str(version):
        raise ModelError(f"{folder}: holds {data.get('name')} version {data.get('version')}, not {version}")
    kind = data.get("kind")
    if kind != MODEL_STAGES[stage]:
        raise ModelError(
            f"{folder}: the system's {stage} {name!r} is a {kind!r} model, not a {MODEL_STAGES[stage]}"
        )
    if sha256 and digest != sha256:
        raise ModelError(
            f"{folder / 'manifest.json'}: sha256 {digest} differs from the one the system recorded for its "
            f"{stage} ({sha256}); this is not the model the system was built and measured with (reinstall "
            "it, or build a new system with `python -m MammoDNNLib.pipeline`)"
        )
    return ComponentRef(
        stage, str(data.get("name", name)), str(data.get("version", version or "")), digest, folder.resolve()
    )


def system_from_manifest(folder: Path) -> SystemModel:
    """Read and resolve the system in ``folder`` (components found, hashes checked; no weights loaded)."""
    data, digest = _manifest(folder)
    where = folder / "manifest.json"
    if data.get("kind") != SYSTEM_KIND:
        raise ModelError(f"{where}: a {data.get('kind')!r} model, not a {SYSTEM_KIND}")
    for key in ("name", "version", "config"):
        if key not in data:
            raise ModelError(f"{where}: manifest lacks {key}")
    config = data["config"]
    if not isinstance(config, Mapping) or not isinstance(config.get("components"), Mapping):
        raise ModelError(f"{where}: config.components must list the system's models")
    unknown = set(config["components"]) - set(MODEL_STAGES) - {"birads"}
    if unknown:
        raise ModelError(f"{where}: unknown stage(s) {', '.join(sorted(unknown))} in config.components")
    try:
        options = PipelineOptions.from_dict(config.get("pipeline", {}))
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{where}: bad pipeline options ({exc})") from None
    components: dict[str, ComponentRef] = {}
    for stage in MODEL_STAGES:
        entry = config["components"].get(stage)
        if entry is None:
            if stage in REQUIRED_STAGES:
                raise ModelError(f"{where}: the system names no {stage}")
            continue
        if not isinstance(entry, Mapping) or not entry.get("name"):
            raise ModelError(f"{where}: config.components.{stage} needs a name")
        # A "path" (relative to the system folder) pins a component that is not in the registry (a system
        # bundled
        # with its own models, a development system); otherwise the registry finds it by name and version.
        target = (folder / entry["path"]) if entry.get("path") else str(entry["name"])
        ref = resolve_component(stage, str(target), entry.get("version"), entry.get("sha256"))
        if ref.name != entry["name"]:
            raise ModelError(
                f"{where}: config.components.{stage} names {entry['name']!r} but {ref.path} holds "
                f"{ref.name!r}"
            )
        components[stage] = ref
    birads_path, birads_sha = _verified_birads(folder, data)
    return SystemModel(
        str(data["name"]),
        str(data["version"]),
        digest,
        folder.resolve(),
        components,
        options,
        birads_path,
        birads_sha,
    )


def _verified_birads(folder: Path, data: Mapping[str, Any]) -> tuple[Path | None, str]:
    """The system's BI-RADS mapping file, its size and sha256 checked against the manifest's component
    entry."""
    entries = [
        c for c in data.get("components", []) if isinstance(c, Mapping) and c.get("role") == BIRADS_ROLE
    ]
    if not entries:
        from ..birads import BiradsMapping

        return None, sha256_bytes(json.dumps(BiradsMapping().to_dict(), sort_keys=True).encode())
    entry = entries[0]
    root = folder.resolve()
    path = (root / str(entry.get("file", ""))).resolve()
    if root not in path.parents:
        raise ModelError(
            f"{root / 'manifest.json'}: component {entry.get('file')!r} lies outside the model folder"
        )
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: BI-RADS mapping listed in the manifest is missing") from None
    digest = sha256_bytes(content)
    if len(content) != entry.get("size") or digest != entry.get("sha256"):
        raise ModelError(
            f"{path}: size or sha256 differs from the manifest's; the file was changed after the system "
            "was made, refusing to use it"
        )
    return path, digest


def from_info(info, device: str = "cpu") -> SystemModel:
    """The registry's loader signature (``registry.LOADERS["system"]``): the resolved system of a manifest
    that
    :func:`MammoDNNLib.models.registry.read_manifest` read (``device`` is used when the models are loaded)."""
    if info.path is None:
        raise ModelError(f"{info.label}: has no folder to load from")
    return system_from_manifest(Path(info.path))


def load_system(model: str | Path | None = None) -> SystemModel:
    """The system to analyze with: ``None`` = the default (``mammodnn``), a system name or folder, or one
    component model (name or folder) that replaces its stage in the default system."""
    from ..models.registry import resolve_model

    if model is None or not str(model).strip():  # the Slicer module's "Default model" is ""
        model = DEFAULT_SYSTEM
    target = resolve_model(model)
    data, _ = _manifest(target)
    kind = data.get("kind")
    if kind == SYSTEM_KIND:
        return system_from_manifest(target)
    stage = next((s for s, k in MODEL_STAGES.items() if k == kind), None)
    if stage is None:
        raise ModelError(
            f"{target}: a {kind!r} model cannot analyze a study; choose a system model (kind "
            f"{SYSTEM_KIND!r}, e.g. {DEFAULT_SYSTEM!r}) or a {', '.join(MODEL_STAGES)} model"
        )
    system = system_from_manifest(resolve_model(DEFAULT_SYSTEM))
    ref = resolve_component(stage, str(target), None, None)
    system.components[stage] = ref
    system.overrides[stage] = f"{ref.name} {ref.version} ({ref.path})"
    # The report names the composite: a changed component makes a different system.
    system.name = f"{system.name}+{stage}:{ref.name}"
    system.sha256 = sha256_bytes((system.sha256 + ref.sha256).encode())
    return system


# -- writing a system
# -------------------------------------------------------------------------------------------
def write_system(
    folder: str | Path,
    *,
    name: str = DEFAULT_SYSTEM,
    version: str,
    components: Mapping[str, str | Path | None],
    options: PipelineOptions | None = None,
    birads: str | Path | None = None,
    training_data: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    description: str = "",
    card_notes: str = "",
) -> SystemModel:
    """Write a system folder. ``components``: stage -> a component's registry name or folder (None leaves the
    stage out); each is resolved now and pinned by its manifest's sha256. ``birads``: a mapping file (default
    ``MammoDNNLib/configs/birads.json``)."""
    from ..birads import BiradsMapping
    from ..models.registry import LICENCE, MANIFEST, MANIFEST_VERSION
    from ..vocabulary import FINDING_TYPE_KEYS

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    refs, entries = {}, {}
    for stage, target in components.items():
        if stage not in MODEL_STAGES:
            raise ModelError(f"unknown stage {stage!r}; expected {', '.join(MODEL_STAGES)}")
        if target is None:
            continue
        refs[stage] = resolve_component(stage, str(target), None, None)
        entries[stage] = refs[stage].to_dict()
        if Path(target).is_dir():  # given as a folder: pin the location too (see system_from_manifest)
            entries[stage]["path"] = os.path.relpath(refs[stage].path, folder.resolve()).replace(os.sep, "/")
    for stage in REQUIRED_STAGES:
        if stage not in refs:
            raise ModelError(f"a system needs a {stage}")
    mapping = BiradsMapping.load(birads)  # validates
    mapping_file = folder / BIRADS_FILE
    if birads is not None:
        shutil.copyfile(birads, mapping_file)
    else:
        mapping.save(mapping_file)
    content = mapping_file.read_bytes()
    options = options or PipelineOptions()
    manifest = {
        "name": name,
        "version": version,
        "kind": SYSTEM_KIND,
        "classes": list(FINDING_TYPE_KEYS),
        "config": {
            "components": entries,
            "pipeline": options.to_dict(),
        },
        "components": [
            {"file": BIRADS_FILE, "sha256": sha256_bytes(content), "size": len(content), "role": BIRADS_ROLE}
        ],
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "training_data": dict(training_data or {}),
        "metrics": dict(metrics or {}),
        "licence": LICENCE,
        "description": description
        or (
            "The MammoDNN analysis system: detector, lesion outlines, localization, malignancy and "
            "morphology, CC-MLO matching and BI-RADS suggestions, with the operating point chosen on "
            "validation phantoms."
        ),
        "manifest_version": MANIFEST_VERSION,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    lines = [
        f"# {name} {version} (system)",
        "",
        f"**{LICENCE}**",
        "",
        manifest["description"],
        "",
        "## Components",
        "",
    ]
    lines += [
        f"- {stage}: `{ref.name}` {ref.version}, manifest sha256 `{ref.sha256}`"
        for stage, ref in refs.items()
    ]
    lines += [
        f"- birads: `{BIRADS_FILE}` sha256 `{sha256_bytes(content)}`",
        "",
        "## Pipeline options",
        "",
        "```json",
        json.dumps(options.to_dict(), indent=2),
        "```",
        "",
        "## Tuning and test data",
        "",
        "```json",
        json.dumps(manifest["training_data"], indent=2),
        "```",
        "",
        "## Measured",
        "",
        "```json",
        json.dumps(manifest["metrics"], indent=2),
        "```",
        "",
    ]
    if card_notes:
        lines += [card_notes, ""]
    (folder / "MODEL_CARD.md").write_text("\n".join(lines), encoding="utf-8")
    return system_from_manifest(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m MammoDNNLib.pipeline",
        description="Write a system model folder that pins its component models by manifest sha256.",
    )
    parser.add_argument(
        "--out", required=True, type=Path, help="system folder, e.g. Resources/Models/mammodnn/0.2.0"
    )
    parser.add_argument("--name", default=DEFAULT_SYSTEM)
    parser.add_argument("--version", required=True)
    for stage in MODEL_STAGES:
        parser.add_argument(
            f"--{stage}",
            help=f"{stage} model name or folder" + (" (required)" if stage in REQUIRED_STAGES else ""),
        )
    parser.add_argument("--options", type=Path, help="pipeline options JSON (PipelineOptions)")
    parser.add_argument("--score-threshold", type=float, help="the operating point (overrides --options)")
    parser.add_argument("--birads", type=Path, help="BI-RADS mapping JSON (default: the built-in mapping)")
    parser.add_argument("--training-data", type=Path, help="JSON describing the tuning and test data")
    parser.add_argument("--metrics", type=Path, help="JSON of measured figures")
    parser.add_argument("--description", default="", help="what this system is (manifest and model card)")
    args = parser.parse_args(argv)
    options = (
        PipelineOptions.from_dict(json.loads(args.options.read_text())) if args.options else PipelineOptions()
    )
    if args.score_threshold is not None:
        options = options.replace(score_threshold=args.score_threshold)
    system = write_system(
        args.out,
        name=args.name,
        version=args.version,
        components={stage: getattr(args, stage) for stage in MODEL_STAGES},
        options=options,
        birads=args.birads,
        training_data=json.loads(args.training_data.read_text()) if args.training_data else None,
        metrics=json.loads(args.metrics.read_text()) if args.metrics else None,
        description=args.description,
    )
    print(
        f"wrote {system.label} to {system.path}: "
        + ", ".join(f"{s} {r.name} {r.version}" for s, r in system.components.items())
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
