"""Turn what a user typed (JSON, random, text) into numpy arrays of the
datatype and shape a model declares, with an error naming the tensor."""

import json
import math

import numpy as np
import tritonclient.utils as triton_utils
from django.conf import settings

from deployments.errors import DomainError

# What a BYTES element costs the dashboard: a Python bytes object (about 40
# bytes of overhead) and its text. Counted so that 4 Mi elements of BYTES,
# cheap to ask for, are not 4 Mi objects built before anything is sent.
BYTES_ELEMENT_COST = 64


def numpy_dtype(datatype: str):
    dtype = triton_utils.triton_to_np_dtype(datatype)
    if dtype is None:
        raise DomainError(f"datatype {datatype} is not one the console can send")
    return dtype


def check_shape(name: str, shape, datatype: str | None = None) -> list[int]:
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
    ):
        raise DomainError(f"input {name}: shape is a list of whole numbers, e.g. [1, 4].", path=f"inputs.{name}.shape")
    if any(d < 0 for d in shape):
        raise DomainError(
            f"input {name}: shape {shape} has a negative size; give the actual sizes.", path=f"inputs.{name}.shape"
        )
    # math.prod on Python ints: np.prod wraps at 2**63, and [2**32, 2**32] came out as 0.
    elements = math.prod(shape)
    if elements > settings.CONSOLE_MAX_ELEMENTS:
        raise DomainError(
            f"input {name}: shape {shape} is {elements:,} elements; the console's limit is"
            f" {settings.CONSOLE_MAX_ELEMENTS:,} per tensor (CONSOLE_MAX_ELEMENTS).",
            path=f"inputs.{name}.shape",
        )
    if datatype is not None:
        size = tensor_bytes(datatype, shape)
        if size > settings.CONSOLE_MAX_TENSOR_BYTES:
            raise DomainError(
                f"input {name}: {elements:,} {datatype} elements take {size:,} bytes; the console's limit is"
                f" {settings.CONSOLE_MAX_TENSOR_BYTES:,} bytes per tensor (CONSOLE_MAX_TENSOR_BYTES).",
                path=f"inputs.{name}.shape",
            )
    return shape


def tensor_bytes(datatype: str, shape: list[int]) -> int:
    """The memory a tensor of this shape takes in the dashboard."""
    if datatype == "BYTES":
        return math.prod(shape) * BYTES_ELEMENT_COST
    return math.prod(shape) * np.dtype(numpy_dtype(datatype)).itemsize


def check_request_size(inputs: dict[str, tuple[str, list[int]]]) -> None:
    """Each tensor within its caps, and all of them within the request's,
    before one value is generated or decoded."""
    total = 0
    for name, (datatype, shape) in inputs.items():
        total += tensor_bytes(datatype, check_shape(name, shape, datatype))
    if total > settings.CONSOLE_MAX_REQUEST_BYTES:
        raise DomainError(
            f"The inputs take {total:,} bytes together; the console's limit is"
            f" {settings.CONSOLE_MAX_REQUEST_BYTES:,} bytes per request (CONSOLE_MAX_REQUEST_BYTES).",
            path="inputs",
        )


def from_json(name: str, datatype: str, shape, data) -> np.ndarray:
    """Nested lists (or a flat list) of values -> an array of exactly `shape`."""
    shape = check_shape(name, shape, datatype)
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise DomainError(f"input {name}: not valid JSON ({exc.msg}).", path=f"inputs.{name}.data") from None
        except RecursionError:
            raise DomainError(f"input {name}: the JSON nests too deeply.", path=f"inputs.{name}.data") from None
    try:
        if datatype == "BYTES":
            array = np.array(data, dtype=np.object_)
            array = np.vectorize(lambda v: v if isinstance(v, bytes) else str(v).encode(), otypes=[np.object_])(array)
        else:
            array = np.array(data, dtype=numpy_dtype(datatype))
    except (ValueError, TypeError, OverflowError) as exc:
        raise DomainError(f"input {name}: values do not fit {datatype} ({exc}).", path=f"inputs.{name}.data") from None
    if array.size != int(np.prod(shape)):
        raise DomainError(
            f"input {name}: {array.size} values for shape {shape}, which needs {int(np.prod(shape))}.",
            path=f"inputs.{name}.data",
        )
    return array.reshape(shape)


