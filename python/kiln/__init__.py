"""kiln: freeze, run and verify ONNX models, on kiln's own CPU engine.

    import kiln, numpy as np
    m = kiln.load("model.onnx")                  # a path, bytes or an onnx.ModelProto
    m.inputs                                     # [ValueInfo(name, dtype, shape)]
    rep = m.freeze(bind={"scale": 2.0}, dims={"batch": 1})
    m.save("frozen.onnx")
    s = kiln.Session(m, threads=2)
    out = s.run({"x": np.ones((1, 4), np.float32)})    # {"y": array}

The work is done by kiln's C library (include/kiln.h) through the extension
kiln._kiln; arrays pass through the buffer protocol without copies where
their layout allows (C-contiguous, aligned, a type kiln has).
"""
from __future__ import annotations

import json as _json
import os as _os
import shutil as _shutil
import subprocess as _subprocess
import tempfile as _tempfile
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as _np

from . import _kiln
from ._kiln import ArgumentError, Error, MismatchError, ModelError

__all__ = [
    "ArgumentError",
    "CheckResult",
    "Error",
    "MismatchError",
    "Model",
    "ModelError",
    "OutputCheck",
    "Session",
    "ValueInfo",
    "check",
    "dtype_name",
    "freeze",
    "load",
    "version",
    "__version__",
]

__version__: str = _kiln.version()[0]


def version() -> str:
    """The version of the linked kiln library ("MAJOR.MINOR.PATCH")."""
    return _kiln.version()[0]


# ---- element types ------------------------------------------------------------

try:  # bfloat16, float8, int4 ...: numpy has them through ml_dtypes (onnx's dependency)
    import ml_dtypes as _ml
except ImportError:  # pragma: no cover - exercised only without ml_dtypes
    _ml = None

STRING = 8
_NUMPY: Dict[int, Any] = {
    1: _np.dtype(_np.float32),
    2: _np.dtype(_np.uint8),
    3: _np.dtype(_np.int8),
    4: _np.dtype(_np.uint16),
    5: _np.dtype(_np.int16),
    6: _np.dtype(_np.int32),
    7: _np.dtype(_np.int64),
    8: _np.dtype(object),
    9: _np.dtype(_np.bool_),
    10: _np.dtype(_np.float16),
    11: _np.dtype(_np.float64),
    12: _np.dtype(_np.uint32),
    13: _np.dtype(_np.uint64),
    14: _np.dtype(_np.complex64),
    15: _np.dtype(_np.complex128),
}
# ONNX types numpy lacks: (code, ml_dtypes name, the storage kiln keeps them in)
_EXOTIC_SPEC = [
    (16, "bfloat16", _np.uint16),
    (17, "float8_e4m3fn", _np.uint8),
    (18, "float8_e4m3fnuz", _np.uint8),
    (19, "float8_e5m2", _np.uint8),
    (20, "float8_e5m2fnuz", _np.uint8),
    (21, "uint4", _np.uint8),
    (22, "int4", _np.int8),
    (23, "float4_e2m1fn", _np.uint8),
    (24, "float8_e8m0fnu", _np.uint8),
    (25, "uint2", _np.uint8),
    (26, "int2", _np.int8),
    (27, "float6_e2m3fn", _np.uint8),
    (28, "float6_e3m2fn", _np.uint8),
]
_STORAGE: Dict[int, Any] = {code: _np.dtype(st) for code, _, st in _EXOTIC_SPEC}
_CODE_OF_EXOTIC: Dict[Any, int] = {}
if _ml is not None:
    for _code, _name, _st in _EXOTIC_SPEC:
        _t = getattr(_ml, _name, None)
        if _t is not None and _np.dtype(_t).itemsize == _np.dtype(_st).itemsize:
            _NUMPY[_code] = _np.dtype(_t)
            _CODE_OF_EXOTIC[_np.dtype(_t)] = _code


def dtype_name(code: int) -> str:
    """kiln's name of an ONNX element type code (1: "float32", ...)."""
    return _kiln.dtype_name(code)


