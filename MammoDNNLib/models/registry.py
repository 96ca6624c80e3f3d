"""The weight registry: a model is a folder with a manifest, safetensors weights and a model card.

```
<model>/manifest.json   name, version, kind, created, classes, config, components (file + sha256 + size),
                        training data, measured metrics, licence
<model>/*.safetensors   one per component (e.g. one per ensemble member)
<model>/MODEL_CARD.md
```

Loading verifies every component's sha256 before a byte of it is parsed, and accepts nothing but safetensors:
pickles (``.pt``, ``.pth``, ``.pkl``, ``.bin``, ``.ckpt``) are refused. A PyTorch checkpoint becomes a model only
through the explicit :func:`import_model` step, which reads it with ``torch.load(weights_only=True)`` (tensors
only, no code) and re-saves it as safetensors with a manifest.

Search order for a name: an explicit path; the user cache ``paths.user_dir()/models/<name>/<version>``; the
shipped models ``paths.resources_dir()/Models/<name>/<version>`` (or ``Models/<name>`` for a single version).
The manifest is generic (``kind``: detector, localization, malignancy, matcher, ...); :func:`load_model` builds
the object for a kind through :data:`LOADERS`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import json
import logging
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import paths
from ..errors import ModelError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MODEL_CARD = "MODEL_CARD.md"
MANIFEST_VERSION = 1
LICENCE = "Research use only; not a medical device."
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".tar")
# kind -> "module:function(info: ModelInfo, device: str)" building the usable object. Other model kinds add their
# entry here (localization, malignancy, matcher).
LOADERS: Mapping[str, str] = {
    "detector": "MammoDNNLib.models.detector:Detector.from_info",
    "localization": "MammoDNNLib.models.localization:LocalizationModel.from_info",
    "malignancy": "MammoDNNLib.models.malignancy:MalignancyModel.from_info",
    "matcher": "MammoDNNLib.matching.model:Matcher.from_info",
    "system": "MammoDNNLib.pipeline.system:from_info",
}
# Component roles whose files are not tensors: checked for their own safe text format instead of safetensors.
LIGHTGBM_TEXT_ROLE = "lightgbm-text"
JSON_ROLES = frozenset({"birads-mapping"})  # configuration files that travel with a model
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class Component:
    file: str  # relative to the model folder
    sha256: str
    size: int
    role: str = "member"  # e.g. "member" (an ensemble member), "weights"


@dataclass
class ModelInfo:
    name: str
    version: str
    kind: str
    classes: list[str]
    config: dict[str, Any]
    components: list[Component]
    created: str = ""
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    licence: str = LICENCE
    description: str = ""
    manifest_version: int = MANIFEST_VERSION
    path: Path | None = None  # the folder it was read from (not stored)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("path")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: Path | None = None) -> "ModelInfo":
        where = path / MANIFEST if path else MANIFEST
        required = ("name", "version", "kind", "classes", "config", "components")
        missing = [k for k in required if k not in data]
        if missing:
            raise ModelError(f"{where}: manifest lacks {', '.join(missing)}")
        known = {f for f in cls.__dataclass_fields__ if f != "path"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"{where}: unknown manifest field(s) {', '.join(unknown)}")
        if int(data.get("manifest_version", 1)) > MANIFEST_VERSION:
            raise ModelError(
                f"{where}: manifest version {data['manifest_version']} is newer than this MammoDNN reads"
            )
        try:
            components = [Component(**c) for c in data["components"]]
        except TypeError as exc:
            raise ModelError(f"{where}: bad component entry ({exc})") from None
        if not components:
            raise ModelError(f"{where}: manifest lists no weight files")
        fields = {k: v for k, v in data.items() if k != "components"}
        return cls(components=components, path=path, **fields)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version} ({self.kind})"


# -- hashing and reading ----------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: str | Path) -> ModelInfo:
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise ModelError(f"{folder}: not a model folder (no {MANIFEST})")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{manifest}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{manifest}: a manifest is a JSON object")
    return ModelInfo.from_dict(data, folder.resolve())


def _check_safe_file(path: Path) -> None:
    """Refuse anything that is not a safetensors file, by name and by content."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelError(
            f"{path}: refusing a pickle-based weight file; convert it with `mammodnn models import` (which reads "
            "tensors only) into safetensors first"
        )
    if path.suffix.lower() != ".safetensors":
        raise ModelError(f"{path}: weight files must be .safetensors")
    with open(path, "rb") as handle:
        head = handle.read(10)
    if head[:1] == b"\x80" or head[:2] == b"PK":  # pickle protocol marker / torch.save zip archive
        raise ModelError(
            f"{path}: this is a pickle (or torch.save archive) named .safetensors; refusing to load it"
        )
    if len(head) < 9 or int.from_bytes(head[:8], "little") <= 0 or head[8:9] != b"{":
        raise ModelError(f"{path}: not a safetensors file")


