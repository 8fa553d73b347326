#!/usr/bin/env bash
# Try ftc on the newest releases its pyproject.toml ranges allow, in a throwaway virtualenv:
# the quickstart and the fast tests (-m "not slow"), then a table of package, tested pin, newest, result.
# This is how constraints.txt moves forward: when everything passes, the frozen set is written to
# constraints.newest.txt; review it, run the whole suite with it, and move it over ftc/constraints.txt.
#
#   scripts/check-newest.sh [--keep] [--all-tests] [--unbounded]
#
# --unbounded drops pyproject.toml's upper bounds (not torch's): the newest releases of all, to see whether
# a bound can move up.
#
# torch stays at its tested pin: which build a machine takes (CPU, CUDA) is the machine's choice, and an
# unpinned torch would pull gigabytes of CUDA wheels onto a CPU machine.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

keep=0
unbounded=0
markers=(-m "not slow")
for option in "$@"; do
    case "$option" in
        --keep) keep=1 ;;
        --all-tests) markers=() ;;
        --unbounded) unbounded=1 ;;
        *) echo "usage: scripts/check-newest.sh [--keep] [--all-tests] [--unbounded]" >&2; exit 2 ;;
    esac
done

work=$(mktemp -d "${TMPDIR:-/tmp}/ftc-newest.XXXXXX")
[ "$keep" = 1 ] || trap 'rm -rf "$work"' EXIT
echo "throwaway environment: $work"

torch_pin=$(grep -E '^torch==' ftc/constraints.txt)
echo "$torch_pin" > "$work/torch-only.txt"

python3 -m venv "$work/venv" && . "$work/venv/bin/activate" || exit 1
step() { echo "== $1"; }
step "install: $torch_pin, then ftc with the newest releases $([ "$unbounded" = 1 ] && echo "of all" || echo "its ranges allow")"
if [ "$unbounded" = 1 ]; then
    # The declared requirements without their upper bounds, installed first; ftc itself then adds nothing.
    python - >"$work/unbounded.txt" <<'PY'
import re
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
for text in [*project["dependencies"], *extras["train"], *extras["test"]]:
    text = text.split(";")[0].strip()
    print(text if text.startswith("torch") else re.sub(r",?\s*<[^,]*", "", text))
PY
    pip install -q "$torch_pin" >"$work/install.log" 2>&1 &&
        pip install -q --upgrade -c "$work/torch-only.txt" -r "$work/unbounded.txt" >>"$work/install.log" 2>&1 &&
        pip install -q --no-deps -e . >>"$work/install.log" 2>&1
else
    pip install -q "$torch_pin" >"$work/install.log" 2>&1 &&
        pip install -q --upgrade --upgrade-strategy eager -c "$work/torch-only.txt" -e '.[train,test]' \
            >>"$work/install.log" 2>&1
fi
install_status=$?
if [ $install_status -ne 0 ]; then
    tail -20 "$work/install.log"
    echo "the newest allowed set does not install (see above)"
    exit 1
fi

step "quickstart"
(cd "$work" && ftc quickstart --steps 20 >quickstart.log 2>&1)
quickstart_status=$?
tail -3 "$work/quickstart.log"

step "tests ${markers[*]:-(all)}"
# Tests that expect the tested set installed (ftc doctor's own check) read this and expect the differences.
FTC_TRYING_NEWEST=1 python -m pytest -q -p no:cacheprovider "${markers[@]}" -x >"$work/tests.log" 2>&1
tests_status=$?
tail -3 "$work/tests.log"

pip freeze --exclude-editable 2>/dev/null | grep -v '^#' >"$work/freeze.txt"

QUICKSTART=$quickstart_status TESTS=$tests_status FREEZE="$work/freeze.txt" ROOT="$root" python - <<'PY'
import os
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            found[canonicalize_name(name)] = version.strip()
    return found


root = Path(os.environ["ROOT"])
tested, newest = pins(root / "ftc" / "constraints.txt"), pins(Path(os.environ["FREEZE"]))
project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
declared = [*project["dependencies"], *project["optional-dependencies"]["train"], *project["optional-dependencies"]["test"]]
direct = sorted({canonicalize_name(Requirement(text).name) for text in declared})
passed = os.environ["QUICKSTART"] == "0" and os.environ["TESTS"] == "0"


def result(name: str) -> str:
    old, new = tested.get(name), newest.get(name)
    if new is None:
        return "not installed"
    if old is None:
        return "new dependency"
    if Version(re.sub(r"\+.*", "", new)) == Version(old):
        return "same"
    return "newer: passes" if passed else "newer: suite fails"


rows = [(name, tested.get(name, "-"), newest.get(name, "-"), result(name)) for name in direct]
others = sorted(set(newest) - set(direct))
moved = [name for name in others if tested.get(name) and Version(re.sub(r"\+.*", "", newest[name])) != Version(tested[name])]
widths = [max(len(row[i]) for row in [("package", "tested", "newest", "result"), *rows]) for i in range(4)]
for row in [("package", "tested", "newest", "result"), *rows]:
    print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
print(f"and {len(others)} indirect packages, {len(moved)} of them at a newer release: {', '.join(moved) or 'none'}")
print(f"quickstart: {'passed' if os.environ['QUICKSTART'] == '0' else 'FAILED'}; tests: {'passed' if os.environ['TESTS'] == '0' else 'FAILED'}")
PY

if [ $quickstart_status -eq 0 ] && [ $tests_status -eq 0 ]; then
    { sed -n '/^#/p' ftc/constraints.txt; sed "s/^torch==.*/$torch_pin/" "$work/freeze.txt" | sort -f; } >constraints.newest.txt
    echo "every check passed: the newest set is in constraints.newest.txt (run the whole suite with it, then move it over ftc/constraints.txt)"
    exit 0
fi
echo "something failed: the logs are kept in $work"
[ "$keep" = 1 ] || trap - EXIT
exit 1