def _numpy_dtype(code: int) -> Any:
    """numpy's dtype for an ONNX code; kiln's name (a str) where numpy has none."""
    if code == 0:
        return None
    dt = _NUMPY.get(code)
    return dt if dt is not None else dtype_name(code)


def _as_input(value: Any, code: int, name: str) -> Any:
    """Called by the extension for what the buffer protocol did not give it:
    returns an array, (array, code) for the ml_dtypes types, or
    ("strings", [bytes], shape)."""
    if isinstance(value, _np.ndarray):
        arr = value
    else:
        want = _NUMPY.get(code) if code else None
        if code == STRING or isinstance(value, (str, bytes)):
            arr = _np.asarray(value, dtype=object)
        else:
            probe = _np.asarray(value)
            if want is not None and want.kind in "iub" and probe.dtype.kind == "f":
                raise ArgumentError(
                    f"input '{name}': {value!r} is not a {dtype_name(code)} value")
            if want is not None and probe.dtype.kind in "OUS" and want.kind not in "OUS":
                raise ArgumentError(f"input '{name}': {value!r} is not a {dtype_name(code)} value")
            arr = probe.astype(want) if want is not None and want.kind != "O" else probe
    if arr.dtype.kind in "OUS":
        flat = []
        for x in arr.ravel():
            if isinstance(x, str):
                flat.append(x.encode("utf-8"))
            elif isinstance(x, (bytes, _np.bytes_)):
                flat.append(bytes(x))
            else:
                raise ArgumentError(f"input '{name}': {type(x).__name__} in a string tensor")
        return ("strings", flat, arr.shape)
    exotic = _CODE_OF_EXOTIC.get(arr.dtype)
    if exotic is not None:
        return (_np.ascontiguousarray(arr).view(_STORAGE[exotic]), exotic)
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not arr.dtype.isnative):
        return arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _as_output(obj: Any, code: int, shape: Any) -> Any:
    """Called by the extension for string outputs and the ml_dtypes types."""
    if code == STRING:
        out = _np.empty(len(obj), dtype=object)
        out[:] = [b.decode("utf-8", "surrogateescape") for b in obj]
        return out.reshape(shape)
    arr = _np.asarray(obj)
    dt = _NUMPY.get(code)
    return arr.view(dt) if dt is not None and dt != arr.dtype else arr


_kiln._set_hooks(_np.asarray, _as_input, _as_output)


# ---- models ---------------------------------------------------------------------


class ValueInfo(NamedTuple):
    """A graph input or output: its name, numpy dtype (kiln's type name as a
    str where numpy has none; None when undeclared) and shape (a list of ints
    and symbol names, None for an unknown dim; None when undeclared)."""

    name: str
    dtype: Any
    shape: Optional[List[Union[int, str, None]]]


def _value_infos(raw: Iterable[Tuple[str, int, Any]]) -> List[ValueInfo]:
    return [ValueInfo(n, _numpy_dtype(c), s) for n, c, s in raw]


ModelSource = Union[str, "_os.PathLike[str]", bytes, bytearray, memoryview, "Model", Any]


