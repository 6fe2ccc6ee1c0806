"""Type stubs of the kiln package."""
import os
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import _kiln
from ._kiln import ArgumentError as ArgumentError
from ._kiln import Error as Error
from ._kiln import MismatchError as MismatchError
from ._kiln import ModelError as ModelError

__version__: str
STRING: int

_PathLike = Union[str, "os.PathLike[str]"]
ModelSource = Union[_PathLike, bytes, bytearray, memoryview, "Model", Any]
Dim = Union[int, str, None]

def version() -> str: ...
def dtype_name(code: int) -> str: ...

class ValueInfo(NamedTuple):
    name: str
    dtype: Union[np.dtype, str, None]
    shape: Optional[List[Dim]]

class Model:
    def __init__(self, source: ModelSource, *, base_dir: Optional[str] = ...) -> None: ...
    @property
    def inputs(self) -> List[ValueInfo]: ...
    @property
    def outputs(self) -> List[ValueInfo]: ...
    @property
    def path(self) -> Optional[str]: ...
    def info(self) -> Dict[str, Any]: ...
    def describe(self) -> str: ...
    def freeze(
        self,
        bind: Optional[Mapping[str, Any]] = ...,
        dims: Optional[Mapping[str, int]] = ...,
        shapes: Optional[Mapping[str, Sequence[int]]] = ...,
        *,
        unroll_limit: Optional[int] = ...,
        unroll_node_limit: Optional[int] = ...,
        fold_limit: Optional[int] = ...,
        prune_dead_inputs: bool = ...,
        keep_functions: bool = ...,
    ) -> Dict[str, Any]: ...
    def save(self, path: _PathLike, *, external_threshold: int = ...) -> None: ...
    def to_bytes(self) -> bytes: ...
    def to_onnx(self) -> Any: ...
    def find_states(self, convention: Optional[str] = ...) -> List[Tuple[str, str]]: ...
    def picture(self, path: Optional[_PathLike] = ..., *, original: Union[None, bool, ModelSource] = ...,
                title: Optional[str] = ...) -> str: ...

def load(source: ModelSource, *, base_dir: Optional[str] = ...) -> Model: ...

class Session(_kiln.Session):
    model: Model
    def __init__(
        self,
        model: ModelSource,
        threads: int = ...,
        state: Union[None, str, Mapping[str, str], Sequence[Any]] = ...,
        *,
        max_tensor_bytes: int = ...,
    ) -> None: ...
    def run(self, feeds: Mapping[str, Any], outputs: Optional[Sequence[str]] = ...) -> Dict[str, np.ndarray]: ...
    @property
    def inputs(self) -> List[ValueInfo]: ...
    @property
    def outputs(self) -> List[ValueInfo]: ...
    @property
    def state(self) -> Dict[str, Optional[np.ndarray]]: ...
    def get_state(self, input: str) -> Optional[np.ndarray]: ...
    def __enter__(self) -> "Session": ...
    def __exit__(self, *exc: Any) -> None: ...

class OutputCheck(NamedTuple):
    max_abs: float
    max_rel: float
    ok: bool

class CheckResult(NamedTuple):
    ok: bool
    outputs: Dict[str, OutputCheck]
    runs: List[Tuple[int, str, float, float, bool]]
    text: str
    def __bool__(self) -> bool: ...

def check(
    original: ModelSource,
    frozen: ModelSource,
    bind: Optional[Mapping[str, Any]] = ...,
    *,
    runs: int = ...,
    seed: int = ...,
    rtol: float = ...,
    atol: float = ...,
    threads: int = ...,
    inputs: Optional[str] = ...,
) -> CheckResult: ...

def freeze(
    model: ModelSource,
    output: _PathLike,
    bind: Optional[Mapping[str, Any]] = ...,
    dims: Optional[Mapping[str, int]] = ...,
    shapes: Optional[Mapping[str, Sequence[int]]] = ...,
    *,
    verify: bool = ...,
    report: Optional[str] = ...,
    picture: Optional[str] = ...,
    runs: int = ...,
    unroll_limit: Optional[int] = ...,
    unroll_node_limit: Optional[int] = ...,
    fold_limit: Optional[int] = ...,
    prune_dead_inputs: bool = ...,
    keep_functions: bool = ...,
) -> Dict[str, Any]: ...
