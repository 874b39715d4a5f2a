"""Drawing tools for the phantom: a voxel grid in millimetres and shapes painted onto it.

Coordinates are patient millimetres in RAS+ (x towards the patient's right, y anterior, z superior),
origin at the centre of the field of view. Shapes are painted as tissue ids into one uint8 array;
a later shape wins, which is how organs overlap (vessels are painted last, like real anatomy on top).
"""
from __future__ import annotations

import numpy as np


class Canvas:
    """A tissue-id volume plus its voxel centres in mm, and shape painters working on sub-boxes."""

    def __init__(self, shape: tuple[int, int, int], spacing: tuple[float, float, float]):
        self.shape = shape
        self.spacing = np.asarray(spacing, dtype=np.float64)
        # voxel centres in mm along each axis, centred on the field of view
        self.axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
        self.tissue = np.zeros(shape, dtype=np.uint8)  # (X, Y, Z) tissue ids; 0 = air

    def box(self, lo, hi) -> tuple[tuple[slice, ...], list[np.ndarray]] | None:
        """Slices and broadcastable mm coordinates of the voxels inside the mm box [lo, hi]."""
        slices, coords = [], []
        for d, (a, b) in enumerate(zip(lo, hi)):
            ax = self.axes[d]
            i0 = int(np.searchsorted(ax, a, "left"))
            i1 = int(np.searchsorted(ax, b, "right"))
            if i1 <= i0:
                return None
            slices.append(slice(i0, i1))
            shape = [1, 1, 1]
            shape[d] = i1 - i0
            coords.append(ax[i0:i1].reshape(shape))
        return tuple(slices), coords

    def paint(self, sl: tuple[slice, ...], mask: np.ndarray, tissue: int, where: np.ndarray | None = None) -> None:
        """Set `tissue` where `mask` (a sub-box mask) holds and, optionally, `where` allows it."""
        if where is not None:
            mask = mask & where[sl]
        self.tissue[sl][mask] = tissue

    def ellipsoid(self, centre, radii, tissue: int, rot_z: float = 0.0, wobble: float = 0.0,
                  rng: np.random.Generator | None = None, where: np.ndarray | None = None,
                  shell: float = 0.0, shell_tissue: int | None = None) -> None:
        """Paint a (possibly wobbly, z-rotated) ellipsoid; `shell` mm of `shell_tissue` around a core."""
        centre, radii = np.asarray(centre, float), np.asarray(radii, float)
        reach = radii.max() * (1 + wobble)
        found = self.box(centre - reach, centre + reach)
        if found is None:
            return
        sl, (x, y, z) = found
        dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
        c, s = np.cos(rot_z), np.sin(rot_z)
        u, v = c * dx + s * dy, -s * dx + c * dy  # rotate into the ellipsoid's own axes
        r = np.sqrt((u / radii[0]) ** 2 + (v / radii[1]) ** 2 + (dz / radii[2]) ** 2)
        limit = 1.0
        if wobble and rng is not None:
            # a few smooth bumps on the surface, as a function of direction
            norm = np.maximum(np.sqrt(u ** 2 + v ** 2 + dz ** 2), 1e-6)
            for _ in range(4):
                k = rng.normal(size=3) * 2.5
                limit = limit + wobble / 2 * np.sin((k[0] * u + k[1] * v + k[2] * dz) / norm + rng.uniform(0, 6.3))
        self.paint(sl, r <= limit, shell_tissue if shell else tissue, where)
        if shell:
            scale = 1 - shell / radii.min()
            self.paint(sl, r <= limit * scale, tissue, where)

    def cylinder(self, cx: float, cy: float, rx: float, ry: float, tissue: int, rot: float = 0.0,
                 z: np.ndarray | None = None) -> None:
        """Paint an elliptic cylinder along z (all slices, or those where the 1D mask `z` holds)."""
        x, y = self.axes[0][:, None] - cx, self.axes[1][None, :] - cy
        c, s = np.cos(rot), np.sin(rot)
        inside = ((c * x + s * y) / rx) ** 2 + ((-s * x + c * y) / ry) ** 2 <= 1  # (X, Y)
        if z is None:
            self.tissue[inside] = tissue
        else:
            self.tissue[inside[:, :, None] & z[None, None, :]] = tissue

    def tube_depth(self, points: np.ndarray, radii: np.ndarray) -> tuple[tuple[slice, ...], np.ndarray] | None:
        """Depth (mm inside the surface; negative outside) of a tube of varying radius along `points`."""
        lo = (points - radii[:, None]).min(0) - 1
        hi = (points + radii[:, None]).max(0) + 1
        found = self.box(lo, hi)
        if found is None:
            return None
        sl, _ = found
        depth = np.full([s.stop - s.start for s in sl], -np.inf, dtype=np.float32)
        for p, r in zip(points, radii):  # a tube is a chain of overlapping spheres
            inner = self.box(p - r, p + r)
            if inner is None:
                continue
            isl, (x, y, z) = inner
            d = r - np.sqrt((x - p[0]) ** 2 + (y - p[1]) ** 2 + (z - p[2]) ** 2)
            local = tuple(slice(a.start - b.start, a.stop - b.start) for a, b in zip(isl, sl))
            np.maximum(depth[local], d, out=depth[local])
        return sl, depth

    def tube(self, points, radii, tissue: int, where: np.ndarray | None = None,
             wall: float = 0.0, lumen_tissue: int | None = None) -> np.ndarray | None:
        """Paint a tube (wall of `tissue`, optional lumen); return its depth array on the full grid."""
        found = self.tube_depth(np.asarray(points, float), np.asarray(radii, float))
        if found is None:
            return None
        sl, depth = found
        self.paint(sl, depth > 0, tissue, where)
        if wall and lumen_tissue is not None:
            self.paint(sl, depth > wall, lumen_tissue, where)
        full = np.full(self.shape, -np.inf, dtype=np.float32)
        full[sl] = depth
        return full


