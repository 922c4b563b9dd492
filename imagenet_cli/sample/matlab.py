"""Just enough of MATLAB's v5 file format to write the devkit's ``meta.mat``: a struct array of
strings and numbers, as ``scipy.io.loadmat`` (and so torchvision's ImageNet loader) reads it.

The package never reads MATLAB files; it ships its own class table. This exists so that the
built-in sample's devkit has the real one's ``data/meta.mat`` with the real struct fields.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

MI_INT8, MI_UINT16, MI_INT32, MI_UINT32, MI_DOUBLE, MI_MATRIX = 1, 4, 5, 6, 9, 14
MX_STRUCT, MX_CHAR, MX_DOUBLE, MX_UINT16 = 2, 4, 6, 11
FIELD_NAME_LENGTH = 32  # bytes per field name, NUL-padded; scipy accepts up to 64

Value = str | int | tuple[()]  # a string, a count or ID (uint16, as the devkit stores them), or () for empty


def struct_array_file(name: str, fields: Sequence[str], records: Sequence[dict[str, Value]]) -> bytes:
    """A .mat file holding one variable: a 1×N struct array with these fields, in this order."""
    header = b"MATLAB 5.0 MAT-file, written by imagenet-cli".ljust(116, b" ")
    header += b"\x00" * 8 + struct.pack("<H", 0x0100) + b"IM"
    return header + _matrix(name, _struct_body(fields, records), MX_STRUCT, (1, len(records)))


def _element(data_type: int, payload: bytes) -> bytes:
    """A tagged data element, padded to a multiple of 8 bytes."""
    padding = -len(payload) % 8
    return struct.pack("<II", data_type, len(payload)) + payload + b"\x00" * padding


def _matrix(name: str, body: bytes, array_class: int, dimensions: tuple[int, ...]) -> bytes:
    flags = _element(MI_UINT32, struct.pack("<II", array_class, 0))
    dims = _element(MI_INT32, struct.pack(f"<{len(dimensions)}i", *dimensions))
    return _element(MI_MATRIX, flags + dims + _element(MI_INT8, name.encode("ascii")) + body)


def _struct_body(fields: Sequence[str], records: Sequence[dict[str, Value]]) -> bytes:
    names = b"".join(field.encode("ascii").ljust(FIELD_NAME_LENGTH, b"\x00") for field in fields)
    body = _element(MI_INT32, struct.pack("<i", FIELD_NAME_LENGTH)) + _element(MI_INT8, names)
    # A 1×N struct array stores its elements in column-major order: element by element, each
    # element's fields in field order.
    for record in records:
        body += b"".join(_value(record[field]) for field in fields)
    return body


def _value(value: Value) -> bytes:
    if isinstance(value, str):
        units = value.encode("utf-16-le")
        return _matrix("", _element(MI_UINT16, units), MX_CHAR, (1, len(units) // 2))
    if value == ():
        return _matrix("", _element(MI_DOUBLE, b""), MX_DOUBLE, (1, 0))
    return _matrix("", _element(MI_UINT16, struct.pack("<H", value)), MX_UINT16, (1, 1))
