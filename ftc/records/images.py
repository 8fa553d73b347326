"""Image files a record names: where they are, and whether Pillow can read them.

Checked with the records, before anything is written, so that a missing or unreadable image is reported
with its record like any other bad record. Pillow is imported only when a record names an image.
"""

from __future__ import annotations

from pathlib import Path


def image_path(name: str, dataset_file: Path, media_dir: str | None = None) -> Path:
    """An image as a record names it: absolute, or relative to data.media_dir (resolved), else to the dataset
    file's folder."""
    path = Path(name).expanduser()
    return path if path.is_absolute() else (Path(media_dir) if media_dir else dataset_file.parent) / path


def image_problem(path: Path) -> str | None:
    """What keeps Pillow from reading the image at `path`, or None when it reads."""
    if not path.is_file():
        return "does not exist" if not path.exists() else "is not a file"
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()  # reads the whole file: a truncated one fails here, not in the middle of training
    except UnidentifiedImageError:
        return "is not an image format Pillow reads (PNG, JPEG, WebP, GIF, BMP, TIFF …)"
    except (OSError, SyntaxError, ValueError) as error:  # Pillow reports a damaged file with any of these
        return f"cannot be read: {error}"
    return None
