"""The spec editor's work: apply the form's edits to the TOML text, validate and plan it as the CLI does,
save it, and launch it through `ftc launch` itself.

The form's edits are `--set`-style `KEY=VALUE` texts typed by the schema as `--set` types them; they are written
into the user's TOML with tomlkit, which keeps the comments and layout the user wrote around them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from ftc.board.paths import OutsideFolder, inside, shown, spec_file
from ftc.board.runs import find_run_folders, log_file
from ftc.errors import FtcError, RuntimeUserError
from ftc.fs import atomic_write_text
from ftc.spec import SpecError
from ftc.spec.compose import Override, parse_override, typed_value
from ftc.spec.diagnostics import Code, Diagnostic
from ftc.spec.loader import LoadedSpec, expects_text, load_spec, read_spec_text

MAX_DEPTH = 6
# A launch that fails its checks does so at once; one still running after this has started its run.
LAUNCH_SETTLE_S = 3.0


def list_specs(root: Path) -> list[str]:
    """The .toml files under the board's folder that the editor may open: not run folders' resolved specs."""
    runs = set(find_run_folders(root))
    found = []
    base_depth = len(root.resolve().parts)
    for folder, children, files in os.walk(root.resolve()):
        here = Path(folder)
        if here in runs:
            children[:] = []
            continue
        children[:] = sorted(c for c in children if not c.startswith(".") and len(here.parts) - base_depth < MAX_DEPTH)
        found += [shown(root, here / name) for name in sorted(files) if name.endswith(".toml")]
    return found


def apply_edits(text: str, edits: list[str]) -> str:
    """`edits` (KEY=VALUE; an empty VALUE removes the key) written into the TOML text, comments kept."""
    import tomlkit

    document = tomlkit.parse(text)
    for edit in edits:
        override = parse_override(edit)
        *parents, last = override.path
        node: Any = document
        for depth, part in enumerate(parents):
            if isinstance(part, int):
                node = node[part]
                continue
            if part not in node:
                if not override.raw:
                    break  # removing a key whose table is absent: nothing to do
                node[part] = tomlkit.table() if not isinstance(override.path[depth + 1], int) else tomlkit.aot()
            node = node[part]
        else:
            if not override.raw:
                if last in node:
                    del node[last]
            else:
                node[last] = _toml_item(override)
    return tomlkit.dumps(document)


def _toml_item(override: Override) -> Any:
    """The value typed as `--set` types it; a TOML value keeps the spelling typed (1e-4 stays 1e-4)."""
    import tomlkit

    value = typed_value(override, expects_text)
    if isinstance(value, str) and value == override.raw:
        return value
    return tomlkit.parse(f"value = {override.raw}")["value"]


def _reader(path: Path, text: str):
    """Files as load_spec reads them, but the edited spec's text from the page (the files it extends from disk)."""

    def read(asked: Path) -> str:
        return text if asked.resolve() == path else read_spec_text(asked)

    return read


def _values(text: str, loaded: LoadedSpec | None) -> dict[str, Any]:
    if loaded is not None:
        return loaded.document
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


def check(root: Path, name: str, text: str, hardware: str, nodes: int = 1, edits: list[str] = ()) -> dict[str, Any]:
    """The page's answer to every edit: the (edited) text, its problems at their keys, the values the form
    shows, and the plan for `hardware` (or why there is none)."""
    from ftc.cli.app import plan_for

    path = spec_file(root, name)
    diagnostics: list[Diagnostic] = []
    if edits:
        try:
            text = apply_edits(text, list(edits))
        except SpecError as error:
            diagnostics += error.diagnostics
        except Exception as error:  # noqa: BLE001 - tomlkit's parse and key errors: the text is shown as it is
            diagnostics.append(Diagnostic(name, 0, 0, "", f"the edit was not applied: {error}", code=Code.INVALID))
    loaded = None
    try:
        loaded = load_spec(path, read=_reader(path, text))
    except SpecError as error:
        diagnostics += error.diagnostics
    answer: dict[str, Any] = {
        "path": shown(root, path),
        "text": text,
        "diagnostics": [_located(root, diagnostic) for diagnostic in diagnostics],
        "values": _values(text, loaded),
        "plan": None,
        "plan_error": None,
    }
    if loaded is None or diagnostics:
        return answer
    try:
        plan = plan_for(loaded, hardware, nodes)
    except (FtcError, RuntimeUserError) as error:
        answer["plan_error"] = {"message": error.message, "hint": error.hint}
        return answer
    answer["plan"] = {"hardware_label": plan.hardware.label(), **plan.to_dict()}
    return answer


def _located(root: Path, diagnostic: Diagnostic) -> dict[str, Any]:
    found = diagnostic.to_dict()
    try:
        found["file"] = shown(root, Path(diagnostic.file))
    except ValueError:  # a file the spec extends from outside the folder: named as written
        pass
    return found


def read_spec(root: Path, name: str) -> str:
    path = spec_file(root, name)
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def save(root: Path, name: str, text: str) -> str:
    """Write the text as it is (the user's comments and layout with it), only inside the board's folder."""
    path = spec_file(root, name)
    atomic_write_text(path, text)
    return shown(root, path)


def launch(root: Path, name: str, hardware: str, nodes: int, target: str, overwrite: bool) -> dict[str, Any]:
    """`ftc launch` on the saved spec, with the CLI's own checks: it runs as a child whose output is logged in the
    board's folder. Refused before it starts when the run folder would be outside the board's folder."""
    from ftc.cli.app import plan_for
    from ftc.targets import target_record
    from ftc.targets.prepare import make_job

    path = spec_file(root, name)
    target_record(target)
    loaded = load_spec(path)
    job = make_job(loaded, plan_for(loaded, hardware, nodes))  # refuses a plan that does not fit, a missing input
    try:
        run_dir = inside(root, str(job.run_dir))
    except OutsideFolder:
        raise FtcError(
            f"output.dir {job.run_dir} is outside the board's folder {root}",
            "set output.dir to a folder inside it; the board writes nowhere else",
        ) from None
    command = [sys.executable, "-m", "ftc", "launch", str(path), "--target", target, "--hardware", hardware]
    command += ["--nodes", str(nodes)] + (["--overwrite"] if overwrite else [])
    log = log_file(root, run_dir)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as output:
        # A session of its own: the run outlives the board, and the board's Ctrl-C does not reach it.
        child = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + LAUNCH_SETTLE_S
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    said = log.read_text(encoding="utf-8", errors="replace")
    if child.returncode not in (None, 0):
        raise FtcError(f"ftc launch exited with status {child.returncode}", said.strip()[-2000:] or None)
    return {"run": shown(root, run_dir), "pid": child.pid, "output": said[-4000:]}