class Model:
    """An ONNX model loaded by kiln (see kiln.load)."""

    def __init__(self, source: ModelSource, *, base_dir: Optional[str] = None):
        if isinstance(source, Model):
            source = source.to_bytes()
        elif hasattr(source, "SerializeToString") and not isinstance(source, (str, bytes)):
            source = source.SerializeToString()  # an onnx.ModelProto
        self._path = _os.fspath(source) if isinstance(source, (str, _os.PathLike)) else None
        self._m = _kiln.Model(source, base_dir)
        self._bound: List[str] = []
        self._frozen = False

    # metadata
    @property
    def inputs(self) -> List[ValueInfo]:
        """The inputs a run needs (those without an initializer default)."""
        return _value_infos(self._m.inputs())

    @property
    def outputs(self) -> List[ValueInfo]:
        return _value_infos(self._m.outputs())

    @property
    def path(self) -> Optional[str]:
        """The file it was loaded from, if any."""
        return self._path

    def info(self) -> Dict[str, Any]:
        """What `kiln info --json` shows, as a dict."""
        return _json.loads(self._m.describe(True))

    def describe(self) -> str:
        """What `kiln info` shows."""
        return self._m.describe(False)

    def __repr__(self) -> str:
        ins = ", ".join(f"{v.name}: {_type_str(v)}" for v in self.inputs)
        outs = ", ".join(f"{v.name}: {_type_str(v)}" for v in self.outputs)
        return f"<kiln.Model ({ins}) -> ({outs})>"

    # freezing
    def freeze(
        self,
        bind: Optional[Mapping[str, Any]] = None,
        dims: Optional[Mapping[str, int]] = None,
        shapes: Optional[Mapping[str, Sequence[int]]] = None,
        *,
        unroll_limit: Optional[int] = None,
        unroll_node_limit: Optional[int] = None,
        fold_limit: Optional[int] = None,
        prune_dead_inputs: bool = False,
        keep_functions: bool = False,
    ) -> Dict[str, Any]:
        """Freezes the model in place, as `kiln freeze` does: `bind` inputs to
        values (numbers, bools, lists, arrays; they take the input's declared
        type), fix `dims` (symbol -> size) and `shapes` (input -> dims), then
        fold and prune. Returns the report (the content of `kiln freeze
        --report`). unroll_limit: Loops of at most that many iterations are
        unrolled (0: none; default 64); fold_limit: bytes a growing fold may
        produce (0: nothing may grow; default 1 MiB, < 0: no limit).

        Arguments are checked before anything changes; an error from the
        passes themselves may leave the model partly frozen (load it again)."""
        bind = dict(bind or {})
        dims = dict(dims or {})
        shapes = dict(shapes or {})
        known = {v.name for v in self.inputs}
        for name in list(bind) + list(shapes):
            if not isinstance(name, str):
                raise ArgumentError(f"input names are str, not {type(name).__name__}")
            if name not in known and self._m.input_dtype(name) == 0:
                listed = ", ".join(f"'{n}'" for n in known) or "(none)"
                raise ArgumentError(f"'{name}' is not an input of the model; the model's inputs are {listed}")
        for sym, v in dims.items():
            if not isinstance(v, (int, _np.integer)) or isinstance(v, bool) or v < 0:
                raise ArgumentError(f"dims: '{sym}' takes a size >= 0, not {v!r}")
        ul = 0 if unroll_limit is None else (-1 if unroll_limit == 0 else int(unroll_limit))
        if unroll_limit is not None and unroll_limit < 0:
            raise ArgumentError("unroll_limit must be >= 0")
        fl = 0 if fold_limit is None else (1 if fold_limit == 0 else int(fold_limit))
        report, _text = self._m.freeze(
            list(bind.items()),
            [(k, int(v)) for k, v in dims.items()],
            [(k, [int(d) for d in v]) for k, v in shapes.items()],
            ul,
            int(unroll_node_limit or 0),
            fl,
            bool(prune_dead_inputs),
            bool(keep_functions),
        )
        self._bound += list(bind)
        self._frozen = True
        self._report_text = _text
        return _json.loads(report)

    # output
    def save(self, path: Union[str, "_os.PathLike[str]"], *, external_threshold: int = 0) -> None:
        """Writes the model (atomically). Tensors of at least
        external_threshold bytes go to one side file `<path>.data`."""
        self._m.save(path, external_threshold)

    def to_bytes(self) -> bytes:
        """The model as ModelProto bytes (onnx.load_from_string reads them)."""
        return self._m.to_bytes()

    def to_onnx(self) -> Any:
        """The model as an onnx.ModelProto (needs the onnx package)."""
        import onnx

        return onnx.load_from_string(self.to_bytes())

    def find_states(self, convention: Optional[str] = None) -> List[Tuple[str, str]]:
        """State pairs kiln finds (LSTM/GRU/RNN state wired to graph inputs and
        outputs; with a convention like "past_*=present_*", names that pair up)."""
        return self._m.find_states(convention)

    def picture(
        self,
        path: Optional[Union[str, "_os.PathLike[str]"]] = None,
        *,
        original: Union[None, bool, ModelSource] = None,
        title: Optional[str] = None,
    ) -> str:
        """Draws the model (as `kiln show`): writes `path` (.dot: DOT text;
        .svg/.png/.pdf: rendered by Graphviz's `dot`) and returns the DOT text.
        With `original` (a model, path or bytes; True: the file this model was
        loaded from, before freeze()), that model is drawn with what freezing
        removed, folded and bound marked, beside this one."""
        orig = None
        if original is True:
            if self._path is None:
                raise ArgumentError("original=True needs a model loaded from a file")
            orig = Model(self._path)
        elif original is not None and original is not False:
            orig = original if isinstance(original, Model) else Model(original)
        if orig is None:
            dot = self._m.picture(None, None, title)
        else:
            dot = orig._m.picture(self._m, self._bound, title)
        if path is not None:
            _write_picture(dot, _os.fspath(path))
        return dot


