"""The export folder: model files plus ``manifest.json``, written whole or not at all.

Manifest (JSON, ``schema`` = ``tailorkit.export-manifest``, ``version`` 1)::

    format          onnx | tflite | tvm
    quantize        null | "int8"
    space           {name, width}
    arch            the arch's JSON form
    input           {name, shape, layout, dtype, verified_shape, preprocessing}
                    shape: the deployment input (what tables, predictions and measurements use); ONNX files
                    declare height and width dynamic so that verified_shape (the digits input) runs too
    files           [{name, sha256, bytes}]                        every model file of the folder, the model first
                    (tvm: model.so, then the model.onnx it was compiled from)
    compiled        {library, target, tvm, tuning, compile_s, input_shape} | null    (tvm only)
    source          {kind: search-result | search | arch, path?, sha256?}
    weights         {kind: supernet | trained, checkpoint?, sha256?, finetune_epochs, bn_recalibrated}
    accuracy        {dataset, split, n, torch, runtime}
    verify          {n, top1_agreement, max_abs_diff, reference_scale, min_agreement, max_abs_tolerance,
                     passed} | null
    simplify        {tool, nodes_before, nodes_after, seconds} | null
    predicted       {latency_ms, source, device?, reference?, note?} | null   reference: the predictor's speed
                    reference (a calibration against one), as in the search result's ``predictor``
    measured        {device, fingerprint, latency_ms: {mean, median, …}, error_pct | null, input_shape, note?,
                    speed_reference?}   speed_reference: the file run in alternation with the predictor's
                    reference subnet, as in the search result's ``measured`` (latency_ms there is the file at the
                    calibration's machine speed, error_pct its error)
                    error_pct only against a prediction for the same device and the same (float) model
    refit           {store, table, key} | null
    versions        {tailorkit, python, torch, onnx, onnxruntime, litert_torch, ai_edge_litert, …}
    created
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from tailorkit.core.documents import from_document, read_json_object, sha256_file
from tailorkit.core.errors import ConfigError, ModelFormatError
from tailorkit.core.version import __version__

SCHEMA = "tailorkit.export-manifest"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
_VERSIONED = ("torch", "onnx", "onnxruntime", "onnxsim", "onnxslim", "litert-torch", "ai-edge-litert", "numpy")


@dataclass(frozen=True)
class ExportManifest:
    format: str
    space: dict[str, Any]
    arch: dict[str, Any]
    input: dict[str, Any]
    files: list[dict[str, Any]]
    source: dict[str, Any]
    weights: dict[str, Any]
    accuracy: dict[str, Any]
    quantize: str | None = None
    verify: dict[str, Any] | None = None
    simplify: dict[str, Any] | None = None
    predicted: dict[str, Any] | None = None
    measured: dict[str, Any] | None = None
    refit: dict[str, Any] | None = None
    compiled: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "version": SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExportManifest:
        manifest = from_document(cls, data, SCHEMA, SCHEMA_VERSION, "export manifest")
        files = manifest.files
        if not isinstance(files, list) or not files or not all(
                isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("sha256"), str)
                and isinstance(f.get("bytes"), int) for f in files):
            raise ConfigError("export manifest: files must be a non-empty list of {name, sha256, bytes}")
        for key in ("space", "arch", "input", "accuracy", "weights", "source"):
            if not isinstance(getattr(manifest, key), dict):
                raise ConfigError(f"export manifest: {key} must be an object")
        if not isinstance(manifest.input.get("shape"), list):
            raise ConfigError("export manifest: input.shape must be a list")
        return manifest

    def model_file(self) -> str:
        """The name of the model file (the first file listed)."""
        if not self.files:
            raise ConfigError("the export manifest lists no files")
        return str(self.files[0]["name"])


def runtime_versions() -> dict[str, str]:
    versions = {"tailorkit": __version__, "python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def file_entry(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    return {"name": name, "sha256": sha256_file(path), "bytes": path.stat().st_size}


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def read_manifest(folder: str | Path) -> ExportManifest:
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ConfigError(f"export folder {str(folder)!r} does not exist")
    if not path.exists():
        raise ConfigError(f"{str(folder)!r} holds no {MANIFEST}; is it a `tailor export` folder?")
    return ExportManifest.from_dict(read_json_object(path, "export manifest"))


def check_files(folder: str | Path, manifest: ExportManifest) -> list[str]:
    """What differs between the folder and its manifest: missing files, changed sizes or checksums."""
    folder = Path(folder)
    problems = []
    for entry in manifest.files:
        name = str(entry.get("name", ""))
        path = folder / name
        if not name or Path(name).name != name:
            problems.append(f"the manifest names a file outside the folder: {name!r}")
        elif not path.is_file():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != entry.get("bytes"):
            problems.append(f"{name}: {path.stat().st_size} bytes, the manifest says {entry.get('bytes')}")
        elif sha256_file(path) != entry.get("sha256"):
            problems.append(f"{name}: sha256 differs from the manifest (the file was altered)")
    return problems


def check_output_dir(out: str | Path, force: bool = False) -> Path:
    """Refuse, before any work, an output that cannot be written or would overwrite something."""
    out = Path(out)
    resolved = out.resolve()
    if not out.name or resolved == Path.cwd().resolve() or Path.cwd().resolve().is_relative_to(resolved):
        raise ConfigError(f"output {str(out)!r} is the working folder or above it; name a new folder")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output {str(out)!r} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"output {str(out)!r} is not empty; pick another folder or pass --force to replace it")
    parent = resolved.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {str(parent)!r}: {exc.strerror or exc}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"output folder {str(parent)!r} is not writable")
    return out


@contextmanager
def staging_dir(out: str | Path, force: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``out`` that becomes ``out`` when the block succeeds; on any error it is
    removed and ``out`` is untouched. Without ``force`` the final rename only succeeds onto a missing or
    still-empty ``out`` (something written there meanwhile is never replaced); with ``force`` an old ``out`` is
    moved aside, replaced, and deleted only after the new one is in place."""
    out = check_output_dir(out, force)
    parent = out.resolve().parent
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    except OSError as exc:
        raise ConfigError(f"cannot write in {str(parent)!r}: {exc.strerror or exc}") from None
    umask = os.umask(0)
    os.umask(umask)
    stage.chmod(0o777 & ~umask)  # mkdtemp's 0700 would make the finished folder private
    try:
        yield stage
        _commit(stage, out, force)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _commit(stage: Path, out: Path, force: bool) -> None:
    if not force or not out.exists():
        try:
            os.replace(stage, out)  # onto an empty folder only: a non-empty one raises
        except OSError as exc:
            raise ConfigError(f"output {str(out)!r} changed during the export ({exc.strerror or exc}); nothing was "
                              "replaced") from None
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=stage.parent))
    try:
        try:
            os.replace(out, old / "previous")
        except OSError as exc:
            raise ConfigError(f"cannot move the old {str(out)!r} aside: {exc.strerror or exc}") from None
        try:
            os.replace(stage, out)
        except OSError as exc:
            os.replace(old / "previous", out)  # put the previous export back
            raise ConfigError(f"cannot replace {str(out)!r}: {exc.strerror or exc}; the old folder is back") from None
    finally:
        shutil.rmtree(old, ignore_errors=True)


def write_manifest(folder: Path, manifest: ExportManifest) -> Path:
    path = folder / MANIFEST
    try:
        path.write_text(json.dumps(manifest.to_dict(), indent=2, allow_nan=False) + "\n")
    except ValueError as exc:
        raise ModelFormatError(f"the manifest holds a non-finite number: {exc}") from None
    return path
