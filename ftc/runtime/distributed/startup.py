"""Start-up of a fresh runtime process: the heavy imports made cheaper, before any of them happens.

Two costs are avoidable, together about 1.5 s of CPU before the first step:

- bitsandbytes registers its kernels through torch._dynamo when imported (about 1 s here), and peft and
  transformers import it whenever it is installed. A run that quantizes nothing and uses no 8-bit
  optimizer never calls it, so for such a run the process records it as absent: their availability
  checks say no and nothing loads it.
- Python's cyclic collector walks every object that torch's import built, again at every full
  collection while transformers, peft and trl import after it (about 0.5 s). torch's modules live as
  long as the process, so they are frozen out of the collector once torch is in.

Only a fresh process may decide either: in a process that imported these libraries before (a test
running stages in-process), their cached availability answers would disagree with what we record.
"""

from __future__ import annotations

import gc
import sys

from ftc.install.extras import needs_bitsandbytes
from ftc.spec.models import Spec


def prepare_fresh_process(spec: Spec) -> None:
    if not needs_bitsandbytes(spec):
        sys.modules.setdefault("bitsandbytes", None)  # import fails, find_spec answers None
    import torch  # noqa: F401

    gc.freeze()