def _type_str(v: ValueInfo) -> str:
    dt = v.dtype if isinstance(v.dtype, str) else (str(v.dtype) if v.dtype is not None else "?")
    if v.shape is None:
        return f"{dt}[?]"
    return dt + "[" + ",".join("?" if d is None else str(d) for d in v.shape) + "]"


def load(source: ModelSource, *, base_dir: Optional[str] = None) -> Model:
    """Loads a model: a path (weights stay in the mapped file), bytes of a
    ModelProto (base_dir: where its external data is), or an onnx.ModelProto."""
    return Model(source, base_dir=base_dir)


def _model(src: ModelSource) -> Model:
    return src if isinstance(src, Model) else Model(src)


# ---- pictures -------------------------------------------------------------------


def _write_picture(dot: str, path: str) -> None:
    ext = _os.path.splitext(path)[1].lower().lstrip(".")
    if ext in ("dot", "gv"):
        with open(path, "w", encoding="utf-8") as f:
            f.write(dot)
        return
    if ext not in ("svg", "png", "pdf"):
        raise ArgumentError(f"'{path}': a picture is .dot or .gv (DOT text), .svg, .png or .pdf (rendered by Graphviz)")
    exe = _shutil.which("dot")
    if exe is None:
        raise Error(
            f"rendering .{ext} needs Graphviz's 'dot', which is not installed "
            "(Debian package 'graphviz': apt-get install graphviz); or write DOT text with a .dot file name")
    folder = _os.path.dirname(_os.path.abspath(path))
    fd, tmp = _tempfile.mkstemp(prefix=_os.path.basename(path) + ".", suffix=".kiln-tmp", dir=folder)
    _os.close(fd)
    try:
        r = _subprocess.run([exe, f"-T{ext}", "-o", tmp], input=dot.encode("utf-8"), capture_output=True)
        if r.returncode != 0:
            raise Error(f"Graphviz's 'dot' failed rendering '{path}': {r.stderr.decode(errors='replace').strip()}")
        _os.replace(tmp, path)
    finally:
        if _os.path.exists(tmp):
            _os.unlink(tmp)


# ---- sessions ---------------------------------------------------------------------


