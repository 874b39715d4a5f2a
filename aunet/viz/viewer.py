"""`SliceViewer`: an ipywidgets widget to browse a CT volume with its labels, a prediction and attention maps.

    viewer = SliceViewer("data/phantom/imagesTr/phantom_000.nii.gz",
                         label="data/phantom/labelsTr/phantom_000.nii.gz",
                         prediction="seg.nii.gz", attention={"level2": "att/phantom_000_attention_level2.nii.gz"})
    viewer                      # last line of a notebook cell: the widget
    viewer.slice.value = 30     # the controls are public attributes; rgba() and png() give the picture

Files are read with aunet.data.nifti and turned to RAS by aunet.data.preprocess.to_canonical (the
orientation the model sees). Arrays are taken on the image's grid as given: with an image read from a
file, overlay arrays are in that file's storage order (as `aunet predict` writes them); with an image
array (plus its spacing), in that array's order, read as (X=R, Y=A, Z=S). Display is radiological
(aunet.viz.render). `class_names` (value -> organ, default aunet.labels.CT150) names the classes and
picks their colours: class_names=aunet.labels.MSD_PANCREAS shows a Task07 label file's pancreas in the
pancreas' colour. The picture is a PNG drawn by matplotlib in an `ipywidgets.Image`, which shows in
JupyterLab, in a saved notebook and under papermill alike.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import ipywidgets as widgets
import numpy as np

from aunet.data.nifti import read_volume
from aunet.data.preprocess import canonical_spacing, to_canonical
from aunet.errors import AunetError
from aunet.labels import CT150
from aunet.viz.render import EDGES, PLANES, WINDOWS, data_window, label_centre, pixel_aspect, render_slice, to_png

Source = Any  # a NIfTI path, a numpy array or a torch tensor


def _describe(name: str, source: Source) -> str:
    return f"{name} {source}" if isinstance(source, (str, Path)) else name


def _as_array(source: Source, name: str) -> np.ndarray:
    """A 3D float32 array from an array or tensor; leading size-1 axes (batch, channel) are dropped."""
    if hasattr(source, "detach"):  # a torch tensor, e.g. an alpha map from model(x, return_attention=True)
        source = source.detach().cpu().numpy()
    try:
        array = np.asarray(source, dtype=np.float32)
    except (TypeError, ValueError):
        raise AunetError(f"{name} is a {type(source).__name__}; expected a NIfTI path or a 3D array.") from None
    while array.ndim > 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise AunetError(f"{name} has shape {array.shape}; expected a 3D volume (X, Y, Z).")
    if not np.isfinite(array).all():
        raise AunetError(f"{name} contains NaN or infinite values; expected finite numbers.")
    return array


def load_image(image: Source, spacing: Sequence[float] | None = None
               ) -> tuple[np.ndarray, tuple[float, float, float], np.ndarray | None, tuple[int, ...]]:
    """(RAS volume, RAS spacing in mm, file affine or None, shape as given) of a NIfTI path or an array."""
    if isinstance(image, (str, Path)):
        if spacing is not None:
            raise AunetError(f"spacing={spacing} was given with image file {image}; "
                             "the file's header sets the spacing.")
        data, img = read_volume(image)
        affine = np.asarray(img.affine)
        volume, ornt = to_canonical(data, affine)  # the orientation preprocessing and the model use
        return volume.astype(np.float32), canonical_spacing(affine, ornt), affine, data.shape
    volume = _as_array(image, "image")
    try:
        spacing = tuple(float(s) for s in spacing)  # type: ignore[union-attr]
    except TypeError:
        raise AunetError("spacing is missing or not numbers; "
                         "an image array needs spacing=(sx, sy, sz) in mm.") from None
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise AunetError(f"spacing={spacing} is not valid; expected three voxel sizes in mm > 0.")
    return volume, spacing, None, volume.shape  # type: ignore[return-value]


def load_overlay(source: Source, name: str, affine: np.ndarray | None, shape: tuple[int, ...],
                 kind: str) -> np.ndarray:
    """An overlay on the image's RAS grid; kind "labels" (integers >= 0) or "attention" (values in [0, 1])."""
    desc = _describe(name, source)
    if isinstance(source, (str, Path)):
        data, img = read_volume(source)
        own_affine = np.asarray(img.affine)
        if data.shape != tuple(shape):
            raise AunetError(f"{desc} has shape {data.shape}; expected the image's shape {tuple(shape)}.")
        if affine is not None and not np.allclose(own_affine, affine, atol=1e-3, rtol=0):
            raise AunetError(f"{desc} has another affine than the image; expected the same voxel grid.")
        array = to_canonical(data, own_affine)[0]
    else:
        array = _as_array(source, name)
        if array.shape != tuple(shape):
            raise AunetError(f"{desc} has shape {array.shape}; expected the image's shape {tuple(shape)}.")
        array = to_canonical(array, affine)[0] if affine is not None else array
    if kind == "labels":
        if (array < 0).any() or not np.array_equal(array, np.round(array)):
            raise AunetError(f"{desc} has negative or non-integer values; expected class labels 0, 1, 2, ...")
        return array.astype(np.int16)
    if array.min() < -1e-3 or array.max() > 1 + 1e-3:  # float32 resampling may overshoot by a hair
        raise AunetError(f"{desc} has values in [{array.min():.3g}, {array.max():.3g}]; expected attention in [0, 1].")
    return np.clip(array, 0.0, 1.0)


