"""The environment variables a run reads, by name. Their values never enter a file ftc writes;
the lockfile records the names so that a run that needs a token says so before it starts."""

from __future__ import annotations

from ftc.compiler.plan import Plan
from ftc.devices.backends import BACKENDS
from ftc.spec.models import Spec

# Read by the Hugging Face libraries whatever the spec says: credentials, cache and offline switches.
HUB_VARIABLES = ("HF_TOKEN", "HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
# Read by the device backend: the variable that picks a node's devices.
BACKEND_VARIABLES = {
    backend.name: (backend.visible_devices,) if backend.visible_devices else () for backend in BACKENDS.values()
}


# Read by a monitor's client library when the spec reports to it.
MONITOR_VARIABLES = {
    "tensorboard": (),
    "wandb": ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_ENTITY"),
    "mlflow": ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"),
}


def environment_names(spec: Spec, plan: Plan) -> list[str]:
    names = [*HUB_VARIABLES, *BACKEND_VARIABLES.get(str(plan.backend.value), ()), *spec.launch.secrets]
    for monitor in spec.monitor.report_to:
        names += MONITOR_VARIABLES.get(monitor, ())
    return sorted(set(names))
