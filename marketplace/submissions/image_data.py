"""Read a submission's images (a zip of PNG/JPEG files, or an NPZ array ``images``) into arrays, with
errors that name the problem.

Never unpickles: NPZ files are opened with ``allow_pickle=False``. An image zip goes through the
package validator's zip checks (``specs.packaging.zipsafe``), every image's header is read and
checked (format, mode, size, pixel count) before any image is decoded, and an NPZ's array
headers are read before its arrays, so no upload decodes into more memory than the limits allow.
"""

from __future__ import annotations

import csv
import io
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from marketplace.submissions import conf
from marketplace.submissions.choices import DataFormat
from marketplace.submissions.data import checked_labels, field_error

IMAGES = DataFormat.IMAGES  # a zip of PNG/JPEG images (the name other modules import)


@dataclass(frozen=True)
class ImageData:
    """Decoded images (n, C, H, W) float32 in [0, 1], their names (zip paths, or NPZ row numbers)
    and their labels y (n,) when given."""

    images: np.ndarray
    names: list[str]
    y: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)


LABELS_FILE = "labels.csv"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_FORMATS = ("PNG", "JPEG")
GREY_MODES = frozenset({"1", "L", "LA"})
COLOUR_MODES = frozenset({"RGB", "RGBA", "P", "PA"})
MIN_IMAGE_SIDE = 4  # the image encoder's smallest input


def _ignored(name: str) -> bool:
    """Files a zip tool adds on its own (macOS resource forks, hidden files)."""
    return name.startswith("__MACOSX/") or PurePosixPath(name).name.startswith(".")


def _read_image_zip(raw: bytes, field: str, label_column: str, labelled: bool) -> ImageData:
    from specs.packaging.errors import InvalidPackageError
    from specs.packaging.zipsafe import read_zip

    try:
        files = read_zip(raw, conf.image_zip_limits())
    except InvalidPackageError as exc:
        reason = exc.code.rsplit(":", 1)[-1]
        raise field_error(
            field, exc.message.replace("the package", "the zip"), f"submission:user:{reason}"
        ) from None
    labels_raw, images = None, {}
    for name, content in files.items():
        if _ignored(name):
            continue
        if name == LABELS_FILE:
            labels_raw = content
        elif name.lower().endswith(IMAGE_SUFFIXES):
            images[name] = content
        else:
            raise field_error(
                field,
                f"{name!r} is not a PNG/JPEG image (the zip holds images and, for labels, {LABELS_FILE})",
                "submission:user:bad-format",
            )
    if not images:
        raise field_error(field, "the zip holds no PNG/JPEG images", "submission:user:empty-data")
    if len(images) > conf.max_images():
        raise field_error(
            field,
            f"the zip has {len(images)} images (limit {conf.max_images()})",
            "submission:user:too-many-files",
        )
    names = sorted(images)
    y = None
    if labelled:
        if labels_raw is None:
            raise field_error(
                field,
                f"the zip has no {LABELS_FILE} (columns 'file' and {label_column!r})",
                "submission:user:missing-labels",
            )
        y = _imagelabel_values(labels_raw, names, field, label_column)
    return ImageData(images=_decode_images(images, names, field), names=names, y=y)


