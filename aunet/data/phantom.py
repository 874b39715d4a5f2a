"""Procedural 3D abdominal CT phantoms in Hounsfield units, with CT-150 labels.

Learners have no CT data, so aunet draws its own: a body outline (skin fat, muscle wall), spine and
ribs, liver, gallbladder, spleen, two kidneys, aorta, IVC and portal/splenic veins, stomach, colon and
small bowel with air, duodenum, and a small, elongated, curved pancreas whose intensity is close to
its neighbours (duodenum, bowel, liver), so that finding it needs context rather than a threshold.

Geometry (default domain "scanner_a"): a 400 x 320 x 256 mm field of view (the abdomen itself is
~32-37 cm wide and ~23-27 cm deep, as in adults) sampled as 160 x 128 x 64 voxels of 2.5 x 2.5 x 4.0 mm.
`size` changes the voxel count over the same field of view, so the anatomy keeps its physical size.
Domain "scanner_b" imitates another scanner: late arterial contrast, more noise, another spacing
(3.125 x 3.2 x 2.56 mm) and LPS storage order (as in DICOM-derived NIfTI files); it serves the
paper's transfer experiment (train on one dataset, fine-tune on another).

Labels (CT-150): 0 background, 1 spleen, 2 pancreas, 3 kidney. Every case is a pure function of
its seed: `make_phantom(np.random.default_rng([seed, case_index]))`.

Harder phantoms (`PhantomOptions`, for notebook 08's study of when attention helps; the defaults draw the
default phantom, byte for byte):

    distractors      pancreas-like decoys elsewhere in the abdomen: curved tubes of the pancreas's size,
                     drawn with the pancreas's intensity and texture (its lobulated, fatty pockets) but
                     labelled background, so that local appearance no longer tells the pancreas apart and
                     only its place (beside the duodenum, over the splenic vein, towards the spleen) does.
                     They are drawn from a generator of their own (spawned from the case's), after the
                     anatomy: the same case with decoys has the same body, labels and noise.
    fov_scale        a larger in-plane field of view (x and y times fov_scale; z unchanged), with the voxel
                     count scaled so that the spacing stays; the body keeps its size, so there is more
                     around it (air, table) to search through.
    pancreas_scale   a thinner pancreas (and thinner decoys): its radii times pancreas_scale, its path
                     through the abdomen unchanged.

    make_phantom(rng, options=PhantomOptions(distractors=3))
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from aunet.data.anatomy import Canvas, curve, resample_curve, smooth_noise
from aunet.errors import AunetError
from aunet.labels import value

# tissue ids painted by the anatomy; 0 is air
TISSUES = ("air", "table", "fat", "muscle", "bone", "marrow", "disc", "canal", "rib", "liver",
           "gallbladder", "spleen", "cortex", "medulla", "pelvis", "aorta", "ivc", "vein", "artery",
           "pancreas", "bowel_wall", "bowel_fluid", "gas", "stool", "stomach_wall", "stomach_fluid",
           "decoy")  # decoy: a pancreas-like distractor (PhantomOptions.distractors), rendered as the pancreas
T = {name: i for i, name in enumerate(TISSUES)}
# painted tissue -> organ it belongs to in the labels; every other tissue is background
TISSUE_ORGAN = {"spleen": "spleen", "pancreas": "pancreas", "cortex": "kidney", "medulla": "kidney", "pelvis": "kidney"}
TISSUE_LABEL = {T[tissue]: value(organ) for tissue, organ in TISSUE_ORGAN.items()}  # tissue id -> CT-150 value
LOOKS_LIKE_PANCREAS = (T["pancreas"], T["decoy"])  # rendered with the pancreas's HU and texture

# (mean HU, sd of the mean between cases, sd of the texture within an organ)
PORTAL_VENOUS = {
    "air": (-1000, 0, 5), "table": (250, 20, 20), "fat": (-100, 8, 12), "muscle": (50, 6, 8),
    "bone": (700, 80, 60), "marrow": (230, 40, 30), "disc": (85, 10, 8), "canal": (20, 5, 5),
    "rib": (450, 60, 50), "liver": (105, 12, 6), "gallbladder": (12, 5, 3), "spleen": (115, 12, 6),
    "cortex": (175, 20, 8), "medulla": (135, 20, 10), "pelvis": (15, 5, 5), "aorta": (170, 25, 4),
    "ivc": (140, 20, 6), "vein": (160, 20, 5), "artery": (170, 25, 4), "pancreas": (100, 12, 12),
    "bowel_wall": (95, 12, 10), "bowel_fluid": (25, 15, 10), "gas": (-950, 30, 40),
    "stool": (-60, 30, 80), "stomach_wall": (95, 10, 8), "stomach_fluid": (20, 10, 5),
}
# another scanner and contrast phase: arteries bright, pancreas enhances, liver and veins less so
LATE_ARTERIAL = {**PORTAL_VENOUS, "liver": (75, 12, 6), "spleen": (125, 15, 14), "cortex": (230, 25, 10),
                 "medulla": (110, 20, 10), "aorta": (290, 40, 5), "artery": (280, 40, 5),
                 "ivc": (90, 15, 8), "vein": (110, 20, 6), "pancreas": (120, 15, 12),
                 "bowel_wall": (105, 12, 10), "fat": (-95, 8, 12)}


@dataclass(frozen=True)
class Domain:
    """How one 'scanner' images the phantom: contrast, noise, blur, sampling and storage order."""

    name: str
    hu: dict[str, tuple[float, float, float]]
    size: tuple[int, int, int]  # voxels (x, y, z) over the field of view
    fov_mm: tuple[float, float, float] = (400.0, 320.0, 256.0)
    noise_hu: tuple[float, float] = (10.0, 20.0)  # range of the per-case noise sd
    blur_mm: tuple[float, float] = (1.0, 2.0)  # range of the per-case blur (Gaussian sigma)
    storage: str = "RAS"  # array axis order written to disk: "RAS" or "LPS"


DOMAINS = {
    "scanner_a": Domain("scanner_a", PORTAL_VENOUS, (160, 128, 64)),
    "scanner_b": Domain("scanner_b", LATE_ARTERIAL, (128, 100, 100), noise_hu=(20.0, 32.0),
                        blur_mm=(1.5, 2.5), storage="LPS"),
}


@dataclass(frozen=True)
class PhantomOptions:
    """Ways to make the phantom harder (see the module docstring); the defaults draw the default phantom."""

    distractors: int = 0  # pancreas-like decoys, labelled background, elsewhere in the abdomen
    fov_scale: float = 1.0  # in-plane field of view x this (voxels added, spacing kept; the body keeps its size)
    pancreas_scale: float = 1.0  # the pancreas's (and the decoys') radii x this

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def validate(self) -> None:
        """AunetError naming the first option whose value cannot work."""
        if not isinstance(self.distractors, int) or isinstance(self.distractors, bool) or self.distractors < 0:
            raise AunetError(f"distractors={self.distractors!r} is not valid; expected a whole number >= 0.")
        if not 1.0 <= self.fov_scale <= 2.0:
            raise AunetError(f"fov_scale={self.fov_scale!r} is not valid; expected a number from 1 to 2.")
        if not 0.5 <= self.pancreas_scale <= 1.0:
            raise AunetError(f"pancreas_scale={self.pancreas_scale!r} is not valid; expected a number from 0.5 to 1.")


def field_of_view(domain: str = "scanner_a", options: PhantomOptions | None = None) -> tuple[float, float, float]:
    """The phantom's field of view in mm (x, y, z) for a domain and options."""
    fov, scale = DOMAINS[domain].fov_mm, (options or PhantomOptions()).fov_scale
    return (fov[0] * scale, fov[1] * scale, fov[2])