def random(name: str, datatype: str, shape, *, seed: int | None = None) -> np.ndarray:
    shape = check_shape(name, shape, datatype)
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise DomainError(f"input {name}: seed is a whole number from 0.", path=f"inputs.{name}.seed")
    generator = np.random.default_rng(seed)
    if datatype == "BYTES":
        return np.array([f"sample-{i}".encode() for i in range(int(np.prod(shape)))], dtype=np.object_).reshape(shape)
    if datatype == "BOOL":
        return generator.integers(0, 2, size=shape).astype(bool)
    dtype = np.dtype(numpy_dtype(datatype))
    if dtype.kind == "f":
        return generator.standard_normal(size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return generator.integers(max(info.min, -100), min(info.max, 100), size=shape, endpoint=True).astype(dtype)


def from_text(name: str, shape, text: str) -> np.ndarray:
    """BYTES input from text: one element per line."""
    lines = text.splitlines() or [""]
    shape = check_shape(name, shape, "BYTES") if shape else check_shape(name, [len(lines)], "BYTES")
    return from_json(name, "BYTES", shape, lines)


def from_npy(name: str, datatype: str, upload) -> np.ndarray:
    """An uploaded .npy file (never a pickle: allow_pickle stays off)."""
    if upload is None:
        raise DomainError(f"input {name}: choose a .npy file.", path=f"inputs.{name}.file")
    if upload.size > settings.CONSOLE_MAX_TENSOR_BYTES:
        raise DomainError(
            f"input {name}: the file is {upload.size:,} bytes; the console's limit is"
            f" {settings.CONSOLE_MAX_TENSOR_BYTES:,} bytes per tensor.",
            path=f"inputs.{name}.file",
        )
    try:
        # The header's shape first: np.load allocates what the header claims
        # before it reads a byte of data.
        version = np.lib.format.read_magic(upload)
        if version not in _NPY_HEADER_READERS:
            raise ValueError(f"format version {version[0]}.{version[1]} is not one the console reads")
        shape, _, _ = _NPY_HEADER_READERS[version](upload)
        check_shape(name, list(shape) or [1])
        upload.seek(0)
        array = np.load(upload, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DomainError(f"input {name}: not a .npy array file ({exc}).", path=f"inputs.{name}.file") from None
    if datatype != "BYTES":
        expected = np.dtype(numpy_dtype(datatype))
        if array.dtype != expected:
            raise DomainError(
                f"input {name}: the file holds {array.dtype}, the model wants {datatype} ({expected}).",
                path=f"inputs.{name}.file",
            )
    return array


_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
SCALINGS = {"none": None, "0-1": (0.0, 255.0), "-1-1": (127.5, 127.5)}


def from_image(
    name: str,
    datatype: str,
    shape,
    upload,
    *,
    layout: str = "NCHW",
    scaling: str = "0-1",
    mean: str = "",
    std: str = "",
) -> np.ndarray:
    """An uploaded image resized to the tensor's height and width, in NCHW or
    NHWC, scaled, then normalised by per-channel mean and std."""
    from PIL import Image, UnidentifiedImageError

    shape = check_shape(name, shape, datatype)
    if upload is None:
        raise DomainError(f"input {name}: choose an image file.", path=f"inputs.{name}.file")
    if layout not in ("NCHW", "NHWC") or len(shape) not in (3, 4):
        raise DomainError(
            f"input {name}: images fill a [C, H, W] or [H, W, C] tensor (batch optional).", path=f"inputs.{name}.shape"
        )
    dims = shape[-3:]
    channels, height, width = (dims[0], dims[1], dims[2]) if layout == "NCHW" else (dims[2], dims[0], dims[1])
    if channels not in (1, 3):
        raise DomainError(
            f"input {name}: {channels} channels; images give 1 (grey) or 3 (RGB).", path=f"inputs.{name}.shape"
        )
    try:
        image = Image.open(upload)
        image = image.convert("RGB" if channels == 3 else "L").resize((width, height))
    except (UnidentifiedImageError, OSError) as exc:
        raise DomainError(
            f"input {name}: not an image this console can read ({exc}).", path=f"inputs.{name}.file"
        ) from None
    pixels = np.asarray(image, dtype=np.float32).reshape(height, width, channels)
    if scaling not in SCALINGS:
        raise DomainError(f"input {name}: scaling is one of {', '.join(SCALINGS)}.", path=f"inputs.{name}.scaling")
    if SCALINGS[scaling]:
        offset, divisor = SCALINGS[scaling]
        pixels = (pixels - (offset if scaling == "-1-1" else 0.0)) / divisor
    for label, raw, apply in (("mean", mean, np.subtract), ("std", std, np.divide)):
        if raw.strip():
            try:
                values = np.array([float(v) for v in raw.split(",")], dtype=np.float32)
            except ValueError:
                raise DomainError(
                    f"input {name}: {label} is comma-separated numbers.", path=f"inputs.{name}.{label}"
                ) from None
            if values.size not in (1, channels):
                raise DomainError(f"input {name}: {label} needs 1 or {channels} values.", path=f"inputs.{name}.{label}")
            pixels = apply(pixels, values)
    if layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    array = pixels.reshape(shape)
    return array.astype(numpy_dtype(datatype)) if datatype != "BYTES" else array