def _decode_images(files: dict[str, bytes], names: list[str], field: str) -> np.ndarray:
    """(n, C, H, W) float32 in [0, 1]; C = 1 when every image is grey, else 3 (grey ones repeated)."""
    from PIL import Image, UnidentifiedImageError

    bad_file = (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    )
    opened = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for name in names:  # headers only: nothing is decoded before every image is known to fit
            try:
                img = Image.open(io.BytesIO(files[name]))
            except bad_file as exc:
                raise field_error(
                    field,
                    f"{name!r} is not a readable PNG/JPEG image ({exc})",
                    "submission:user:corrupt-image",
                ) from None
            if img.format not in IMAGE_FORMATS:
                raise field_error(
                    field, f"{name!r} is a {img.format} image: send PNG or JPEG", "submission:user:bad-format"
                )
            w, h = img.size
            if w * h > conf.max_image_pixels():
                raise field_error(
                    field,
                    f"{name!r} is {w}x{h} pixels (limit {conf.max_image_pixels()} per image)",
                    "submission:user:image-too-large",
                )
            if img.mode not in GREY_MODES | COLOUR_MODES:
                raise field_error(
                    field,
                    f"{name!r} has mode {img.mode!r}: send 8-bit grey (L) or colour (RGB) images",
                    "submission:user:wrong-image-mode",
                )
            opened.append((name, img))
        first_name, first = opened[0]
        w, h = first.size
        for name, img in opened:
            if img.size != first.size:
                raise field_error(
                    field,
                    f"{name!r} is {img.size[0]}x{img.size[1]} pixels, {first_name!r} {w}x{h}: "
                    "every image must have the same size",
                    "submission:user:wrong-image-size",
                )
        if min(w, h) < MIN_IMAGE_SIDE:
            raise field_error(
                field,
                f"images are {w}x{h} pixels; at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} are needed",
                "submission:user:wrong-image-size",
            )
        channels = 1 if all(img.mode in GREY_MODES for _, img in opened) else 3
        _check_values(len(opened), (channels, h, w), field)
        out = np.empty((len(opened), channels, h, w), dtype=np.float32)
        for i, (name, img) in enumerate(opened):
            try:
                pixels = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
            except bad_file as exc:  # truncated or corrupt data surface when decoding
                raise field_error(
                    field, f"{name!r} cannot be decoded ({exc})", "submission:user:corrupt-image"
                ) from None
            out[i] = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
    return out


def _check_values(n: int, shape: tuple[int, ...], field: str) -> None:
    total = n * int(np.prod(shape))
    if total > conf.max_image_values():
        raise field_error(
            field,
            f"{n} images of shape {list(shape)} are {total} values (limit {conf.max_image_values()})",
            "submission:user:too-large",
        )