def curve(control: np.ndarray, n: int) -> np.ndarray:
    """`n` points on a smooth (Catmull-Rom) curve through the control points, shape (n, 3)."""
    p = np.concatenate([control[:1], control, control[-1:]])
    segments = len(control) - 1
    t = np.linspace(0, segments, n, endpoint=True)
    i = np.minimum(t.astype(int), segments - 1)
    u = (t - i)[:, None]
    p0, p1, p2, p3 = p[i], p[i + 1], p[i + 2], p[i + 3]
    return 0.5 * (2 * p1 + (-p0 + p2) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u ** 2
                  + (-p0 + 3 * p1 - 3 * p2 + p3) * u ** 3)


def resample_curve(points: np.ndarray, step: float) -> np.ndarray:
    """Points along a polyline spaced about `step` mm apart (so tubes have no gaps)."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0], np.cumsum(seg)])
    t = np.linspace(0, s[-1], max(2, int(s[-1] / step) + 1))
    return np.stack([np.interp(t, s, points[:, d]) for d in range(3)], axis=1)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int, int], cells: float) -> np.ndarray:
    """Zero-mean, unit-sd random field varying over about `cells` voxels (upsampled coarse noise)."""
    small = [max(2, int(np.ceil(n / cells)) + 1) for n in shape]
    field = rng.standard_normal(small).astype(np.float32)
    wx, wy, wz = (_linear_weights(n, m) for n, m in zip(shape, small))
    field = wy @ np.tensordot(wx, field, axes=(1, 0))  # (X, Y, z'): separable linear upsampling
    field = field @ wz.T  # (X, Y, Z)
    return (field - field.mean()) / (field.std() + 1e-6)


def _linear_weights(n: int, m: int) -> np.ndarray:
    """(n, m) matrix that linearly interpolates m coarse samples onto n fine ones."""
    t = np.linspace(0, m - 1, n)
    i = np.minimum(t.astype(int), m - 2)
    w = np.zeros((n, m), np.float32)
    w[np.arange(n), i] = 1 - (t - i)
    w[np.arange(n), i + 1] = t - i
    return w
