"""The data step of `ftc launch`: every record read and checked before the run folder exists, and where the
target runs on this machine, prepared into the cache in the same pass (`TargetRecord.prepares_data`).

Preparing here means the files are read once: the check parses each record, the preparation encodes what
it parsed, and the runtime memory-maps the result. A cache entry that is already there was made from these
very files (its key hashes them), so then nothing is read at all. Elsewhere (Slurm's login node, a
container) the check streams through the files and the run's first rank prepares on its own machine.
"""

from __future__ import annotations

from importlib.util import find_spec

from ftc.cli.output import console
from ftc.data_cache.entries import complete
from ftc.data_cache.key import entry_of, prepared_key
from ftc.errors import FtcError, RuntimeUserError
from ftc.models.lookup import images_refused
from ftc.records.check import require_good_data
from ftc.spec.models import Spec


def check_and_prepare(spec: Spec, prepare: bool) -> None:
    """Check the data (a bad record stops the launch, listed with the others); prepare it when asked and the
    stage's rows are ours to cache. Prints one line for each."""
    key = prepared_key(spec) if prepare and find_spec("transformers") is not None else None
    if key is not None and not key.uncached and complete(entry_of(spec, key)):
        console().print(f"data: prepared already, from these same files (cache hit: {entry_of(spec, key)})")
        return
    check = require_good_data(
        spec.data,
        keep=key is not None and not key.uncached,
        stage=spec.train.stage,
        model_no_images=images_refused(spec),
    )
    console().print(check.summary(), markup=False)
    if check.parsed is None:
        return
    from ftc.runtime.data.prepared import preparation_line, prepare_at_launch

    try:
        prepared = prepare_at_launch(spec, check.parsed)
    except RuntimeUserError as error:
        raise FtcError(error.message, error.hint) from None
    for line in [*prepared.lines, preparation_line(prepared.report)]:
        console().print(line, markup=False)