class SliceViewer(widgets.VBox):
    """Browse a CT volume in three planes with window presets, label/prediction outlines and attention heat maps."""

    def __init__(self, image: Source, spacing: Sequence[float] | None = None, label: Source | None = None,
                 prediction: Source | None = None, attention: Mapping[str, Source] | None = None,
                 class_names: Mapping[int, str] = CT150, plane: str = "axial", window: str = "abdomen",
                 height_in: float = 4.0) -> None:
        self.volume, self.spacing, affine, shape = load_image(image, spacing)  # (X, Y, Z) RAS
        self.label = None if label is None else load_overlay(label, "label", affine, shape, "labels")
        self.prediction = (None if prediction is None
                           else load_overlay(prediction, "prediction", affine, shape, "labels"))
        if attention is not None and not isinstance(attention, Mapping):
            raise AunetError(f"attention is a {type(attention).__name__}; "
                             "expected a dict name -> map, e.g. {'level2': alpha}.")
        self.attention = {str(k): load_overlay(v, f"attention {k!r}", affine, shape, "attention")
                          for k, v in (attention or {}).items()}
        if plane not in PLANES:
            raise AunetError(f"plane={plane!r} is not a plane; expected one of: {', '.join(PLANES)}.")
        presets = {**WINDOWS, "data range": data_window(self.volume)}  # for images not in HU (e.g. z-scored)
        if window not in presets:
            raise AunetError(f"window={window!r} is not a preset; expected one of: {', '.join(presets)}.")
        self.presets, self.height_in = presets, height_in
        self.centre = label_centre(self.label, self.volume.shape)  # (x, y, z): where the labels are, else the middle
        if not isinstance(class_names, Mapping):
            raise AunetError(f"class_names is a {type(class_names).__name__}; "
                             "expected a dict label value -> organ name, e.g. aunet.labels.MSD_PANCREAS.")
        self.class_names = dict(class_names)  # value -> organ: checkbox names and colours (aunet.labels)
        self._index = {p: int(self.centre[PLANES[p][0]]) for p in PLANES}  # each plane keeps its own slice
        self._quiet = False  # True while code (not the user) moves several controls at once
        self._build_controls(plane, window, self.class_names)
        super().__init__(children=[widgets.HBox([self.controls, self.picture]), self.caption])
        self.refresh()

    # --- controls ------------------------------------------------------------------------------

    def _build_controls(self, plane: str, window: str, class_names: Mapping[int, str]) -> None:
        lo, hi = float(self.volume.min()), float(self.volume.max())
        hounsfield = hi - lo > 100  # z-scored or [0, 1] images get sliders over their own range
        step = 1.0 if hounsfield else float(10.0 ** np.floor(np.log10(max(hi - lo, 1e-3) / 100)))
        lo, hi = np.floor(lo / step) * step, np.ceil(hi / step) * step  # on the step grid: presets stay exact
        self.presets["data range"] = tuple(float(np.round(v / step) * step) for v in self.presets["data range"])
        style = {"description_width": "110px"}
        slider = dict(continuous_update=True, style=style, layout=widgets.Layout(width="340px"))
        self.plane = widgets.ToggleButtons(options=list(PLANES), value=plane, description="plane", style=style)
        self.slice = widgets.IntSlider(value=self._index[plane], min=0, max=self._count(plane) - 1,
                                       description="slice", **slider)
        self.window = widgets.Dropdown(options=[*self.presets, "custom"], value=window, description="window",
                                       style=style)
        width, level = self.presets[window]
        top = max(4000.0, hi - lo) if hounsfield else 2 * max(hi - lo, step)  # above min=step, even if constant
        self.width = widgets.FloatSlider(value=width, min=step, max=top, step=step, description="width (W)", **slider)
        self.level = widgets.FloatSlider(value=level, min=min(-1000.0, lo) if hounsfield else lo,
                                         max=max(3000.0, hi) if hounsfield else hi, step=step,
                                         description="level (L)", **slider)
        opacity = dict(min=0.0, max=1.0, step=0.05, **slider)
        self.label_opacity = widgets.FloatSlider(value=0.4 if self.label is not None else 0.0,
                                                 description="label opacity", disabled=self.label is None, **opacity)
        self.prediction_opacity = widgets.FloatSlider(value=1.0 if self.prediction is not None else 0.0,
                                                      description="prediction opacity",
                                                      disabled=self.prediction is None, **opacity)
        names = ["none", *self.attention]
        self.attention_map = widgets.Dropdown(options=names, value=names[min(1, len(names) - 1)],
                                              description="attention", style=style)
        self.attention_opacity = widgets.FloatSlider(value=0.5, description="attention opacity", **opacity)
        self.threshold = widgets.FloatSlider(value=0.0, description="hide alpha below", **{**opacity, "step": 0.01})
        overlays = [a for a in (self.label, self.prediction) if a is not None]
        present = (set(class_names) | {int(v) for a in overlays for v in np.unique(a)}) if overlays else set()
        self.classes = {k: widgets.Checkbox(value=True, description=f"{k} {class_names.get(k, 'class')}", indent=False,
                                            layout=widgets.Layout(width="110px"))
                        for k in sorted(present - {0})}
        self.picture = widgets.Image(format="png")
        self.caption = widgets.HTML()
        self.controls = widgets.VBox([self.plane, self.slice, self.window, self.width, self.level, self.label_opacity,
                                      self.prediction_opacity, widgets.HBox(list(self.classes.values())),
                                      self.attention_map, self.attention_opacity, self.threshold])
        for control in (self.slice, self.label_opacity, self.prediction_opacity, self.attention_map,
                        self.attention_opacity, self.threshold, *self.classes.values()):
            control.observe(self._on_change, names="value")
        self.plane.observe(self._on_plane, names="value")
        self.window.observe(self._on_preset, names="value")
        self.width.observe(self._on_custom_window, names="value")
        self.level.observe(self._on_custom_window, names="value")

    def _on_change(self, _change: dict) -> None:
        if not self._quiet:
            self.refresh()

    def _on_plane(self, change: dict) -> None:
        """Another plane: the slider gets that plane's range and the slice last seen in it."""
        self._index[change["old"]] = self.slice.value
        self._quiet = True
        try:
            self.slice.max = max(self.slice.max, self._count(change["new"]) - 1)  # never clip the value on the way
            self.slice.value = self._index[change["new"]]
            self.slice.max = self._count(change["new"]) - 1
        finally:
            self._quiet = False
        self.refresh()

    def _on_preset(self, change: dict) -> None:
        if change["new"] == "custom":
            return
        self._quiet = True
        try:
            self.width.value, self.level.value = self.presets[change["new"]]
        finally:
            self._quiet = False
        self.refresh()

    def _on_custom_window(self, _change: dict) -> None:
        if self._quiet:
            return
        self._quiet = True
        try:
            self.window.value = "custom"  # the user moved W or L by hand
        finally:
            self._quiet = False
        self.refresh()

    # --- the picture ---------------------------------------------------------------------------

    def rgba(self) -> np.ndarray:
        """The picture the controls describe, (rows, columns, 4) float32 (aunet.viz.render.render_slice)."""
        name = self.attention_map.value
        return render_slice(self.volume, self.plane.value, self.slice.value, (self.width.value, self.level.value),
                            label=self.label, prediction=self.prediction,
                            attention=self.attention.get(name), label_opacity=self.label_opacity.value,
                            prediction_opacity=self.prediction_opacity.value,
                            attention_opacity=self.attention_opacity.value, threshold=self.threshold.value,
                            visible=[k for k, box in self.classes.items() if box.value], names=self.class_names)

    def png(self) -> bytes:
        """The picture as PNG bytes with the physical aspect of the plane (what the widget shows)."""
        plane, index = self.plane.value, self.slice.value
        offset = index * self.spacing[PLANES[plane][0]]
        title = f"{plane} slice {index}/{self._count(plane) - 1} ({offset:.1f} mm from slice 0)"
        return to_png(self.rgba(), pixel_aspect(self.spacing, plane), plane, title, self.height_in)

    def refresh(self) -> None:
        """Redraw the picture and the caption from the controls' values."""
        self.picture.value = self.png()
        plane = self.plane.value
        left, right, top, _ = EDGES[plane]
        rows, cols = PLANES[plane][1]
        self.caption.value = (f"<small>{plane}: patient {left} on the image left, {right} on the right, "
                              f"{top} at the top "
                              f"(radiological); pixel {self.spacing[cols]:.2f} x {self.spacing[rows]:.2f} mm; "
                              f"window W {self.width.value:g} / L {self.level.value:g}</small>")
        self.threshold.disabled = self.attention_opacity.disabled = self.attention_map.value == "none"

    # --- helpers -------------------------------------------------------------------------------

    def _count(self, plane: str) -> int:
        return int(self.volume.shape[PLANES[plane][0]])


__all__ = ["SliceViewer", "load_image", "load_overlay"]