@dataclass
class Phantom:
    """One generated case: HU image (int16) and label (uint8) in storage order, with their affine."""

    image: np.ndarray  # (X, Y, Z) int16 Hounsfield units
    label: np.ndarray  # (X, Y, Z) uint8 CT-150 labels
    affine: np.ndarray  # (4, 4) voxel -> patient mm (RAS+ world, as in NIfTI)
    spacing: tuple[float, float, float]
    info: dict = field(default_factory=dict)
    decoys: np.ndarray | None = None  # (X, Y, Z) bool, storage order: the pancreas-like distractors (None: none drawn)


def make_phantom(rng: np.random.Generator, domain: str = "scanner_a", size: tuple[int, int, int] | None = None,
                 options: PhantomOptions | None = None) -> Phantom:
    """Draw one abdominal CT phantom; the result depends only on the generator's state (and the options).

    size: voxels over the field of view (default: the domain's, scaled in-plane with options.fov_scale).
    """
    dom, options = DOMAINS[domain], options or PhantomOptions()
    options.validate()
    fov = field_of_view(domain, options)
    default_size = (round(dom.size[0] * options.fov_scale), round(dom.size[1] * options.fov_scale), dom.size[2])
    size = tuple(int(s) for s in (size or default_size))
    spacing = tuple(f / n for f, n in zip(fov, size))
    canvas = Canvas(size, spacing)
    decoys = rng.spawn(1)[0] if options.distractors else None  # spawned first: leaves rng's stream as it is
    context = _draw_anatomy(canvas, rng, options.pancreas_scale)
    if decoys is not None:
        _draw_distractors(canvas, decoys, options.distractors, options.pancreas_scale, **context)
    image = _render(canvas, dom, rng)
    label = np.zeros(size, np.uint8)
    for tissue, label_value in TISSUE_LABEL.items():
        label[canvas.tissue == tissue] = label_value
    decoy = canvas.tissue == T["decoy"] if decoys is not None else None
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-(n - 1) / 2 * s for n, s in zip(size, spacing)]  # voxel centres as in Canvas
    if dom.storage == "LPS":  # store x and y reversed, as DICOM-derived files often are
        image, label = image[::-1, ::-1].copy(), label[::-1, ::-1].copy()
        decoy = None if decoy is None else decoy[::-1, ::-1].copy()
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        flip[:2, 3] = [(size[0] - 1), (size[1] - 1)]
        affine = affine @ flip
    return Phantom(image, label, affine, spacing, {"domain": domain, **options.to_dict()}, decoy)


