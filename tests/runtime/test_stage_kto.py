"""KTO on unpaired examples (real answers desirable, refusals undesirable): the reward gap between them opens."""

from __future__ import annotations

import json

import pytest

from ftc.quickstart.tiny import write_tiny_kto
from tests.tiny_runs import cpu_plan, series, tiny_spec


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "lora"])
def test_kto_rewards_desirable_completions_above_undesirable_ones(tmp_path, train_stage, method):
    data = write_tiny_kto(tmp_path / "kto.json", n=96)
    assert {record["label"] for record in json.loads(data.read_text())} == {True, False}
    metrics = train_stage(
        tmp_path / "run", data, "kto", stage="kto", method=method,
        sections={"preference": {"desirable_weight": 1.0, "undesirable_weight": 1.0}},
    )  # fmt: skip

    margins = series(metrics, "reward_margin")  # desirable − undesirable, over the batch
    assert (metrics["stage"], metrics["method"]) == ("kto", method)
    assert len(margins) >= 10  # logged whenever a batch holds both kinds
    assert margins[0] == pytest.approx(0.0, abs=1e-4)  # the untrained policy is its own reference
    assert sum(margins[-3:]) / 3 > 0.3, margins
    assert (tmp_path / "run" / "rewards.png").is_file() and (tmp_path / "run" / "margin.png").is_file()


def test_kto_refuses_a_micro_batch_of_one_before_loading_anything(tmp_path, tiny_model_dir, run_folder):
    from dataclasses import replace

    from ftc.compiler.plan import Decision
    from ftc.errors import RuntimeUserError
    from ftc.runs.folder import load_run_folder
    from ftc.runtime.stages import kto

    plan = replace(cpu_plan(), micro_batch_size=Decision(1, "fixed by the test"))
    data = write_tiny_kto(tmp_path / "kto.json", n=8)
    run_dir = run_folder(tiny_spec(tmp_path / "run", tiny_model_dir, data, "kto", stage="kto"), plan)
    with pytest.raises(RuntimeUserError, match="KL term from the other examples of a micro-batch") as caught:
        kto.run(load_run_folder(run_dir))
    assert "ftc plan" in caught.value.hint
    assert not (run_dir / "metrics.json").exists()