def _check_lightgbm_text(path: Path) -> None:
    """LightGBM's own text format (``Booster.save_model``): plain text that starts with ``tree``, never pickle."""
    with open(path, "rb") as handle:
        head = handle.read(5)
    if path.suffix.lower() != ".txt" or head != b"tree\n":
        raise ModelError(f"{path}: not a LightGBM text model (Booster.save_model output)")


def _check_json_object(path: Path) -> None:
    try:
        parsed = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise ModelError(f"{path}: a configuration file is a JSON object")


def verify_model(folder: str | Path) -> ModelInfo:
    """The manifest of ``folder`` after checking every component: present, safetensors, size and sha256 match."""
    info = read_manifest(folder)
    root = Path(folder).resolve()
    for component in info.components:
        path = (root / component.file).resolve()
        if root not in path.parents:
            raise ModelError(f"{root / MANIFEST}: component {component.file!r} lies outside the model folder")
        if not path.is_file():
            raise ModelError(f"{path}: weight file listed in the manifest is missing")
        if component.role == LIGHTGBM_TEXT_ROLE:
            _check_lightgbm_text(path)
        elif component.role in JSON_ROLES:
            _check_json_object(path)
        else:
            _check_safe_file(path)
        if path.stat().st_size != component.size:
            raise ModelError(
                f"{path}: size {path.stat().st_size} differs from the manifest's {component.size}; "
                "the file was changed or truncated"
            )
        digest = sha256_file(path)
        if digest != component.sha256:
            raise ModelError(
                f"{path}: sha256 {digest} does not match the manifest ({component.sha256}); the file "
                "was changed after the model was made, refusing to load it"
            )
    if info.kind == "system":
        # A system is verified through its components: each found, pinned by its manifest's hash, and intact.
        from ..pipeline.system import system_from_manifest

        for component in system_from_manifest(root).components.values():
            verify_model(component.path)
    return info


def load_state_dicts(info: ModelInfo, device: str = "cpu", verify: bool = True) -> list[dict]:
    """The tensors of each component (``verify`` re-checks the hashes first)."""
    from safetensors.torch import load_file

    if info.path is None:
        raise ModelError(f"{info.label}: has no folder to load from")
    if verify:
        verify_model(info.path)
    return [load_file(str(info.path / c.file), device=device) for c in info.components]


# -- finding models ---------------------------------------------------------------------------------------------
def user_models_dir() -> Path:
    return paths.user_dir() / "models"


def shipped_models_dir() -> Path | None:
    try:
        return paths.resources_dir() / "Models"
    except FileNotFoundError:
        return None


def resolve_model(name_or_path: str | Path, version: str | None = None) -> Path:
    """The folder of a model given a path or a name (newest version unless ``version``)."""
    candidate = Path(name_or_path).expanduser()
    if candidate.exists():
        if candidate.is_file():
            if candidate.name == MANIFEST:
                return candidate.parent
            _check_safe_file(candidate)
            raise ModelError(f"{candidate}: a bare weight file; give its model folder (with {MANIFEST})")
        return candidate
    name = str(name_or_path)
    if not _NAME.match(name):
        raise ModelError(f"{name}: no such model folder, and not a valid model name")
    roots = [user_models_dir()] + ([shipped_models_dir()] if shipped_models_dir() else [])
    for root in roots:
        base = root / name
        if not base.is_dir():
            continue
        if (base / MANIFEST).is_file() and version is None:
            return base
        versions = sorted(
            (p for p in base.iterdir() if (p / MANIFEST).is_file()), key=lambda p: _version_key(p.name)
        )
        if version is not None:
            versions = [p for p in versions if p.name == version]
        if versions:
            return versions[-1]
    known = ", ".join(sorted({f"{m.name} {m.version}" for m in list_models()})) or "none installed"
    raise ModelError(f"model {name!r}{' version ' + version if version else ''} not found (known: {known})")


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.\-]", version))