def _draw_anatomy(c: Canvas, rng: np.random.Generator, pancreas_scale: float = 1.0) -> dict:
    """Paint every structure as tissue ids; sizes and positions vary per case. Returns where the decoys may go."""
    u = rng.uniform
    X, Y = c.axes[0][:, None, None], c.axes[1][None, :, None]
    Z = c.axes[2][None, None, :]
    # body outline: an ellipse, flatter at the back, slightly wider lower down
    ax, ay = u(160, 185), u(115, 135)
    ax_z = ax * (1 + 0.0004 * (-Z)) + 4 * np.sin(Z / 60 + u(0, 6))
    cy = u(-10, 10)
    ay_y = np.where(Y - cy < 0, 0.88 * ay, ay)
    rho = np.sqrt((X / ax_z) ** 2 + ((Y - cy) / ay_y) ** 2)  # 1 on the skin
    fat_mm, wall_mm = u(12, 30), u(9, 14)
    body = rho <= 1
    wall = rho <= 1 - fat_mm / ay
    cavity = rho <= 1 - (fat_mm + wall_mm) / ay
    table_y = cy - 0.88 * ay - u(4, 10)
    c.tissue[(Y < table_y) & (Y > table_y - 12) & (np.abs(X) < 220) & ~body] = T["table"]
    c.tissue[body] = T["fat"]
    c.tissue[wall] = T["muscle"]
    c.tissue[cavity] = T["fat"]
    # ribs: small bony ovals in the muscle wall, upper abdomen, sloping down towards the front
    theta = np.arctan2(X, -(Y - cy))  # 0 at the back, +-pi at the front
    ring = (rho > 1 - (fat_mm + wall_mm * 0.75) / ay) & (rho < 1 - (fat_mm + wall_mm * 0.25) / ay)
    z0, gap = u(85, 105), u(24, 30)
    for k in range(6):
        zk = z0 - k * gap - 45 * (1 - np.cos(theta)) / 2  # posterior end higher than the front
        side = (np.abs(theta) > 0.35) & (np.abs(theta) < 2.5 - 0.15 * k)
        c.tissue[ring & side & (np.abs(Z - zk) < 4.5)] = T["rib"]
    # spine: vertebral bodies with discs, canal, posterior elements, paraspinal muscles, psoas
    yv = cy - 0.88 * ay + fat_mm * 0.5 + u(55, 65)  # centre of the vertebral body
    rv = u(17, 22)
    z = c.axes[2]
    for sx in (-1, 1):
        c.cylinder(sx * u(30, 38), yv - u(32, 38), u(22, 28), u(20, 26), T["muscle"])
        for zi in np.nonzero(z < 30)[0]:  # psoas grows towards the pelvis
            r = min(18.0, (35 - z[zi]) / 7)
            sl = c.tissue[:, :, zi]
            disc = (X[:, :, 0] - sx * (rv + 14)) ** 2 + (Y[:, :, 0] - yv - 4) ** 2 < r ** 2
            sl[disc & cavity[:, :, zi]] = T["muscle"]
    disc = ((z + u(0, 34)) % u(30, 34)) < 7
    c.cylinder(0, yv, rv * 1.1, rv, T["bone"])
    c.cylinder(0, yv, rv * 0.9, rv * 0.82, T["marrow"], z=~disc)
    c.cylinder(0, yv, rv * 1.1, rv, T["disc"], z=disc)
    c.cylinder(0, yv - rv - 11, u(14, 18), u(9, 11), T["bone"], z=~disc)  # neural arch
    c.cylinder(0, yv - rv - 30, u(5, 7), u(12, 16), T["bone"], z=~disc)  # spinous process
    c.cylinder(0, yv - rv - 11, 8, 7, T["canal"])
    cav_x = ax * (1 - (fat_mm + wall_mm) / ay)  # half-width of the abdominal cavity
    free = (c.tissue == T["fat"]) & cavity  # organs only go where visceral fat is
    pancreas = _draw_organs(c, rng, free, yv, rv, cav_x, ay, cy, pancreas_scale)
    return {"cavity": cavity, "pancreas": pancreas, "yv": yv, "cav_x": cav_x, "front": cy + ay * 0.6}


