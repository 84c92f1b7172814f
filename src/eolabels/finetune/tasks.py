"""The three downstream tasks of CromSS (spec §6–7): which dataset, labels, classes and model.

A task reads its dataset by role (``meta.layer("label")``, ``meta.layer("image", modality=...)``),
so any source honouring the dataset contract (synthetic, local files, the released layouts) feeds it.
The paper's framework per task and its random-crop rule are the defaults; both are config.
"""

from __future__ import annotations

from dataclasses import dataclass

# the scores every table reports, mean ± std over repeats (spec §8)
SCORES = ("OA", "AA", "mIoU", "mF1")
# smp architectures whose reference crop is 480 (the others, DeepLabV3+ and PSPNet, crop 496), §7
CROP_480 = frozenset({"unet", "fpn", "linknet", "unetplusplus", "manet"})


@dataclass(frozen=True)
class Task:
    """One downstream task: its dataset, label schema, splits and the paper's model."""

    name: str
    dataset: str
    schema: str
    classes: int
    framework: str
    ignore_index: int | None
    train_split: str
    test_split: str
    random_crop: bool  # DW and OSM crop the 510/512 tiles; DFC2020 trains on whole 256 patches
    title: str

    def paper_crop(self, framework: str) -> int | None:
        """The reference's crop for ``framework``: 480 or 496 on DW/OSM, none on DFC2020 (§7)."""
        if not self.random_crop:
            return None
        return 480 if framework.lower() in CROP_480 else 496


TASKS: dict[str, Task] = {
    "dfc2020": Task("dfc2020", "dfc2020", "dfc2020", 8, "pspnet", None, "validation", "test", False,
                    "Table II: DFC2020"),
    "dw": Task("dw", "dw", "dw", 9, "deeplabv3plus", 255, "train", "test", True, "Table III: SSL4EO-S12@DW"),
    "osm": Task("osm", "osm", "osm", 13, "fpn", 255, "train", "test", True, "Table IV: SSL4EO-S12@OSM"),
}


def task(name: str) -> Task:
    """The task ``name``; an unknown name fails listing the known ones."""
    if name not in TASKS:
        raise ValueError(f"unknown fine-tuning task {name!r}; expected one of {sorted(TASKS)}")
    return TASKS[name]