def list_models() -> list[ModelInfo]:
    """Every model in the user cache and the shipped resources (unverified manifests; bad folders skipped)."""
    found = []
    for root in [user_models_dir(), shipped_models_dir()]:
        if root is None or not root.is_dir():
            continue
        for manifest in sorted(root.glob(f"*/{MANIFEST}")) + sorted(root.glob(f"*/*/{MANIFEST}")):
            try:
                found.append(read_manifest(manifest.parent))
            except ModelError as exc:
                log.warning("skipping %s: %s", manifest.parent, exc)
    return found


def load_model(name_or_path: str | Path, device: str = "cpu", version: str | None = None):
    """The usable object (e.g. a :class:`~MammoDNNLib.models.detector.Detector`) of a verified model."""
    info = verify_model(resolve_model(name_or_path, version))
    target = LOADERS.get(info.kind)
    if target is None:
        raise ModelError(f"{info.path}: no loader for model kind {info.kind!r} (known: {', '.join(LOADERS)})")
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj(info, device=device)


# -- writing ----------------------------------------------------------------------------------------------------
def save_model(
    folder: str | Path,
    *,
    name: str,
    version: str,
    kind: str,
    classes: Sequence[str],
    config: Mapping[str, Any],
    state_dicts: Sequence[Mapping[str, Any]],
    training_data: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    description: str = "",
    card_notes: str = "",
) -> ModelInfo:
    """Write a model folder: ``member-<i>.safetensors`` per state dict, the manifest and the model card."""
    from safetensors.torch import save_file

    if not _NAME.match(name) or not _NAME.match(version):
        raise ModelError(f"invalid model name/version {name!r} {version!r} (letters, digits, '.', '_', '-')")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    components = []
    for i, state in enumerate(state_dicts):
        file = f"member-{i}.safetensors" if len(state_dicts) > 1 else "weights.safetensors"
        tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
        save_file(tensors, str(folder / file), metadata={"name": name, "version": version, "kind": kind})
        components.append(
            Component(
                file,
                sha256_file(folder / file),
                (folder / file).stat().st_size,
                "member" if len(state_dicts) > 1 else "weights",
            )
        )
    info = ModelInfo(
        name=name,
        version=version,
        kind=kind,
        classes=list(classes),
        config=dict(config),
        components=components,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        training_data=dict(training_data or {}),
        metrics=dict(metrics or {}),
        description=description,
        path=folder.resolve(),
    )
    write_manifest(info, folder)
    (folder / MODEL_CARD).write_text(model_card(info, card_notes), encoding="utf-8")
    return info


def store_half_precision(folder: str | Path) -> ModelInfo:
    """Rewrite a model's float32 weight files as float16 in place (half the size) and re-pin their sha256.

    Loading is unchanged: ``load_state_dict`` copies float16 tensors into the float32 parameters, so outputs
    differ only by the rounding of the weights; measure a model *after* converting it. The safetensors headers
    record the dtype. Every file is converted beside the original first, so a failure leaves the model as it was;
    then the files are replaced, the manifest's hashes and sizes updated, and the old hashes in the model card
    (its notes are kept) replaced by the new ones."""
    import torch
    from safetensors.torch import load_file, save_file

    info = verify_model(folder)
    assert info.path is not None
    staged = []
    for component in info.components:
        path = info.path / component.file
        if path.suffix != ".safetensors":
            raise ModelError(f"{path}: only safetensors weight files can be stored in half precision")
        tensors = load_file(str(path))
        halved = {k: v.half() if v.dtype == torch.float32 else v for k, v in tensors.items()}
        temporary = path.with_name(path.name + ".half")
        save_file(halved, str(temporary))
        staged.append((component, path, temporary))
    components = []
    for component, path, temporary in staged:
        temporary.replace(path)
        components.append(replace(component, sha256=sha256_file(path), size=path.stat().st_size))
    info = replace(info, components=components)
    write_manifest(info, info.path)
    card = info.path / "MODEL_CARD.md"
    if card.is_file():
        text = card.read_text(encoding="utf-8")
        for (old, _, _), new in zip(staged, components):
            text = text.replace(old.sha256, new.sha256)
        card.write_text(text, encoding="utf-8")
    else:
        card.write_text(model_card(info), encoding="utf-8")
    return verify_model(info.path)