def _draw_organs(c: Canvas, rng, free, yv, rv, cav_x, ay, cy, pancreas_scale: float = 1.0) -> np.ndarray:
    """Viscera, bowel and vessels, from lowest to highest priority (later shapes win)."""
    u, n = rng.uniform, rng.normal
    front = cy + ay * 0.6  # a little behind the anterior abdominal wall
    # small bowel: wobbly loops in the lower, anterior abdomen; colon around the periphery
    for _ in range(rng.integers(12, 18)):
        start = np.array([u(-0.7, 0.7) * cav_x, u(yv + 25, front), u(-125, 0)])
        steps = np.cumsum(n(0, 25, size=(6, 3)), axis=0) + start
        pts = resample_curve(curve(np.vstack([start, steps]), 40), 3.0)
        c.tube(pts, np.full(len(pts), u(9, 13)), T["bowel_wall"], free, 2.5,
               T["gas"] if u() < 0.25 else T["bowel_fluid"])
    colon = np.array([[u(95, 120), yv + u(20, 40), -125], [u(100, 125), yv + u(30, 50), -20],
                      [u(60, 90), front - 10, u(0, 15)], [0, front - u(0, 15), u(-10, 10)],
                      [-u(60, 90), front - 10, u(5, 20)], [-u(100, 125), yv + u(30, 50), u(20, 40)],
                      [-u(100, 125), yv + u(20, 40), -125]])
    pts = resample_curve(curve(colon, 80), 4.0)
    c.tube(pts, np.full(len(pts), u(17, 23)), T["bowel_wall"], free, 3.0, T["stool"])
    # stomach: left upper quadrant, gas at the front (the patient lies supine), fluid behind
    st = np.array([-u(40, 70), front - u(35, 50), u(55, 80)])
    sr = np.array([u(38, 50), u(30, 40), u(40, 55)])
    c.ellipsoid(st, sr, T["stomach_fluid"], u(-0.4, 0.2), 0.15, rng, free, 4.0, T["stomach_wall"])
    lumen = (c.tissue == T["stomach_fluid"]) & (c.axes[1][None, :, None] > st[1] + u(0.1, 0.5) * sr[1])
    c.tissue[lumen] = T["gas"]
    # liver: right lobe plus left lobe, filling the right upper quadrant up to the dome
    rl = np.array([u(50, 80), yv + u(55, 75), u(45, 70)])
    c.ellipsoid(rl, (u(70, 90), u(75, 95), u(70, 90)), T["liver"], u(-0.3, 0.3), 0.2, rng, free)
    c.ellipsoid((u(-30, 0), front - u(35, 50), rl[2] + u(10, 25)), (u(45, 65), u(30, 40), u(30, 40)),
                T["liver"], u(-0.3, 0.3), 0.2, rng, free)
    c.ellipsoid((rl[0] - u(15, 30), front - u(40, 60), rl[2] - u(45, 60)), (u(12, 18), u(12, 18), u(22, 32)),
                T["gallbladder"], 0.0, 0.1, rng, free)
    # spleen: a crescent behind the stomach, left upper quadrant
    sp = np.array([-cav_x + u(28, 38), yv + u(5, 25), u(45, 70)])
    c.ellipsoid(sp, (u(24, 32), u(48, 62), u(45, 60)), T["spleen"], u(-0.7, -0.3), 0.15, rng, free)
    c.ellipsoid(sp + (u(30, 38), u(10, 20), 0), (u(15, 20), u(30, 40), u(30, 40)), T["fat"], -0.5,
                where=c.tissue == T["spleen"])  # the concave hilum facing the stomach
    # kidneys: beside the spine, left one a little higher; cortex, medulla and a sinus of fat/urine
    for sx, dz in ((1, -u(5, 20)), (-1, u(0, 10))):
        k = np.array([sx * (rv + u(48, 60)), yv + u(0, 12), dz + u(-10, 10)])
        rot = sx * u(0.4, 0.7)
        radii = np.array([u(22, 28), u(28, 34), u(48, 60)])
        c.ellipsoid(k, radii, T["medulla"], rot, 0.08, rng, free, 6.0, T["cortex"])
        c.ellipsoid(k - (sx * 10, -6, 0), radii * (0.35, 0.4, 0.5), T["pelvis"], rot,
                    where=np.isin(c.tissue, (T["medulla"], T["cortex"])))
    return _draw_pancreas(c, rng, free, yv, rv, pancreas_scale)


