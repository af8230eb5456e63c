"""An ONNX file's input shapes, resolved against the user's ``--shape``: needed by every device adapter that
runs ONNX, so it lives apart from the torch exporter and loads neither torch nor more than ``onnx``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from tailorkit.core.errors import ModelFormatError


def onnx_input_shapes(path: str | Path) -> dict[str, tuple[int | str, ...]]:
    """Graph inputs (initializers excluded) with their dims; dynamic dims come back as their names (or '?')."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"model file {str(path)!r} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelFormatError(f"{str(path)!r} is not an ONNX model ({type(exc).__name__}: {exc})") from None
    if not model.graph.node:
        raise ModelFormatError(f"{str(path)!r} is not an ONNX model (no graph nodes)")
    initializers = {init.name for init in model.graph.initializer}
    shapes: dict[str, tuple[int | str, ...]] = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0
                                   else (d.dim_param or "?") for d in dims)
    return shapes


def resolve_input_shapes(path: str | Path, overrides: Mapping[str, Sequence[int]] | None = None
                         ) -> dict[str, tuple[int, ...]]:
    """Concrete input shapes: the model's static dims, with ``overrides`` (by input name, or ``""`` for the
    only input) for the rest. Dynamic dims left unresolved are a clear error, not a guess."""
    declared = onnx_input_shapes(path)
    overrides = dict(overrides or {})
    if "" in overrides:
        if len(declared) != 1:
            raise ModelFormatError(f"the model has {len(declared)} inputs ({', '.join(declared)}); "
                                   "name each in --shape NAME:DIMS")
        overrides[next(iter(declared))] = overrides.pop("")
    unknown = set(overrides) - set(declared)
    if unknown:
        raise ModelFormatError(f"--shape names unknown inputs {sorted(unknown)}; the model has {sorted(declared)}")
    shapes: dict[str, tuple[int, ...]] = {}
    for name, dims in declared.items():
        if name in overrides:
            given = tuple(int(d) for d in overrides[name])
            if len(given) != len(dims) or any(isinstance(d, int) and d != g for d, g in zip(dims, given, strict=True)):
                raise ModelFormatError(f"--shape {name}:{'x'.join(map(str, given))} does not fit the model's "
                                       f"input {name}{list(dims)}")
            shapes[name] = given
        elif all(isinstance(d, int) for d in dims):
            shapes[name] = tuple(int(d) for d in dims)  # type: ignore[arg-type]
        else:
            raise ModelFormatError(f"input {name!r} has dynamic dims {list(dims)}; give concrete ones with "
                                   f"--shape {name}:" + "x".join(str(d) if isinstance(d, int) else "N" for d in dims))
    return shapes
