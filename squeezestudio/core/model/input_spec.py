"""What a model expects as input: its size and how an image file becomes that tensor.

A classifier trained elsewhere scores near chance when fed images prepared
another way (wrong size, mean/std, 0..255 instead of 0..1, BGR instead of
RGB), so the preprocessing is part of the model: it lives on the model
handle, travels in ``.sqz`` files, checkpoints, projects and exported ONNX
metadata, and is read from the file where the file says it.

The module SqueezeStudio runs always takes NCHW float input; ``layout``
records the layout of the original file (``"nhwc"`` for models converted
from TensorFlow), so the importer can put a transpose in front and exports
keep the file's interface.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Mapping, Optional

from squeezestudio.core.errors import PreprocessingError

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

LAYOUTS = ("nchw", "nhwc")
CHANNEL_ORDERS = ("rgb", "bgr")
PIXEL_SCALES = (1.0, 255.0)
MAX_CHANNELS = 4096  # input channels an image-like input may declare (a file claiming millions is refused)

# The flags named in warnings; a warning is dropped once the user sets them.
SIZE_FLAGS = "--input-size H,W"
NORMALISATION_FLAGS = "--mean/--std/--pixel-scale/--resize/--bgr (or --preprocess FILE.yaml)"


@dataclass(frozen=True)
class InputSpec:
    """The model's input (``channels x height x width``) and the preprocessing that produces it.

    ``resize``: ``()`` scales the image just enough to cover ``height x width``;
    ``(n,)`` scales its shorter side to ``n``; ``(h, w)`` resizes to exactly
    ``h x w``. A center crop to ``height x width`` follows. Pixels are divided
    by 255 and multiplied by ``pixel_scale`` (1: values in 0..1, 255: 0..255),
    then ``(x - mean) / std`` per channel. ``grayscale`` converts the image to
    gray first (replicated when the model takes 3 channels).
    """

    channels: int = 3
    height: int = 224
    width: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resize: tuple[int, ...] = ()
    pixel_scale: float = 1.0
    channel_order: str = "rgb"
    grayscale: bool = False
    layout: str = "nchw"

    def example(self, batch: int = 1) -> "torch.Tensor":
        """A random NCHW input of the right shape (for tracing, MAC counting, export)."""
        import torch  # lazily: project files read specs in the window's first paint, before torch (~1.6 s)

        return torch.randn(batch, self.channels, self.height, self.width)

    def file_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        """The input shape of the original file (NHWC for a channels-last model)."""
        if self.layout == "nhwc":
            return (batch, self.height, self.width, self.channels)
        return (batch, self.channels, self.height, self.width)

    def describe(self) -> str:
        """One line for the user: what the model sees."""
        resize = ("to cover" if not self.resize else f"shorter side to {self.resize[0]}" if len(self.resize) == 1
                  else f"to {self.resize[0]}x{self.resize[1]}")
        mean = ",".join(f"{m:g}" for m in self.mean)
        std = ",".join(f"{s:g}" for s in self.std)
        extras = "".join([", BGR" if self.channel_order == "bgr" else "", ", grayscale" if self.grayscale else "",
                          ", NHWC file" if self.layout == "nhwc" else ""])
        return (f"{self.channels}x{self.height}x{self.width}, resize {resize}, center crop, "
                f"pixels 0..{self.pixel_scale:g}, mean {mean}, std {std}{extras}")

    def to_dict(self) -> dict[str, Any]:
        return {"channels": self.channels, "height": self.height, "width": self.width,
                "mean": list(self.mean), "std": list(self.std), "resize": list(self.resize),
                "pixel_scale": self.pixel_scale, "channel_order": self.channel_order,
                "grayscale": self.grayscale, "layout": self.layout}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "InputSpec":
        """Read a spec recorded in a file; ``ValueError`` names the first impossible value.

        Files written before the preprocessing keys existed still open.
        """
        sizes = {}
        for key in ("channels", "height", "width"):
            value = d[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"the input {key} must be a positive whole number, not {str(value)[:40]}")
            sizes[key] = value
        if sizes["channels"] > MAX_CHANNELS:
            raise ValueError(f"the input has {sizes['channels']:,} channels; an image has at most {MAX_CHANNELS:,}")
        mean, std, resize = d["mean"], d["std"], d.get("resize", ())
        if not all(isinstance(v, (list, tuple)) and len(v) <= 4096 for v in (mean, std, resize)):
            raise ValueError("the input mean, std and resize must be short lists of numbers")
        mean_t, std_t = tuple(float(x) for x in mean), tuple(float(x) for x in std)
        if not all(math.isfinite(x) for x in mean_t + std_t) or any(x == 0 for x in std_t):
            raise ValueError("the input mean and std must be finite numbers and the std never 0")
        mean_t = mean_t * sizes["channels"] if len(mean_t) == 1 else mean_t
        std_t = std_t * sizes["channels"] if len(std_t) == 1 else std_t
        try:
            spec = cls(mean=mean_t, std=std_t, resize=tuple(int(x) for x in resize),
                       pixel_scale=float(d.get("pixel_scale", 1.0)),
                       channel_order=str(d.get("channel_order", "rgb")).lower(),
                       grayscale=bool(d.get("grayscale", False)), layout=str(d.get("layout", "nchw")).lower(),
                       **sizes)
            check_input_spec(spec)
        except PreprocessingError as exc:
            raise ValueError(str(exc)) from None
        return spec


def check_input_spec(spec: InputSpec) -> None:
    """Raise :class:`PreprocessingError` (one sentence) if the spec contradicts itself."""
    if spec.channels < 1:
        raise PreprocessingError(f"the input needs at least one channel, not {spec.channels}")
    if spec.height < 1 or spec.width < 1:
        raise PreprocessingError(f"the input size {spec.height}x{spec.width} must be at least 1x1 pixel")
    for label, values in (("mean", spec.mean), ("std", spec.std)):
        if len(values) != spec.channels:
            raise PreprocessingError(f"the {label} has {len(values)} values but the model takes "
                                     f"{spec.channels} channel(s)")
    if any(s <= 0 for s in spec.std):
        raise PreprocessingError("every std value must be positive")
    if spec.pixel_scale not in PIXEL_SCALES:
        raise PreprocessingError(f"the pixel scale must be 1 (pixels in 0..1) or 255 (0..255), "
                                 f"not {spec.pixel_scale:g}")
    if spec.channel_order not in CHANNEL_ORDERS:
        raise PreprocessingError(f"the channel order must be rgb or bgr, not {spec.channel_order!r}")
    if spec.layout not in LAYOUTS:
        raise PreprocessingError(f"the layout must be nchw or nhwc, not {spec.layout!r}")
    if len(spec.resize) not in (0, 1, 2) or any(r < 1 for r in spec.resize):
        raise PreprocessingError(f"the resize must be one size (shorter side) or H,W, not {list(spec.resize)}")
    if len(spec.resize) == 1 and min(spec.height, spec.width) > spec.resize[0]:
        raise PreprocessingError(f"the center crop {spec.height}x{spec.width} is larger than the resize "
                                 f"(shorter side to {spec.resize[0]}); resize to at least "
                                 f"{min(spec.height, spec.width)} or crop less")
    if len(spec.resize) == 2 and (spec.height > spec.resize[0] or spec.width > spec.resize[1]):
        raise PreprocessingError(f"the center crop {spec.height}x{spec.width} is larger than the resize "
                                 f"to {spec.resize[0]}x{spec.resize[1]}")


# -- user options (CLI flags, --preprocess FILE.yaml, ONNX metadata_props) -------------

OPTION_KEYS = ("input_size", "resize", "crop", "mean", "std", "pixel_scale", "bgr", "channel_order",
               "grayscale", "layout", "channels")


def _ints(value: Any, key: str, count: tuple[int, ...]) -> tuple[int, ...]:
    """``224`` / ``"224,224"`` / ``[224, 224]`` -> a tuple of positive ints of an allowed length."""
    if isinstance(value, bool):
        raise PreprocessingError(f"{key} must be a number of pixels, not {value}")
    items = value.replace("x", ",").split(",") if isinstance(value, str) else \
        list(value) if isinstance(value, (list, tuple)) else [value]
    try:
        out = tuple(int(str(v).strip()) for v in items if str(v).strip())
    except ValueError:
        raise PreprocessingError(f"{key} must be whole numbers of pixels such as 224 or 224,224, "
                                 f"not {value!r}") from None
    if len(out) not in count or any(v < 1 for v in out):
        shape = " or ".join({1: "N", 2: "H,W"}[c] for c in count)
        raise PreprocessingError(f"{key} takes {shape} (positive pixels), not {value!r}")
    return out


def _floats(value: Any, key: str) -> tuple[float, ...]:
    items = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) \
        else [value]
    try:
        out = tuple(float(str(v).strip()) for v in items if str(v).strip())
    except ValueError:
        raise PreprocessingError(f"{key} must be numbers such as 0.5 or 0.485,0.456,0.406, not {value!r}") from None
    if not out:
        raise PreprocessingError(f"{key} needs at least one value")
    return out


def _flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise PreprocessingError(f"{key} must be true or false, not {value!r}")


def parse_preprocess_options(raw: Mapping[str, Any], source: str = "the preprocessing") -> dict[str, Any]:
    """Check and normalise user options (keys as in ``--preprocess FILE.yaml``).

    Returns a dict with only the keys given: ``input_size`` (H, W), ``resize``
    (tuple), ``mean``/``std`` (tuples), ``pixel_scale`` (float),
    ``channel_order``, ``grayscale``, ``layout``, ``channels``. ``crop`` is
    the model's input size, so it becomes ``input_size`` (both given and
    different is an error).
    """
    unknown = sorted(set(raw) - set(OPTION_KEYS) - {k.replace("_", "-") for k in OPTION_KEYS})
    if unknown:
        raise PreprocessingError(f"{source} has an unknown key {unknown[0]!r}; use "
                                 f"{', '.join(OPTION_KEYS)}")
    d = {str(k).replace("-", "_"): v for k, v in raw.items() if v is not None}
    out: dict[str, Any] = {}
    square = lambda t: t * 2 if len(t) == 1 else t  # noqa: E731 - one size means a square
    if "input_size" in d:
        out["input_size"] = square(_ints(d["input_size"], "input_size", (1, 2)))
    if "crop" in d:
        crop = square(_ints(d["crop"], "crop", (1, 2)))
        if "input_size" in out and out["input_size"] != crop:
            raise PreprocessingError(f"the crop {crop[0]}x{crop[1]} differs from the input size "
                                     f"{out['input_size'][0]}x{out['input_size'][1]}; the crop is what the model sees")
        out["input_size"] = crop
    if "resize" in d:  # an empty list or tuple (a parsed spec's "resize to cover") stays empty
        empty = isinstance(d["resize"], (list, tuple)) and not d["resize"]
        out["resize"] = () if empty else _ints(d["resize"], "resize", (1, 2))
    for key in ("mean", "std"):
        if key in d:
            out[key] = _floats(d[key], key)
    if "pixel_scale" in d:
        scale = _floats(d["pixel_scale"], "pixel_scale")[0]
        if scale not in PIXEL_SCALES:
            raise PreprocessingError(f"pixel_scale must be 1 (pixels in 0..1) or 255 (0..255), not {scale:g}")
        out["pixel_scale"] = scale
    if "bgr" in d:
        out["channel_order"] = "bgr" if _flag(d["bgr"], "bgr") else "rgb"
    if "channel_order" in d:
        order = str(d["channel_order"]).strip().lower()
        if order not in CHANNEL_ORDERS or out.get("channel_order", order) != order:
            raise PreprocessingError(f"channel_order must be rgb or bgr (and agree with bgr), not {d['channel_order']!r}")
        out["channel_order"] = order
    if "grayscale" in d:
        out["grayscale"] = _flag(d["grayscale"], "grayscale")
    if "layout" in d:
        layout = str(d["layout"]).strip().lower()
        if layout not in LAYOUTS:
            raise PreprocessingError(f"layout must be nchw or nhwc, not {d['layout']!r}")
        out["layout"] = layout
    if "channels" in d:
        out["channels"] = _ints(d["channels"], "channels", (1,))[0]
    return out


def _broadcast(values: tuple[float, ...], channels: int, key: str) -> tuple[float, ...]:
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise PreprocessingError(f"the {key} has {len(values)} values but the model takes {channels} channel(s)")
    return values


def apply_preprocess_options(spec: InputSpec, options: Mapping[str, Any]) -> InputSpec:
    """``spec`` with the user's (parsed) options applied; one value of mean/std broadcasts.

    A ``channels`` option that differs from the model's is an error: the
    channel count is the model's, not a preprocessing choice.
    """
    if not options:
        return spec
    channels = int(options.get("channels", spec.channels))
    if channels != spec.channels:
        raise PreprocessingError(f"the preprocessing gives {channels}-channel images but the model takes "
                                 f"{spec.channels} channel(s)")
    changes: dict[str, Any] = {}
    if "input_size" in options:
        changes["height"], changes["width"] = options["input_size"]
    for key in ("resize", "pixel_scale", "channel_order", "grayscale", "layout"):
        if key in options:
            changes[key] = options[key]
    for key in ("mean", "std"):
        if key in options:
            changes[key] = _broadcast(tuple(options[key]), channels, key)
    if "pixel_scale" in options and options["pixel_scale"] != spec.pixel_scale:
        # Mean/std not given with the new scale: rescale the old ones so the tensor is unchanged.
        factor = options["pixel_scale"] / spec.pixel_scale
        for key in ("mean", "std"):
            changes.setdefault(key, tuple(v * factor for v in getattr(spec, key)))
    out = replace(spec, **changes)
    check_input_spec(out)
    return out


def options_from_metadata(props: Mapping[str, str]) -> dict[str, Any]:
    """Preprocessing keys found in ONNX ``metadata_props`` (``mean``, ``preprocess.mean``...).

    Keys may be bare or prefixed ``preprocess.`` / ``preprocessing.``; values
    are text (``"0.5,0.5,0.5"``) or JSON lists. Unknown keys are ignored
    (metadata holds many other things); a known key with a bad value raises.
    """
    import json

    found: dict[str, Any] = {}
    for key, value in props.items():
        name = key.lower()
        for prefix in ("preprocess.", "preprocessing.", "squeezestudio.preprocess."):
            if name.startswith(prefix):
                name = name[len(prefix):]
        name = name.replace("-", "_")
        if name in OPTION_KEYS or name in ("image_size", "input_size"):
            text = value.strip()
            if text.startswith("["):
                try:
                    text = json.loads(text)
                except ValueError:
                    pass
            found["input_size" if name == "image_size" else name] = text
    return parse_preprocess_options(found, "the model file's preprocessing metadata") if found else {}


def read_preprocess_file(path: "str") -> dict[str, Any]:
    """Parse ``--preprocess FILE.yaml`` (YAML or JSON mapping with the option keys)."""
    from pathlib import Path

    import yaml

    p = Path(path).expanduser()
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError:
        raise PreprocessingError(f"the preprocessing file {p} cannot be read") from None
    except (yaml.YAMLError, UnicodeDecodeError):
        raise PreprocessingError(f"the preprocessing file {p} is not valid YAML") from None
    if isinstance(raw, dict) and isinstance(raw.get("preprocess"), dict):
        raw = raw["preprocess"]
    if not isinstance(raw, dict):
        raise PreprocessingError(f"the preprocessing file {p} must hold keys such as input_size, mean, std")
    return parse_preprocess_options(raw, f"the preprocessing file {p.name}")


def merged_options(*layers: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """Later option sets win key by key (file metadata < --preprocess file < flags)."""
    out: dict[str, Any] = {}
    for layer in layers:
        if layer:
            out.update(layer)
    return out