def _imagelabel_values(raw: bytes, names: list[str], field: str, label_column: str) -> np.ndarray:
    """Labels (n,) in the order of ``names`` from ``labels.csv`` (columns ``file`` and the label column)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise field_error(field, f"{LABELS_FILE} is not UTF-8 text", "submission:user:bad-format") from None
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, None) or []]
    if "file" not in header or label_column not in header:
        raise field_error(
            field,
            f"{LABELS_FILE} needs the columns 'file' and {label_column!r} (has {header})",
            "submission:user:missing-labels",
        )
    at_file, at_label = header.index("file"), header.index(label_column)
    mapping: dict[str, str] = {}
    for number, record in enumerate(reader, start=2):
        if not any(v.strip() for v in record):
            continue
        if len(record) != len(header):
            raise field_error(
                field,
                f"{LABELS_FILE} row {number} has {len(record)} fields, the header {len(header)}",
                "submission:user:bad-format",
            )
        name, label = record[at_file].strip(), record[at_label].strip()
        if name in mapping:
            raise field_error(
                field,
                f"{LABELS_FILE} row {number} labels {name!r} a second time",
                "submission:user:labels-mismatch",
            )
        if not label:
            raise field_error(
                field,
                f"{LABELS_FILE} row {number}: {name!r} has an empty label",
                "submission:user:missing-labels",
            )
        mapping[name] = label
    unknown = sorted(set(mapping) - set(names))
    if unknown:
        raise field_error(
            field,
            f"{LABELS_FILE} names {len(unknown)} files that are not images in the zip: {unknown[:5]}",
            "submission:user:labels-mismatch",
        )
    unlabelled = [n for n in names if n not in mapping]
    if unlabelled:
        raise field_error(
            field,
            f"{len(unlabelled)} images have no row in {LABELS_FILE}: {unlabelled[:5]}",
            "submission:user:labels-mismatch",
        )
    return checked_labels(np.asarray([mapping[n] for n in names]), field)


def _npy_header(archive: zipfile.ZipFile, name: str) -> tuple[tuple[int, ...], np.dtype]:
    with archive.open(name) as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"{name}: .npy version {version} is not supported")
    return tuple(shape), dtype


def _read_image_npz(raw: bytes, field: str, labelled: bool) -> ImageData:
    """Array ``images`` (n, C, H, W) or (n, H, W), uint8 0..255 or float in [0, 1]; ``y`` (n,) for labels."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            arrays = {
                PurePosixPath(n).name[: -len(".npy")]: n for n in archive.namelist() if n.endswith(".npy")
            }
            key = "images" if "images" in arrays else "X" if "X" in arrays else None
            if key is None:
                raise field_error(
                    field,
                    f"an image NPZ must hold an array 'images' (n, C, H, W) (found {sorted(arrays)})",
                    "submission:user:bad-format",
                )
            shape, dtype = _npy_header(archive, arrays[key])
            y_shape = _npy_header(archive, arrays["y"])[0] if labelled and "y" in arrays else None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise field_error(
            field, f"is not a readable NPZ file without pickled objects ({exc})", "submission:user:bad-format"
        ) from None
    if dtype.kind not in "biuf":
        raise field_error(
            field, f"array {key!r} must be numeric, got dtype {dtype}", "submission:user:not-numeric"
        )
    if len(shape) == 3:
        shape = (shape[0], 1, *shape[1:])  # (n, H, W): grey images
    if len(shape) != 4 or shape[1] not in (1, 3):
        raise field_error(
            field,
            f"array {key!r} must be (n, C, H, W) with C 1 or 3, or (n, H, W); got {list(shape)}",
            "submission:user:bad-format",
        )
    n = shape[0]
    if n == 0:
        raise field_error(field, "holds no images", "submission:user:empty-data")
    if n > conf.max_images():
        raise field_error(
            field, f"holds {n} images (limit {conf.max_images()})", "submission:user:too-many-files"
        )
    if min(shape[2:]) < MIN_IMAGE_SIDE:
        raise field_error(
            field,
            f"images are {shape[3]}x{shape[2]} pixels; at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} are needed",
            "submission:user:wrong-image-size",
        )
    _check_values(n, shape[1:], field)
    if labelled and y_shape is None:
        raise field_error(
            field, "an image NPZ must hold the labels as an array 'y'", "submission:user:missing-labels"
        )
    if y_shape is not None and int(np.prod(y_shape)) != n:
        raise field_error(
            field, f"has {int(np.prod(y_shape))} labels for {n} images", "submission:user:labels-mismatch"
        )
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        images = np.asarray(npz[key]).reshape(shape)
        y = checked_labels(npz["y"], field) if labelled else None
    values = images.astype(np.float32)
    if not np.isfinite(values).all():
        raise field_error(
            field,
            f"array {key!r} holds {int((~np.isfinite(values)).sum())} NaN or infinite values",
            "submission:user:nan",
        )
    if images.dtype.kind in "biu" or values.max(initial=0.0) > 1.0:
        values = values / 255.0  # 0..255 images, as the publish path reads samples
    if values.min(initial=0.0) < 0.0 or values.max(initial=0.0) > 1.0:
        raise field_error(
            field, f"array {key!r} must hold values in [0, 1] or 0..255", "submission:user:bad-format"
        )
    return ImageData(images=np.ascontiguousarray(values), names=[str(i) for i in range(n)], y=y)


def read_images(
    raw: bytes, fmt: str, *, field: str, label_column: str = "label", labelled: bool = False
) -> ImageData:
    """Parse and validate one image file: a zip of PNG/JPEG files (``images``) or an NPZ (``npz``).

    A labelled zip holds ``labels.csv`` with the columns ``file`` (the image's path in the
    zip) and ``label_column``; a labelled NPZ holds ``y`` (n,). Images are ordered by name.

    Raises
    ------
    ValidationFailed
        Zip safety (``too-large``, ``zip-bomb``, ``path-traversal``, ``symlink``, ``too-many-files``,
        ...), a corrupt image, a format other than PNG/JPEG, a mode other than grey/RGB(A)/palette,
        images of different sizes, too many pixels or values, missing or mismatched labels;
        the message names ``field`` and the file.
    """
    if fmt == IMAGES:
        return _read_image_zip(raw, field, label_column, labelled)
    if fmt == DataFormat.NPZ:
        return _read_image_npz(raw, field, labelled)
    raise field_error(
        field,
        f"format {fmt!r} is not an image format (images: a zip of PNG/JPEG files; npz: an array 'images')",
        "submission:user:bad-format",
    )
