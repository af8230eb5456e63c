"""The Predictor seam: scikit-learn style ``fit(X, y)`` / ``predict(X)`` on whole batches, saved without pickle.

A predictor file (``.tlp``) is a zip archive holding ``manifest.json`` (format version, kind, space, encoding,
device, hyper-parameters, fitted scalars, and a SHA-256 per payload) plus ``arrays/<name>.npy`` (loaded with
``allow_pickle=False``) and ``blobs/<name>`` (text, e.g. a gradient-boosting model's own text format). Loading
checks every checksum, so a corrupt or truncated file is an error, never a silently different model.
"""

from __future__ import annotations

import abc
import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from tailorkit.core.errors import PredictorError
from tailorkit.core.registry import Registry
from tailorkit.core.version import __version__

FORMAT = "tailorkit-predictor"
FORMAT_VERSION = 1

predictors: Registry[Predictor] = Registry("predictors")


class Predictor(abc.ABC):
    """Latency (ms) from an encoding. Fitted attributes end with ``_``; ``n_features_in_`` is checked on every
    batch so an encoding of the wrong space or length fails loudly."""

    kind: ClassVar[str] = ""

    def __init__(self, *, space: str | None = None, encoding: str | None = None, device: str | None = None) -> None:
        self.space = space
        self.encoding = encoding
        self.device = device

    # ------------------------------------------------------------------------------------------ API

    @abc.abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray) -> Self: ...

    @abc.abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray: ...

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "n_features_in_")

    # ----------------------------------------------------------------------------- subclass state hooks

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable) besides space/encoding/device."""
        return {}

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]:
        """Fitted scalars, arrays and text blobs."""
        return {}, {}, {}

    def _restore(  # noqa: B027 - predictors without fitted state need no override
            self, scalars: Mapping[str, Any], arrays: Mapping[str, np.ndarray], blobs: Mapping[str, str]) -> None:
        """Inverse of :meth:`_fitted_state` on an instance built from :meth:`get_params`."""

    # ------------------------------------------------------------------------------------- validation

    def _check_X(self, X: Any, fitting: bool = False) -> np.ndarray:
        try:
            X = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise PredictorError(f"{self.kind}: the encoding must be numeric ({exc})") from None
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2:
            raise PredictorError(f"{self.kind}: expected a 2-D batch of encodings, got shape {X.shape}")
        if not np.isfinite(X).all():
            raise PredictorError(f"{self.kind}: the encoding contains NaN or infinite values")
        if not fitting and self.is_fitted and X.shape[1] != self.n_features_in_:
            raise PredictorError(
                f"{self.kind}: encoding of length {X.shape[1]}, but this predictor was trained on length "
                f"{self.n_features_in_}" + (f" ({self.encoding or self.space} encoding)" if self.space else ""))
        return X

    def _check_y(self, y: Any, n: int) -> np.ndarray:
        try:
            y = np.asarray(y, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise PredictorError(f"{self.kind}: latencies must be numbers ({exc})") from None
        if y.shape[0] != n:
            raise PredictorError(f"{self.kind}: {n} encodings but {y.shape[0]} latencies")
        bad = ~np.isfinite(y) | (y <= 0)
        if bad.any():
            raise PredictorError(f"{self.kind}: {int(bad.sum())} latencies are NaN, infinite, zero or negative "
                                 f"(first at row {int(np.argmax(bad))})")
        return y

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise PredictorError(f"this {self.kind} predictor is not fitted yet")

    # ----------------------------------------------------------------------------------- persistence

    def save(self, path: str | Path) -> Path:
        self._check_fitted()
        scalars, arrays, blobs = self._fitted_state()
        scalars = {"n_features_in_": int(self.n_features_in_), **scalars}
        payloads: dict[str, bytes] = {}
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
            payloads[f"arrays/{name}.npy"] = buf.getvalue()
        for name, text in blobs.items():
            payloads[f"blobs/{name}"] = text.encode("utf-8")
        manifest = {
            "format": FORMAT, "version": FORMAT_VERSION, "kind": self.kind, "space": self.space,
            "encoding": self.encoding, "device": self.device, "params": self.get_params(), "fitted": scalars,
            "tailorkit_version": __version__,
            "payloads": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(payloads.items())},
        }
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
                for name, data in payloads.items():
                    zf.writestr(name, data)
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise PredictorError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
        return path


def load_predictor(path: str | Path, *, space: str | None = None) -> Predictor:
    """Load a ``.tlp`` file; with ``space``, refuse a predictor trained for another space."""
    path = Path(path)
    if not path.is_file():
        raise PredictorError(f"predictor file {str(path)!r} does not exist")
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise PredictorError(f"{str(path)!r} is not a tailorkit predictor file")
            if manifest.get("version") != FORMAT_VERSION:
                raise PredictorError(f"{str(path)!r} has predictor format v{manifest.get('version')}; this "
                                     f"tailorkit reads v{FORMAT_VERSION}")
            arrays: dict[str, np.ndarray] = {}
            blobs: dict[str, str] = {}
            for name, digest in manifest["payloads"].items():
                data = zf.read(name)
                if hashlib.sha256(data).hexdigest() != digest:
                    raise PredictorError(f"{str(path)!r} is corrupt: checksum mismatch in {name}")
                if name.startswith("arrays/"):
                    arrays[name[len("arrays/"):-len(".npy")]] = np.load(io.BytesIO(data), allow_pickle=False)
                else:
                    blobs[name[len("blobs/"):]] = data.decode("utf-8")
    except PredictorError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise PredictorError(f"{str(path)!r} is not a readable predictor file (corrupt or truncated: "
                             f"{type(exc).__name__}: {exc})") from None
    if space is not None and manifest.get("space") != space:
        raise PredictorError(f"{str(path)!r} was trained for space {manifest.get('space')!r}, not {space!r}")
    cls = predictors.get(manifest["kind"])
    try:
        predictor = cls(space=manifest.get("space"), encoding=manifest.get("encoding"),
                        device=manifest.get("device"), **manifest.get("params", {}))
        fitted = dict(manifest.get("fitted", {}))
        predictor.n_features_in_ = int(fitted.pop("n_features_in_"))
        predictor._restore(fitted, arrays, blobs)
    except (TypeError, KeyError, ValueError) as exc:
        raise PredictorError(f"{str(path)!r}: cannot restore the {manifest['kind']} predictor: {exc}") from None
    return predictor
