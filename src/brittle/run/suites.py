"""Built-in test suites: which perturbations at which severities a robustness run covers.

* ``quick``: a handful of perturbations at severity 3, one or two per family, for a first
  look in a minute or two;
* ``standard`` (the default): every family represented, severities 1, 3, 5;
* ``full``: the whole catalogue at 1..5;
* ``imagenet-c``: the 15 ImageNet-C common corruptions at 1..5 (mPC / rPC comparable with
  COCO-C).

>>> s = builtin_suite("quick")
>>> s.name, s.severities["gaussian_noise"]
('quick', (3,))
>>> len(builtin_suite("imagenet-c").cells())
75
>>> builtin_suite("standrad")
Traceback (most recent call last):
...
brittle.errors.UnknownNameError: unknown suite 'standrad'; did you mean 'standard'? (known: full, imagenet-c, quick, standard)
"""  # noqa: E501

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from brittle.perturbations import Perturbation, catalogue, get_perturbation, tuned
from brittle.registry import Registry

__all__ = ["IMAGENET_C_COMMON", "Suite", "builtin_suite", "suites"]

#: The 15 common corruptions, in the order of Hendrycks & Dietterich's tables.
IMAGENET_C_COMMON = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip


@dataclass(frozen=True)
class Suite:
    """Perturbation name -> severities, in run order; optionally, per perturbation, drawn
    parameters fixed to given values (``overrides``, from a suite file)."""

    name: str
    severities: dict[str, tuple[int, ...]]
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def perturbation(self, name: str) -> Perturbation:
        """The suite's perturbation ``name``, with its parameter overrides."""
        return tuned(name, self.overrides.get(name))

    def cells(self) -> list[tuple[str, int]]:
        """Every (perturbation, severity) pair of the suite."""
        return [(p, s) for p, sevs in self.severities.items() for s in sevs]


suites: Registry[Suite] = Registry("suite")


def _all_names() -> list[str]:
    return [c.name for group in catalogue().values() for c in group]


def _register_builtins() -> None:
    if "quick" in suites:
        return
    quick = (
        "gaussian_noise", "motion_blur", "fog", "low_light", "jpeg_compression", "hflip",
        "rotate", "cutout",
    )  # fmt: skip
    # standard: the ImageNet-C common corruptions plus what production cameras add that
    # ImageNet-C lacks (night, rain, glare, geometry, dirty lenses), at 1/3/5.
    standard = (
        *IMAGENET_C_COMMON, "iso_noise", "rain", "sun_glare", "low_light", "overexposure",
        "color_temperature", "webp_compression", "downscale", "hflip", "vflip", "rotate",
        "rotate90", "crop", "perspective", "cutout", "dirty_lens", "lens_distortion",
    )  # fmt: skip
    suites.register("quick")(Suite("quick", dict.fromkeys(quick, (3,))))
    suites.register("standard")(Suite("standard", dict.fromkeys(standard, (1, 3, 5))))
    suites.register("full")(Suite("full", dict.fromkeys(_all_names(), (1, 2, 3, 4, 5))))
    suites.register("imagenet-c")(
        Suite("imagenet-c", dict.fromkeys(IMAGENET_C_COMMON, (1, 2, 3, 4, 5)))
    )


def builtin_suite(name: str) -> Suite:
    """The built-in suite called ``name``; every perturbation in it exists."""
    _register_builtins()
    suite = suites.get(name)
    for p in suite.severities:
        get_perturbation(p)
    return suite
