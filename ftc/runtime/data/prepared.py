"""Prepared rows for the token stages, from the cache when an earlier run (or rank, or the launch) made them.

The key (`ftc.data_cache.key`) names an entry folder under the cache root. A hit memory-maps its Arrow
files: no record is read, nothing is tokenized. A miss prepares the rows, writes them under a temporary
name and renames the folder when it is complete, so a killed preparation leaves nothing a later run reads.

Every process of a run asks at once; a file lock beside the entry lets one prepare while the others
wait and then read what it wrote. On a cluster the cache root should be a folder every node sees
(data.cache_dir): then one rank of the whole job prepares. Where the lock is not shared (a node-local
cache), each node prepares once.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftc import __version__
from ftc.data_cache.entries import LOCK, META, TEMPORARY, complete
from ftc.data_cache.key import PreparedKey, entry_of, prepared_key
from ftc.errors import RuntimeUserError
from ftc.records.collector import collector_paused
from ftc.runtime.data.rows import PreparedRows
from ftc.runtime.data.token_rows import TokenRows
from ftc.spec.models import Spec

TRAIN, EVALUATED = "train.arrow", "eval.arrow"


@dataclass(frozen=True)
class PreparedData:
    train: Any  # a datasets.Dataset, memory-mapped from the cache or held in memory
    evaluated: Any | None
    lines: list[str]
    report: dict[str, Any]  # for metrics.json: seconds, records, records_per_s, cache


def prepared_data(
    spec: Spec, prepare: Callable[[], PreparedRows], key: PreparedKey | None = None, open_rows: bool = True
) -> PreparedData:
    """The run's rows, from its cache entry or prepared now (and kept, unless the key says it cannot be).
    Without `open_rows` (the launch, which only fills the cache) train and evaluated are None."""
    started = time.perf_counter()
    key = key or prepared_key(spec)
    if key.uncached:
        prepared = prepare()
        train, evaluated = _in_memory(prepared.train), _in_memory(prepared.evaluated)
        report = _report("off", key, key.uncached, prepared.records, len(train), started)
        return PreparedData(train, evaluated, prepared.lines, report)
    entry = entry_of(spec, key)
    made = not complete(entry) and _prepare_once(entry, key, spec, prepare)
    try:
        meta = json.loads((entry / META).read_text(encoding="utf-8"))
        os.utime(entry / META)  # `ftc cache prune --older-than` goes by last use
        opened = (_memory_mapped(entry / TRAIN), _memory_mapped(entry / EVALUATED)) if open_rows else (None, None)
    except Exception as error:  # noqa: BLE001 (a damaged entry, whatever broke it, is prepared again)
        if made:
            raise
        print(f"warning: the cache entry {entry} cannot be read ({error}); preparing the data again", flush=True)
        shutil.rmtree(entry, ignore_errors=True)
        return prepared_data(spec, prepare, key, open_rows)
    report = _report("miss" if made else "hit", key, str(entry), meta["records"], meta["rows"], started)
    return PreparedData(*opened, meta["lines"], report)


def _prepare_once(entry: Path, key: PreparedKey, spec: Spec, prepare: Callable[[], PreparedRows]) -> bool:
    """Prepare and write the entry unless another process does it first; whether this one did."""
    from filelock import FileLock

    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(entry.parent / f"{key.digest}{LOCK}"))
        lock.acquire()
    except OSError as error:
        raise RuntimeUserError(
            f"the prepared-data cache {entry.parent} cannot be written: {error}",
            "set data.cache_dir (or FTC_CACHE) to a writable folder, or data.cache = false",
        ) from None
    try:
        if complete(entry):
            return False
        started = time.perf_counter()
        prepared = prepare()
        write_entry(entry, key, spec, prepared, time.perf_counter() - started)
        return True
    finally:
        lock.release()


def write_entry(entry: Path, key: PreparedKey, spec: Spec, prepared: PreparedRows, seconds: float) -> None:
    """Arrow files and meta.json in a temporary folder, renamed to the entry once all are on disk."""
    temporary = entry.parent / f"{TEMPORARY}{entry.name}-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    try:
        _write_arrow(temporary / TRAIN, prepared.train)
        if prepared.evaluated is not None:
            _write_arrow(temporary / EVALUATED, prepared.evaluated)
    except OSError as error:  # a full disk, say: nothing half-written is left behind
        shutil.rmtree(temporary, ignore_errors=True)
        raise RuntimeUserError(
            f"the prepared data could not be written to {entry.parent}: {error}",
            "free space there, set data.cache_dir (or FTC_CACHE) elsewhere, or data.cache = false",
        ) from None
    meta = {
        "key": key.digest,
        "ftc": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "stage": spec.train.stage,
        "datasets": [dataset.path for dataset in spec.data.datasets],
        "records": prepared.records,
        "rows": len(prepared.train),
        "eval_rows": 0 if prepared.evaluated is None else len(prepared.evaluated),
        "tokens": prepared.train.tokens,
        "seconds": round(seconds, 3),
        "lines": prepared.lines,
        "parts": key.parts,
    }
    (temporary / META).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    try:
        os.rename(temporary, entry)
    except OSError:  # another node wrote the same entry meanwhile (a lock not shared between nodes)
        shutil.rmtree(temporary, ignore_errors=True)
        if not complete(entry):
            raise


def _write_arrow(path: Path, rows: TokenRows) -> None:
    import pyarrow as pa

    table = rows.to_arrow()
    # The IPC stream format is what `datasets` memory-maps (Dataset.from_file).
    with path.open("wb") as sink:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=65536)
        sink.flush()
        os.fsync(sink.fileno())  # on disk before the rename makes the entry visible


def _memory_mapped(path: Path) -> Any:
    if not path.is_file():
        return None
    from datasets import Dataset

    return Dataset.from_file(str(path), in_memory=False)


def _in_memory(rows: TokenRows | None) -> Any:
    if rows is None:
        return None
    from datasets import Dataset
    from datasets.table import InMemoryTable

    return Dataset(InMemoryTable(rows.to_arrow()))


def _report(cache: str, key: PreparedKey, where: str, records: int, rows: int, started: float) -> dict[str, Any]:
    seconds = time.perf_counter() - started
    return {
        "cache": cache,  # hit, miss (prepared now and kept) or off
        "cache_key": key.digest or None,
        "where": where,  # the entry, or why nothing is cached
        "records": records,
        "rows": rows,
        "seconds": round(seconds, 3),
        "records_per_s": round(records / seconds) if seconds > 0 else None,
    }


def token_stage_data(spec: Spec, tokenizer: Any, stream: Callable[[], Any]) -> PreparedData:
    """What a token stage (pt, sft) trains and evaluates on, said in a few lines: its records encoded as its
    recipe says (`ftc.runtime.data.recipes`), from the cache or prepared now; or with data.streaming, `stream()`
    read while training runs, and only the held-out records encoded now."""
    from ftc.runtime.data.loading import training_records
    from ftc.runtime.data.recipes import recipe_of
    from ftc.runtime.data.streaming import describe_stream

    recipe = recipe_of(spec)
    if not spec.data.streaming:
        return _said(prepared_data(spec, lambda: prepare_token_rows(spec, tokenizer)))
    started = time.perf_counter()
    _, held_out = training_records(spec.data, recipe.item, spec.train.seed)
    evaluated = recipe.encode(tokenizer, held_out, spec).rows if held_out else None
    lines = [describe_stream(spec.data)]
    if evaluated is not None:
        lines.append(f"evaluation: {len(evaluated)} held-out examples, at every logging step")
    key = PreparedKey("", {}, "data.streaming reads and encodes records while training runs")
    report = _report("off", key, key.uncached, len(held_out), 0, started)
    return _said(PreparedData(stream(), _in_memory(evaluated), lines, report))


def prepare_at_launch(spec: Spec, parsed: dict[str, list[tuple[str, Any]]]) -> PreparedData:
    """The rows the run will read, prepared into the cache by `ftc launch` from the records its data check
    parsed (`DataCheck.parsed`): the files are read once, and the runtime memory-maps the result."""
    from ftc.runtime.data.recipes import stage_tokenizer

    tokenizer = stage_tokenizer(spec)  # loaded first: the report times the preparation, not the import
    return prepared_data(spec, lambda: prepare_token_rows(spec, tokenizer, parsed), open_rows=False)


def prepare_token_rows(
    spec: Spec, tokenizer: Any, parsed: dict[str, list[tuple[str, Any]]] | None = None
) -> PreparedRows:
    """The stage's rows prepared now, as its recipe says: its records read (or taken from `parsed`, what the
    launch check parsed), encoded, described, and packed where asked."""
    from ftc.runtime.data.loading import training_records
    from ftc.runtime.data.recipes import recipe_of
    from ftc.runtime.data.rows import prepare_rows

    recipe = recipe_of(spec)
    with collector_paused():
        records, held_out = training_records(spec.data, recipe.item, spec.train.seed, parsed)
        return prepare_rows(
            spec.data,
            records,
            held_out,
            encode=lambda items: recipe.encode(tokenizer, items, spec),
            describe=lambda encoded: recipe.describe(encoded, tokenizer, spec),
        )


def preparation_line(report: dict[str, Any]) -> str:
    return (
        f"data prepared in {report['seconds']:.2f} s ({report['records']:,} records; cache {report['cache']}: "
        f"{report['where']})"
    )


def _said(data: PreparedData) -> PreparedData:
    for line in [*data.lines, preparation_line(data.report)]:
        print(line, flush=True)
    return data