class Session(_kiln.Session):
    """Runs a model on kiln's engine.

        s = kiln.Session(m, threads=2, state={"h0": "hn"})   # or state="auto"
        out = s.run({"x": x})          # {output name: numpy array}
        s.state                        # {"h0": array or None}; s.reset_state()

    `state` pairs carry an output into an input from run to run (None: none;
    "auto": the pairs kiln finds; a convention such as "past_*=present_*";
    a dict input -> output; or a list of these). run() releases the GIL; one
    session runs one call at a time (make one per thread to run in
    parallel)."""

    def __init__(
        self,
        model: ModelSource,
        threads: int = 0,
        state: Union[None, str, Mapping[str, str], Sequence[Any]] = None,
        *,
        max_tensor_bytes: int = 0,
    ):
        m = _model(model)
        super().__init__(m._m, threads, max_tensor_bytes)
        self.model = m
        specs = state if isinstance(state, (list, tuple)) else [state]
        for spec in specs:
            if spec is None:
                continue
            if isinstance(spec, str):
                self.add_found_states(None if spec == "auto" else spec)
            elif isinstance(spec, Mapping):
                for i, o in spec.items():
                    self.add_state(i, o)
            else:
                raise ArgumentError(f"state takes 'auto', a convention, or {{input: output}}, not {spec!r}")

    @property
    def inputs(self) -> List[ValueInfo]:
        return self.model.inputs

    @property
    def outputs(self) -> List[ValueInfo]:
        return self.model.outputs

    @property
    def state(self) -> Dict[str, Optional[_np.ndarray]]:
        """Current value of each state input (None: still zeros)."""
        return {i: self.get_state(i) for i, _ in self.state_pairs()}

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<kiln.Session {'closed' if self.closed else 'open'} {self.model!r}>"


# ---- freeze and check as one call ---------------------------------------------------


class OutputCheck(NamedTuple):
    """Largest errors of one output over the runs, and whether it matched."""

    max_abs: float
    max_rel: float
    ok: bool


class CheckResult(NamedTuple):
    """kiln.check's answer: ok, per-output errors, one record per run and
    output, and the text `kiln check` prints."""

    ok: bool
    outputs: Dict[str, OutputCheck]
    runs: List[Tuple[int, str, float, float, bool]]
    text: str

    def __bool__(self) -> bool:
        return self.ok


def check(
    original: ModelSource,
    frozen: ModelSource,
    bind: Optional[Mapping[str, Any]] = None,
    *,
    runs: int = 3,
    seed: int = 1,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    threads: int = 0,
    inputs: Optional[str] = None,
) -> CheckResult:
    """Runs `original` (fed the bound values) and `frozen` on the same seeded
    inputs and compares every output (as `kiln check`). A mismatch is
    res.ok == False, not an exception; inputs: a folder of <input>.npy."""
    a, b = _model(original), _model(frozen)
    ok, text, recs = _kiln.check(a._m, b._m, list(dict(bind or {}).items()), runs, seed, rtol, atol, threads, inputs)
    per: Dict[str, OutputCheck] = {}
    for _run, name, ab, rel, good in recs:
        prev = per.get(name)
        per[name] = OutputCheck(max(ab, prev.max_abs) if prev else ab, max(rel, prev.max_rel) if prev else rel,
                                good and (prev.ok if prev else True))
    return CheckResult(bool(ok), per, list(recs), text)


def freeze(
    model: ModelSource,
    output: Union[str, "_os.PathLike[str]"],
    bind: Optional[Mapping[str, Any]] = None,
    dims: Optional[Mapping[str, int]] = None,
    shapes: Optional[Mapping[str, Sequence[int]]] = None,
    *,
    verify: bool = False,
    report: Optional[str] = None,
    picture: Optional[str] = None,
    runs: int = 3,
    **options: Any,
) -> Dict[str, Any]:
    """`kiln freeze MODEL -o OUTPUT`: loads, freezes (see Model.freeze for the
    options), with verify=True checks the result against the original
    (kiln.MismatchError, and nothing written, when outputs differ), writes
    OUTPUT (and the report as JSON to `report`, the before/after picture to
    `picture`). Returns the report."""
    m = Model(model) if not isinstance(model, Model) else Model(model.to_bytes())
    rep = m.freeze(bind, dims, shapes, **options)
    if verify or picture:
        orig = Model(model) if not isinstance(model, Model) else model
        if verify:
            res = check(orig, m, bind, runs=runs)
            if not res.ok:
                raise MismatchError(
                    "verification failed, nothing written: the frozen model's outputs differ from the original's\n"
                    + res.text)
    m.save(output)
    if report is not None:
        with open(report, "w", encoding="utf-8") as f:
            _json.dump(rep, f, indent=2)
    if picture is not None:
        m.picture(picture, original=orig)
    return rep
