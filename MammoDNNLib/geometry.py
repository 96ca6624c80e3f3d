"""Pixel geometry shared by every stage: the original-to-prepared transform and lesion masks/outlines.

Coordinate convention (the same as torchvision's boxes): a point is ``(x, y) = (column, row)`` in continuous pixel
units, and pixel ``[row, col]`` covers ``[col, col + 1) x [row, row + 1)``; its centre is ``(col + 0.5, row + 0.5)``.
A box ``[x0, y0, x1, y1]`` is given by its edges, so a box holding exactly pixel ``[r, c]`` is ``[c, r, c+1, r+1]``.
Every box, outline and point stored anywhere in the project is in the *original* pixel grid of its view;
:class:`Transform` is the only place that knows about crop, scale and flip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Transform:
    """Maps the original image grid to the prepared (cropped, resampled, flipped) grid and back, exactly.

    The prepared image is the original crop ``[x0, x1) x [y0, y1)`` resampled to ``prepared_size`` (edges map to
    edges) and then, if ``flip_x``, mirrored left-right. The scale is derived from the two sizes so the map is an
    exact affine in both directions.
    """

    original_size: tuple[int, int]  # (width, height) of the original image
    crop: tuple[int, int, int, int]  # (x0, y0, x1, y1) in original pixels, half-open
    prepared_size: tuple[int, int]  # (width, height) of the prepared image
    flip_x: bool = False

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = self.crop
        width, height = self.original_size
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise ValueError(f"crop {self.crop} is not inside an image of size {self.original_size}")
        if self.prepared_size[0] < 1 or self.prepared_size[1] < 1:
            raise ValueError(f"prepared size {self.prepared_size} must be positive")

    @classmethod
    def identity(cls, width: int, height: int) -> "Transform":
        return cls((width, height), (0, 0, width, height), (width, height), False)

    @property
    def scale(self) -> tuple[float, float]:
        """(sx, sy): prepared pixels per original pixel."""
        x0, y0, x1, y1 = self.crop
        return self.prepared_size[0] / (x1 - x0), self.prepared_size[1] / (y1 - y0)

    def matrix(self) -> np.ndarray:
        """3x3 homogeneous matrix taking original (x, y, 1) to prepared (x, y, 1)."""
        sx, sy = self.scale
        x0, y0 = self.crop[:2]
        m = np.array([[sx, 0.0, -x0 * sx], [0.0, sy, -y0 * sy], [0.0, 0.0, 1.0]])
        if self.flip_x:
            m = np.array([[-1.0, 0.0, self.prepared_size[0]], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ m
        return m

    def to_prepared(self, points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """Map ``(N, 2)`` original (x, y) points to the prepared grid."""
        return _apply(self.matrix(), points)

    def to_original(self, points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """Map ``(N, 2)`` prepared (x, y) points back to the original grid."""
        return _apply(np.linalg.inv(self.matrix()), points)

    def boxes_to_prepared(self, boxes: np.ndarray | Sequence[Box]) -> np.ndarray:
        return _map_boxes(self.to_prepared, boxes)

    def boxes_to_original(self, boxes: np.ndarray | Sequence[Box]) -> np.ndarray:
        return _map_boxes(self.to_original, boxes)

    def image_to_prepared(self, image: np.ndarray, order: int = 1) -> np.ndarray:
        """Resample an original-grid array (image or mask) onto the prepared grid (``order=0`` for labels)."""
        from skimage.transform import resize

        x0, y0, x1, y1 = self.crop
        width, height = self.prepared_size
        crop = image[y0:y1, x0:x1]
        if crop.shape[:2] == (height, width):
            out = crop.copy()
        else:
            out = resize(
                crop, (height, width), order=order, mode="edge", anti_aliasing=order > 0 and width < x1 - x0,
                preserve_range=True,
            ).astype(image.dtype, copy=False)
        return out[:, ::-1].copy() if self.flip_x else out

    def mask_to_original(self, mask: np.ndarray) -> np.ndarray:
        """Resample a prepared-grid label mask onto the full original grid (nearest neighbour, zero outside)."""
        from skimage.transform import resize

        if mask.shape[:2] != (self.prepared_size[1], self.prepared_size[0]):
            raise ValueError(f"mask shape {mask.shape} does not match prepared size {self.prepared_size}")
        x0, y0, x1, y1 = self.crop
        unflipped = mask[:, ::-1] if self.flip_x else mask
        out = np.zeros((self.original_size[1], self.original_size[0]), dtype=mask.dtype)
        out[y0:y1, x0:x1] = resize(
            unflipped, (y1 - y0, x1 - x0), order=0, mode="edge", anti_aliasing=False, preserve_range=True
        ).astype(mask.dtype, copy=False)
        return out

    def to_dict(self) -> dict:
        return {
            "original_size": list(self.original_size),
            "crop": list(self.crop),
            "prepared_size": list(self.prepared_size),
            "flip_x": self.flip_x,
            "scale": list(self.scale),
            "matrix_original_to_prepared": self.matrix().tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Transform":
        return cls(
            tuple(int(v) for v in data["original_size"]),
            tuple(int(v) for v in data["crop"]),
            tuple(int(v) for v in data["prepared_size"]),
            bool(data["flip_x"]),
        )


def _apply(matrix: np.ndarray, points) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ matrix[:2, :2].T + matrix[:2, 2]


def _map_boxes(fn, boxes) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    p0 = fn(b[:, 0:2])
    p1 = fn(b[:, 2:4])
    return np.concatenate([np.minimum(p0, p1), np.maximum(p0, p1)], axis=1)


@dataclass
class LesionMask:
    """A binary lesion mask stored as its bounding crop: ``array[r, c]`` is pixel ``[row0 + r, col0 + c]``."""

    array: np.ndarray  # bool, (rows, cols)
    origin: tuple[int, int]  # (col0, row0) of array[0, 0] in the full grid

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array, dtype=bool)
        if self.array.ndim != 2:
            raise ValueError("a lesion mask is two-dimensional")

    @classmethod
    def from_full(cls, mask: np.ndarray) -> "LesionMask":
        """Crop a full-grid mask to its bounding box (an empty mask keeps a 0x0 array at the origin)."""
        mask = np.asarray(mask, dtype=bool)
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            return cls(np.zeros((0, 0), bool), (0, 0))
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        return cls(mask[r0:r1, c0:c1].copy(), (int(c0), int(r0)))

    @classmethod
    def from_polygon(cls, polygon: np.ndarray | Sequence[Sequence[float]], shape: tuple[int, int]) -> "LesionMask":
        """Rasterize an (x, y) polygon: a pixel is inside when its centre is (clipped to ``shape`` = (rows, cols))."""
        from skimage.draw import polygon2mask

        poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        if len(poly) < 3:
            return cls(np.zeros((0, 0), bool), (0, 0))
        rows, cols = shape
        c0 = max(int(np.floor(poly[:, 0].min())), 0)
        c1 = min(int(np.ceil(poly[:, 0].max())), cols)
        r0 = max(int(np.floor(poly[:, 1].min())), 0)
        r1 = min(int(np.ceil(poly[:, 1].max())), rows)
        if c1 <= c0 or r1 <= r0:
            return cls(np.zeros((0, 0), bool), (0, 0))
        # polygon2mask tests pixel centres at integer (row, col) indices; ours sit at +0.5 in edge coordinates.
        local = np.column_stack([poly[:, 1] - r0 - 0.5, poly[:, 0] - c0 - 0.5])
        inside = polygon2mask((r1 - r0, c1 - c0), local)
        return cls.from_full_crop(inside, (c0, r0))

    @classmethod
    def from_full_crop(cls, array: np.ndarray, origin: tuple[int, int]) -> "LesionMask":
        """Tighten a crop at ``origin`` to its own bounding box."""
        tight = cls.from_full(array)
        if tight.array.size == 0:
            return tight
        return cls(tight.array, (origin[0] + tight.origin[0], origin[1] + tight.origin[1]))

    @property
    def empty(self) -> bool:
        return not self.array.any()

    @property
    def box(self) -> Box:
        """Edges of the mask's bounding box in the full grid."""
        c0, r0 = self.origin
        rows, cols = self.array.shape
        return (float(c0), float(r0), float(c0 + cols), float(r0 + rows))

    @property
    def area(self) -> int:
        return int(self.array.sum())

    def full(self, shape: tuple[int, int]) -> np.ndarray:
        """The mask on a full grid of ``shape`` = (rows, cols) (clipped at its borders)."""
        out = np.zeros(shape, dtype=bool)
        c0, r0 = self.origin
        rows, cols = self.array.shape
        rr0, cc0 = max(r0, 0), max(c0, 0)
        rr1, cc1 = min(r0 + rows, shape[0]), min(c0 + cols, shape[1])
        if rr1 > rr0 and cc1 > cc0:
            out[rr0:rr1, cc0:cc1] = self.array[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0]
        return out

    def to_polygon(self) -> np.ndarray:
        """Outline of the largest connected part as an (N, 2) array of (x, y) points, closed implicitly.

        The outline runs through the midpoints between boundary pixel centres (marching squares at level 0.5), so
        rasterizing it again with :meth:`from_polygon` gives back the same pixels for a solid, 4-connected mask.
        """
        from skimage.measure import find_contours

        if self.empty:
            return np.zeros((0, 2))
        padded = np.pad(self.array, 1).astype(np.float32)
        contours = find_contours(padded, 0.5)
        contour = max(contours, key=_polygon_area)
        # find_contours returns (row, col) of the padded array in index units (pixel centres at integers).
        xy = np.column_stack([contour[:, 1], contour[:, 0]]) - 1.0 + 0.5
        xy += np.asarray(self.origin, dtype=np.float64)
        if len(xy) > 1 and np.allclose(xy[0], xy[-1]):
            xy = xy[:-1]
        return xy


def _polygon_area(rc: np.ndarray) -> float:
    y, x = rc[:, 0], rc[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
