"""`ftc import`: another tool's training config, key by key into an ftc spec (one module per tool)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ftc.errors import FtcError
from ftc.fs import atomic_write_text
from ftc.importers import axolotl, llamafactory
from ftc.importers.core import Import, read_yaml, render


@dataclass(frozen=True)
class Importer:
    name: str  # as typed after `ftc import`
    tool: str  # as written in the header and messages
    run: Callable[[Import], None]


IMPORTERS: dict[str, Importer] = {
    importer.name: importer
    for importer in (
        Importer("llamafactory", llamafactory.TOOL, llamafactory.import_config),
        Importer("axolotl", axolotl.TOOL, axolotl.import_config),
    )
}


@dataclass(frozen=True)
class Imported:
    text: str  # the spec as written
    job: Import


def import_config(
    name: str, file: Path, output: Path, dataset_info: Path | None = None, world_size: int = 1
) -> Imported:
    """The spec text for `file`, or an FtcError naming the key (and its line) that cannot be mapped."""
    importer = IMPORTERS[name]
    job = Import(read_yaml(file), options={"output": output, "dataset_info": dataset_info, "world_size": world_size})
    importer.run(job)
    return Imported(render(job, importer.tool), job)


def write_import(
    name: str,
    file: Path,
    output: Path,
    dataset_info: Path | None,
    world_size: int,
    force: bool,
    output_format: str,
) -> int:
    from ftc.spec import SpecError, parse_spec

    if output.exists() and not force:
        raise FtcError(f"{output} exists", "name another file with -o, or pass --force to replace it")
    imported = import_config(name, file, output, dataset_info, world_size)
    problems: list[str] = []
    try:
        parse_spec(imported.text, str(output))
    except SpecError as error:
        problems = [diagnostic.format() for diagnostic in error.diagnostics]
    atomic_write_text(output, imported.text)
    unmapped = [{"key": key, "why": why} for key, _, why in imported.job.unmapped]
    if output_format == "json":
        report = {"written": str(output), "source": str(file), "sha256": imported.job.source.sha256}
        report |= {"notes": imported.job.notes, "unmapped": unmapped, "problems": problems}
        print(json.dumps(report, indent=2))
    else:
        print(f"wrote {output} from {file}")
        for note in imported.job.notes:
            print(f"  note: {note}")
        if unmapped:
            print(f"{len(unmapped)} key(s) with no equivalent, left as comments:")
            for entry in unmapped:
                print(f"  {entry['key']}: {entry['why']}")
        if problems:
            print("the written spec does not validate; fix these in it:")
            for problem in problems:
                print(f"  {problem}")
        else:
            print(f"next: ftc validate {output} && ftc plan {output} --hardware ...")
    return 1 if problems else 0
