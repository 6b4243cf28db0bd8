"""The safetensors file format: write atomically, read with every field validated first.

Layout: 8-byte little-endian header length N, N bytes of JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
then the tensor bytes; offsets are relative to the end of the header and must tile the
data area exactly (sorted, no gaps, no overlaps). Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
import struct

import numpy as np

from ._files import atomic_write

MAX_HEADER_BYTES = 100 * 1024 * 1024
_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}


class SafetensorsError(ValueError):
    """A file that is not a valid safetensors file (or not one we can read)."""


def write(path, tensors: dict, metadata: dict) -> None:
    """Write atomically: a temporary file in the same folder, fsync, then rename over path."""
    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        arr = np.asarray(arr, order="C")  # (ascontiguousarray makes a scalar 1-d)
        code = _CODES.get(arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype)
        if code is None:
            raise TypeError(f"{name}: cannot store dtype {arr.dtype} in safetensors")
        data = arr.astype(_DTYPES[code], copy=False).tobytes()
        header[name] = {
            "dtype": code,
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
        blobs.append(data)
    header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # align the data area to 8 bytes
    with atomic_write(path) as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for data in blobs:
            f.write(data)


def read(path) -> tuple[dict, dict]:
    """(tensors, metadata) from a safetensors file, or SafetensorsError saying what is wrong."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise SafetensorsError(f"{path}: not a safetensors file (only {size} bytes)")
        (n,) = struct.unpack("<Q", f.read(8))
        if n > MAX_HEADER_BYTES:
            raise SafetensorsError(
                f"{path}: header length {n} exceeds the {MAX_HEADER_BYTES} byte cap"
            )
        if 8 + n > size:
            raise SafetensorsError(
                f"{path}: header length {n} runs past the end of the {size}-byte file"
            )
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SafetensorsError(f"{path}: header is not valid JSON ({e})") from None
        if not isinstance(header, dict):
            raise SafetensorsError(f"{path}: header must be a JSON object")
        metadata = header.pop("__metadata__", {}) or {}
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise SafetensorsError(f"{path}: __metadata__ must map strings to strings")
        entries = [_entry(path, name, spec) for name, spec in header.items()]
        _check_tiling(path, entries, size - 8 - n)
        tensors = {}
        for name, dtype, shape, begin, end in entries:
            f.seek(8 + n + begin)
            data = f.read(end - begin)
            tensors[name] = (
                np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
            )
    return tensors, metadata


def _non_negative_ints(v) -> bool:
    return isinstance(v, list) and all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v
    )


def _entry(path, name, spec):
    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data_offsets"}:
        raise SafetensorsError(
            f"{path}: tensor {name!r} must have exactly dtype, shape, data_offsets"
        )
    code, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
    if code not in _DTYPES:
        raise SafetensorsError(f"{path}: tensor {name!r} has unknown or unsupported dtype {code!r}")
    if not _non_negative_ints(shape):
        raise SafetensorsError(f"{path}: tensor {name!r} has an invalid shape {shape!r}")
    if not _non_negative_ints(offsets) or len(offsets) != 2 or offsets[0] > offsets[1]:
        raise SafetensorsError(f"{path}: tensor {name!r} has invalid data_offsets {offsets!r}")
    dtype = np.dtype(_DTYPES[code])
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes != offsets[1] - offsets[0]:
        raise SafetensorsError(
            f"{path}: tensor {name!r} of shape {shape} and dtype {code} needs {nbytes} bytes, "
            f"but its offsets span {offsets[1] - offsets[0]}"
        )
    return name, dtype, tuple(shape), offsets[0], offsets[1]


def _check_tiling(path, entries, data_bytes):
    pos = 0
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin != pos:
            what = "overlaps the previous tensor" if begin < pos else "leaves a gap before it"
            raise SafetensorsError(f"{path}: tensor {name!r} at offset {begin} {what}")
        pos = end
    if pos != data_bytes:
        raise SafetensorsError(
            f"{path}: tensors cover {pos} bytes but the data area holds {data_bytes} "
            "(truncated or trailing data)"
        )