def _draw_pancreas(c: Canvas, rng, free, yv, rv, scale: float = 1.0) -> np.ndarray:
    """Pancreas (head in the duodenal C-loop, body over the aorta, tail to the splenic hilum) and vessels.

    Returns the points of the pancreas's centre line (N, 3) in mm.
    """
    u = rng.uniform
    shift = np.array([u(-10, 10), u(-6, 8), u(-10, 10)])
    ctrl = np.array([[u(30, 45), yv + u(50, 60), u(-12, 0)],  # head
                     [u(5, 15), yv + u(58, 68), u(5, 12)],  # neck, in front of the SMV
                     [u(-35, -20), yv + u(50, 60), u(12, 22)],  # body, over the aorta
                     [u(-85, -65), yv + u(25, 40), u(25, 40)]]) + shift  # tail, up to the spleen
    pts = resample_curve(curve(ctrl, 60), 2.0)
    t = np.linspace(0, 1, len(pts))
    radii = np.interp(t, [0, 0.25, 0.5, 1], [u(13, 17), u(8, 10), u(9, 12), u(6, 9)])
    radii = radii * (1 + 0.12 * np.sin(t * u(10, 20) + u(0, 6)))  # lobulated outline
    if scale != 1.0:  # a thinner pancreas (PhantomOptions.pancreas_scale); its path is the same
        radii = radii * scale
    head = ctrl[0]
    duo = np.array([head + (u(5, 10), u(15, 20), u(22, 30)), head + (u(22, 28), u(5, 10), u(8, 12)),
                    head + (u(22, 28), -u(0, 5), -u(12, 18)), head + (u(0, 5), -u(5, 10), -u(24, 30)),
                    head + (-u(25, 35), -u(5, 10), -u(22, 28))])
    dpts = resample_curve(curve(duo, 40), 2.5)
    c.tube(dpts, np.full(len(dpts), u(9, 12)), T["bowel_wall"], free, 3.0, T["bowel_fluid"])
    c.tube(pts, radii, T["pancreas"], free | (c.tissue == T["bowel_wall"]))
    # vessels: aorta and IVC in front of the spine, SMV/portal vein, splenic vein behind the pancreas
    aorta = (u(-18, -8), yv + rv + u(12, 16), 0)
    c.cylinder(aorta[0], aorta[1], u(10, 13), u(10, 13), T["aorta"])
    c.cylinder(u(22, 30), yv + rv + u(10, 16), u(12, 16), u(8, 11), T["ivc"], u(-0.3, 0.3))
    smv = np.array([[ctrl[1][0] + u(-3, 3), ctrl[1][1] - 14, -125], [ctrl[1][0], ctrl[1][1] - 12, ctrl[1][2]],
                    [ctrl[1][0] + u(25, 35), ctrl[1][1] - u(0, 8), ctrl[1][2] + u(20, 30)],
                    [ctrl[1][0] + u(50, 60), ctrl[1][1], ctrl[1][2] + u(40, 50)]])
    spts = resample_curve(curve(smv, 40), 2.0)
    c.tube(spts, np.full(len(spts), u(5, 7)), T["vein"])
    behind = pts[len(pts) // 4:] - (0, 1, 0) * (radii[len(pts) // 4:, None] + 2)
    c.tube(behind, np.full(len(behind), u(3.5, 5)), T["vein"])  # splenic vein
    sma = np.array([aorta[0] + u(0, 4), aorta[1] + 10, ctrl[1][2] - 5]) \
        + np.array([[0, 0, 0], [2, 8, -40], [4, 12, -120]])
    c.tube(resample_curve(sma, 2.0), np.full(len(resample_curve(sma, 2.0)), u(3, 4)), T["artery"])
    return pts


def _draw_distractors(c: Canvas, rng: np.random.Generator, n: int, scale: float, cavity: np.ndarray,
                      pancreas: np.ndarray, yv: float, cav_x: float, front: float) -> None:
    """`n` pancreas-like decoys: curved, tapering, lobulated tubes of the pancreas's size in the abdominal cavity,
    at least 35 mm (centre lines) from the pancreas, painted over visceral fat and bowel walls only (organs and
    vessels stay whole); a decoy that would be mostly hidden is drawn again."""
    u = rng.uniform
    where = cavity & np.isin(c.tissue, (T["fat"], T["bowel_wall"]))  # where the pancreas may go too
    placed = 0
    for _ in range(100 * n):  # rejection sampling: far enough from the pancreas, inside the cavity
        if placed == n:
            break
        start = np.array([u(-0.7, 0.7) * cav_x, u(yv + 15, front - 10), u(-110, 50)])
        angle, length = u(0, 2 * np.pi), u(60, 100)
        direction = np.array([np.cos(angle), 0.5 * np.sin(angle), u(-0.3, 0.3)])
        ctrl = start + np.outer([0.0, 0.5, 1.0], direction / np.linalg.norm(direction) * length)
        ctrl[1] += rng.normal(0, 10, 3)  # a bend, as in the pancreas
        pts = resample_curve(curve(ctrl, 40), 2.0)
        gap = np.linalg.norm(pts[:, None] - pancreas[None], axis=2).min()
        if gap < 35:
            continue
        t = np.linspace(0, 1, len(pts))
        radii = np.interp(t, [0, 0.3, 1], [u(11, 15), u(8, 11), u(6, 9)]) * scale
        radii = radii * (1 + 0.12 * np.sin(t * u(10, 20) + u(0, 6)))
        found = c.tube_depth(pts, radii)
        if found is None:
            continue
        sl, depth = found
        inside = depth > 0
        if (inside & where[sl]).sum() < 0.6 * inside.sum():  # mostly hidden behind organs: draw another
            continue
        c.paint(sl, inside, T["decoy"], where)
        placed += 1


def _render(c: Canvas, dom: Domain, rng: np.random.Generator) -> np.ndarray:
    """Tissue ids -> HU: per-case means, organ texture, scanner blur and noise; int16."""
    offset = rng.normal(0, 5)  # calibration drift of the whole scan
    mean = np.zeros(len(TISSUES), np.float32)
    texture = np.zeros(len(TISSUES), np.float32)
    for name, (m, sd_case, sd_tex) in dom.hu.items():
        mean[T[name]] = m + rng.normal(0, sd_case) + (offset if name != "air" else 0)
        texture[T[name]] = sd_tex
    mean[T["decoy"]], texture[T["decoy"]] = mean[T["pancreas"]], texture[T["pancreas"]]  # same draw, no new one
    spacing = c.spacing
    fine = smooth_noise(rng, c.shape, 2.0)
    coarse = smooth_noise(rng, c.shape, 6.0)
    image = mean[c.tissue] + texture[c.tissue] * (0.6 * fine + 0.8 * coarse)
    # pancreas: fatty lobulation, darker pockets that make its texture unlike the liver's
    pan = np.isin(c.tissue, LOOKS_LIKE_PANCREAS)
    image[pan] -= np.clip(fine[pan], 0, None) * rng.uniform(10, 30)
    image = ndimage.gaussian_filter(image, rng.uniform(*dom.blur_mm) / spacing, mode="nearest")
    noise = ndimage.gaussian_filter(rng.standard_normal(c.shape).astype(np.float32), 0.6)
    image += noise * (rng.uniform(*dom.noise_hu) / (noise.std() + 1e-6))
    return np.clip(np.rint(image), -1024, 3071).astype(np.int16)