def write_manifest(info: ModelInfo, folder: str | Path) -> None:
    (Path(folder) / MANIFEST).write_text(json.dumps(info.to_dict(), indent=2) + "\n", encoding="utf-8")


def model_card(info: ModelInfo, notes: str = "") -> str:
    lines = [
        f"# {info.name} {info.version}",
        "",
        f"Kind: {info.kind}. Classes: {', '.join(info.classes)}.",
        "",
        f"**{info.licence}**",
        "",
    ]
    if info.description:
        lines += [info.description, ""]
    lines += ["## Training data", "", "```json", json.dumps(info.training_data, indent=2), "```", ""]
    lines += ["## Measured metrics", "", "```json", json.dumps(info.metrics, indent=2), "```", ""]
    lines += ["## Files", ""] + [f"- `{c.file}` sha256 `{c.sha256}`" for c in info.components] + [""]
    if notes:
        lines += [notes, ""]
    return "\n".join(lines)


def import_model(
    source: str | Path,
    *,
    name: str | None = None,
    version: str | None = None,
    kind: str = "detector",
    config: Mapping[str, Any] | None = None,
    classes: Sequence[str] | None = None,
) -> ModelInfo:
    """Copy a model into the user cache after checking it, or convert a weight file into one.

    ``source`` is a model folder (verified, then copied), a ``.safetensors`` file, or a PyTorch checkpoint
    (``.pt``/``.pth``, read with ``torch.load(weights_only=True)``: tensors only). Bare weight files need ``name``
    and ``config`` (a dict or a :class:`DetectorConfig`-style mapping); the result is a new verified model folder.
    """
    source = Path(source).expanduser()
    if source.is_dir() or source.name == MANIFEST:
        folder = source if source.is_dir() else source.parent
        info = verify_model(folder)
        name, version = name or info.name, version or info.version
        destination = user_models_dir() / name / version
        if destination.exists():
            raise ModelError(f"{destination}: model {name} {version} is already installed; remove it first")
        staging = Path(tempfile.mkdtemp(prefix=".import-", dir=_ensure(user_models_dir())))
        try:
            for component in info.components:
                (staging / component.file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(folder / component.file, staging / component.file)
            info.name, info.version = name, version
            write_manifest(info, staging)
            card = folder / MODEL_CARD
            (staging / MODEL_CARD).write_text(
                card.read_text(encoding="utf-8") if card.is_file() else model_card(info), encoding="utf-8"
            )
            verify_model(staging)
            destination.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(destination)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        return verify_model(destination)
    if not source.is_file():
        raise ModelError(f"{source}: no such file or folder")
    if name is None or config is None:
        raise ModelError(f"{source}: importing a bare weight file needs a model name and its configuration")
    state = _read_weight_file(source)
    version = version or "1.0.0"
    destination = user_models_dir() / name / version
    if destination.exists():
        raise ModelError(f"{destination}: model {name} {version} is already installed; remove it first")
    config = dict(config)
    info = save_model(
        destination,
        name=name,
        version=version,
        kind=kind,
        classes=list(classes or config.get("classes") or []),
        config=config,
        state_dicts=[state],
        training_data={"imported_from": source.name, "sha256_of_source": sha256_file(source)},
        description=f"Imported from {source.name}.",
    )
    if kind in LOADERS:
        try:
            load_model(destination)  # the weights must fit the configuration
        except Exception:
            shutil.rmtree(destination)
            raise
    return info


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _read_weight_file(path: Path) -> dict:
    import torch

    if path.suffix.lower() == ".safetensors":
        _check_safe_file(path)
        from safetensors.torch import load_file

        return load_file(str(path))
    if path.suffix.lower() not in (".pt", ".pth", ".ckpt", ".bin"):
        raise ModelError(f"{path}: unknown weight file type (expected .safetensors, .pt or .pth)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses any object that is not plain tensors/containers
        raise ModelError(
            f"{path}: cannot be read as plain tensors (torch.load weights_only=True: {exc})"
        ) from None
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ModelError(f"{path}: does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in loaded.items()}
