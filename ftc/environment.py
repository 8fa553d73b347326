"""The environment variables a run reads, by name. Their values never enter a file ftc writes;
the lockfile records the names so that a run that needs a token says so before it starts."""

from __future__ import annotations

from ftc.compiler.plan import Plan
from ftc.spec.models import Spec

# Read by the Hugging Face libraries whatever the spec says: credentials, cache and offline switches.
HUB_VARIABLES = ("HF_TOKEN", "HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
BACKEND_VARIABLES = {
    "cuda": ("CUDA_VISIBLE_DEVICES",),
    "npu": ("ASCEND_RT_VISIBLE_DEVICES",),
    "cpu": (),
}


def environment_names(spec: Spec, plan: Plan) -> list[str]:
    names = [*HUB_VARIABLES, *BACKEND_VARIABLES.get(str(plan.backend.value), ())]
    return sorted(set(names))
