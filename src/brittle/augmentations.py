"""Training augmentations, and the perturbations each should make a model robust to.

A model can declare what it was trained with (``--trained-with NAME=blur,noise,hflip``)
and a reference model trained without it (``--reference NAME=REF``). For each declared
augmentation brittle looks up the perturbations it is meant to protect against, takes
those in the suite, and compares the model with its reference on them (paired
bootstrap, same images): the verdict is *intended effect* when the model is
significantly more robust, *backfired* when significantly less, *no measurable effect*
when the interval contains zero, and *not tested* when the suite has none of them.

Names follow the augmentation libraries people train with (Ultralytics, Albumentations,
torchvision); a family name (``blur``, ``noise``, ``weather``, ...) stands for every
perturbation of that family.

>>> protects("hflip")
('hflip',)
>>> protects("jpeg")
('jpeg_compression', 'webp_compression')
>>> parse_augmentations("blur, noise,hflip")
['blur', 'noise', 'hflip']
>>> try:
...     parse_augmentations("blurr")
... except UnknownNameError as exc:
...     print(exc.args[0])
unknown augmentation 'blurr'; did you mean 'blur'? (brittle augmentations lists them)
"""

from __future__ import annotations

import difflib

from brittle.errors import UnknownNameError
from brittle.perturbations import catalogue

__all__ = ["AUGMENTATIONS", "augmentation_names", "parse_augmentations", "protects"]

#: augmentation -> perturbations it should protect against (family names expand).
AUGMENTATIONS: dict[str, tuple[str, ...]] = {
    # flips and rotations
    "hflip": ("hflip",),
    "fliplr": ("hflip",),
    "vflip": ("vflip",),
    "flipud": ("vflip",),
    "flip": ("hflip", "vflip"),
    "rotate": ("rotate", "rotate90"),
    "rotate90": ("rotate90",),
    # geometry
    "scale": ("scale", "downscale"),
    "translate": ("translate",),
    "crop": ("crop",),
    "random_resized_crop": ("crop", "scale"),
    "perspective": ("perspective",),
    "affine": ("rotate", "scale", "translate", "perspective"),
    "shear": ("perspective",),
    # blur
    "blur": ("blur",),
    "gaussian_blur": ("gaussian_blur", "defocus_blur"),
    "motion_blur": ("motion_blur",),
    "median_blur": ("median_blur",),
    "defocus": ("defocus_blur",),
    # noise
    "noise": ("noise",),
    "gaussian_noise": ("gaussian_noise",),
    "iso_noise": ("iso_noise",),
    # colour and light
    "hsv": ("brightness", "color_temperature", "hue_shift", "saturate"),
    "color_jitter": ("brightness", "contrast", "hue_shift", "saturate"),
    "brightness": ("brightness", "low_light", "overexposure", "gamma"),
    "contrast": ("contrast",),
    "gamma": ("gamma",),
    "grayscale": ("grayscale",),
    "hue": ("hue_shift", "color_temperature"),
    "clahe": ("contrast", "low_light"),
    # compression and resolution
    "jpeg": ("jpeg_compression", "webp_compression"),
    "image_compression": ("jpeg_compression", "webp_compression"),
    "downscale": ("downscale", "pixelate"),
    # weather
    "weather": ("weather",),
    "fog": ("fog",),
    "rain": ("rain",),
    "snow": ("snow",),
    "sun_flare": ("sun_glare",),
    # occlusion
    "cutout": ("cutout",),
    "random_erasing": ("cutout",),
    "coarse_dropout": ("cutout", "pixel_dropout"),
    # composition augmentations: no single perturbation measures them
    "mosaic": (),
    "mixup": (),
    "copy_paste": (),
}


def augmentation_names() -> list[str]:
    """Every augmentation name brittle understands, sorted."""
    return sorted(AUGMENTATIONS)


def protects(augmentation: str) -> tuple[str, ...]:
    """The catalogue perturbations ``augmentation`` should make a model robust to."""
    families = {f: tuple(c.name for c in group) for f, group in catalogue().items()}
    out: list[str] = []
    for name in AUGMENTATIONS[_known(augmentation)]:
        for p in families.get(name, (name,)):
            if p not in out:
                out.append(p)
    return tuple(sorted(out))


def _known(name: str) -> str:
    if name in AUGMENTATIONS:
        return name
    close = difflib.get_close_matches(name, list(AUGMENTATIONS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UnknownNameError(
        f"unknown augmentation {name!r}{hint} (brittle augmentations lists them)"
    )


def parse_augmentations(value: str) -> list[str]:
    """``"blur, noise,hflip"`` -> ``["blur", "noise", "hflip"]``, each name checked."""
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    return [_known(n) for n in dict.fromkeys(names)]
