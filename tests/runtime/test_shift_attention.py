"""train.shift_attention: LongLoRA's shifted sparse attention as a registered attention function, checked against
an explicitly masked reference; tiny runs that train with it and save a model with its usual attention; the
spec's and the plan's refusals."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from ftc.compiler import compile_plan, parse_hardware
from ftc.compiler.architectures import architecture_from_config
from ftc.errors import FtcError, RuntimeUserError
from ftc.quickstart.tiny import write_tiny_alpaca, write_tiny_texts
from ftc.runtime.data.packing import PackedCollator, PaddingCollator
from ftc.runtime.model import shift_attention
from ftc.runtime.model.shift_attention import ATTENTION_NAME, check_model_takes_it, shifted_sparse_attention
from ftc.spec import parse_spec
from ftc.spec.models import Spec
from tests.specs import VALID, as_dpo, refusal, replace
from tests.tiny_runs import SHORT, cpu_plan, series, tiny_spec

HEADS, KV_HEADS, LENGTH, DIM = 4, 2, 16, 8
SHIFT = ("seed = 42", "seed = 42\nshift_attention = true")


def attention_inputs(batch: int = 2, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, HEADS, LENGTH, DIM, generator=generator)
    k, v = (torch.randn(batch, KV_HEADS, LENGTH, DIM, generator=generator) for _ in range(2))
    return q, k, v


def training_module(training: bool = True):
    return SimpleNamespace(training=training, num_key_value_groups=HEADS // KV_HEADS, is_causal=True)


def reference(q, k, v, group: int | None, keep=None):
    """Softmax attention head by head over an explicit mask: causal, within the head's group (the second half of
    the heads' groups start half a group later, wrapping round), not on padding (`keep`), and always itself."""
    k, v = (tensor.repeat_interleave(HEADS // KV_HEADS, dim=1) for tensor in (k, v))
    place = torch.arange(LENGTH)
    outputs = []
    for head in range(HEADS):
        allowed = place[None, :] <= place[:, None]
        if group is not None:
            shift = group // 2 if head >= HEADS // 2 else 0
            which = ((place - shift) % LENGTH) // group
            allowed = allowed & (which[:, None] == which[None, :])
        allowed = allowed.expand(q.shape[0], LENGTH, LENGTH)
        if keep is not None:
            allowed = allowed & keep[:, None, :]
        allowed = allowed | torch.eye(LENGTH, dtype=torch.bool)
        scores = q[:, head] @ k[:, head].transpose(-1, -2) / DIM**0.5
        outputs.append(scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v[:, head])
    return torch.stack(outputs, dim=2)  # [batch, seq, heads, dim], as transformers' attention functions return


def test_a_group_as_long_as_the_row_is_full_attention_and_shorter_groups_are_not():
    q, k, v = attention_inputs()
    full = reference(q, k, v, group=None)
    for shift in (False, True):  # shifted by half the row, judged by place: still every earlier token
        whole, _ = shifted_sparse_attention(training_module(), q, k, v, None, group=LENGTH, shift=shift)
        torch.testing.assert_close(whole, full)
    grouped, _ = shifted_sparse_attention(training_module(), q, k, v, None, group=4)
    assert (grouped - full).abs().max() > 0.1


@pytest.mark.parametrize("group", [2, 4, 8])
def test_each_token_attends_only_within_its_group_and_half_the_heads_are_shifted(group):
    q, k, v = attention_inputs()
    grouped, _ = shifted_sparse_attention(training_module(), q, k, v, None, group=group)
    torch.testing.assert_close(grouped, reference(q, k, v, group))
    # the unshifted heads alone: the first half matches, the shifted half does not
    unshifted, _ = shifted_sparse_attention(training_module(), q, k, v, None, group=group, shift=False)
    torch.testing.assert_close(unshifted[:, :, : HEADS // 2], grouped[:, :, : HEADS // 2])
    assert (unshifted[:, :, HEADS // 2 :] - grouped[:, :, HEADS // 2 :]).abs().max() > 0.1


def test_a_value_outside_a_tokens_group_does_not_reach_it():
    q, k, v = attention_inputs(batch=1)
    v = v.clone().requires_grad_()
    out, _ = shifted_sparse_attention(training_module(), q, k, v, None, group=4)
    out[0, 9].sum().backward()  # token 9: group 8-11 in the first heads, 6-9 in the shifted ones
    reached = v.grad[0].abs().sum(dim=-1) > 0  # [kv heads, seq]
    assert reached[0].nonzero().flatten().tolist() == [8, 9]  # kv head 0 serves the unshifted heads
    assert reached[1].nonzero().flatten().tolist() == [6, 7, 8, 9]


def test_the_models_padding_mask_is_grouped_with_the_rows():
    from transformers.masking_utils import sdpa_mask

    q, k, v = attention_inputs()
    keep = torch.ones(2, LENGTH, dtype=torch.bool)
    keep[1, 11:] = False  # the second row is right-padded after 11 tokens
    mask = sdpa_mask(batch_size=2, q_length=LENGTH, kv_length=LENGTH, attention_mask=keep, allow_is_causal_skip=False)
    out, _ = shifted_sparse_attention(training_module(), q, k, v, mask, group=4)
    assert not out.isnan().any()  # a query whose group is all padding still sees itself
    expected = reference(q, k, v, group=4, keep=keep)
    torch.testing.assert_close(out[0], expected[0])
    torch.testing.assert_close(out[1, :11], expected[1, :11])  # padding's own outputs feed no loss


def test_outside_training_and_with_a_cache_it_is_full_attention():
    q, k, v = attention_inputs()
    evaluated, _ = shifted_sparse_attention(training_module(training=False), q, k, v, None, group=4)
    torch.testing.assert_close(evaluated, reference(q, k, v, group=None))
    one_step, _ = shifted_sparse_attention(training_module(), q[:, :, -1:], k, v, None, group=4)  # decoding
    torch.testing.assert_close(one_step, reference(q, k, v, group=None)[:, -1:])


def test_collators_pad_rows_to_whole_groups():
    rows = [{"input_ids": [1] * 5, "labels": [1] * 5}, {"input_ids": [1] * 11, "labels": [1] * 11}]
    assert PaddingCollator(0, multiple_of=8)(rows)["input_ids"].shape == (2, 16)
    assert PaddingCollator(0)(rows)["input_ids"].shape == (2, 11)
    assert PackedCollator(0, multiple_of=4)(rows)["position_ids"].shape == (2, 12)


# -- the spec and the plan ---------------------------------------------------------------------------
def test_the_group_is_a_quarter_of_the_row_unless_set():
    assert parse_spec(replace(VALID, *SHIFT), "job.toml").attention_group == 256
    sized = replace(VALID, "seed = 42", "seed = 42\nshift_attention = true\nshift_group_size = 512")
    assert parse_spec(sized, "job.toml").attention_group == 512
    assert parse_spec(VALID, "job.toml").attention_group is None


@pytest.mark.parametrize(
    ("edit", "path", "says"),
    [
        (("cutoff_len = 1024", "cutoff_len = 1020"), "train.shift_attention", "a quarter of data.cutoff_len = 1020"),
        (("seed = 42", "seed = 42\nshift_group_size = 300"), "train.shift_group_size", "does not divide"),
        (("seed = 42", "seed = 42\nshift_group_size = 255"), "train.shift_group_size", "is odd"),
        (("seed = 42", "seed = 42\nshift_group_size = 1024"), "train.shift_group_size", "full attention"),
        (('template = "llama3"', 'template = "llama3"\nattention = "flash"'), "model.attention", "torch's SDPA"),
    ],
)
def test_rows_that_do_not_divide_into_groups_or_another_kernel_are_refused_at_their_key(edit, path, says):
    found = refusal(replace(replace(VALID, *SHIFT), *edit))
    assert (found.path, found.code) == (path, "E-CONFLICT") and says in found.message


def test_a_group_size_without_the_attention_is_refused():
    found = refusal(replace(VALID, "seed = 42", "seed = 42\nshift_group_size = 256"))
    assert found.path == "train.shift_group_size" and "which is off" in found.message


def test_a_stage_whose_trainer_pads_its_own_rows_refuses_it_at_the_key():
    found = refusal(replace(as_dpo(VALID), *SHIFT))
    assert (found.path, found.code) == ("train.shift_attention", "E-CONFLICT")
    assert "shifted sparse attention is for the pt and sft stages, not 'dpo'" in found.message


@pytest.mark.parametrize("method", ["full", "freeze", "qlora", "oft"])
def test_every_method_takes_it(method):
    text = replace(replace(VALID, *SHIFT), 'method = "lora"', f'method = "{method}"')
    text = text.replace('[lora]\nrank = 8\nalpha = 16\ntarget = "all"\n', "")
    assert parse_spec(text, "job.toml").attention_group == 256


FALCON = {"model_type": "falcon", "hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4}
GEMMA2 = {
    "model_type": "gemma2",
    "hidden_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 512,
    "vocab_size": 1000,
}


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({**FALCON, "vocab_size": 1000}, "computes attention in its own modeling code"),
        ({**GEMMA2}, "soft-caps its attention scores"),
        ({**GEMMA2, "model_type": "llama", "num_attention_heads": 5, "head_dim": 64}, "shifts half of the heads"),
    ],
)
def test_a_family_whose_attention_cannot_be_grouped_is_refused_with_the_reason(config, says):
    spec = parse_spec(replace(VALID, *SHIFT), "job.toml")
    with pytest.raises(FtcError, match=says) as caught:
        compile_plan(spec, parse_hardware("1xH100-80GB"), architecture_from_config(config))
    assert str(caught.value).startswith("train.shift_attention")


def test_transformers_says_which_models_call_through_its_interface(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, FalconConfig

    check_model_takes_it(AutoModelForCausalLM.from_pretrained(tiny_model_dir), "tiny")
    falcon = AutoModelForCausalLM.from_config(FalconConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2))
    with pytest.raises(RuntimeUserError, match="does not call transformers' attention interface"):
        check_model_takes_it(falcon, "falcon")


# -- training ----------------------------------------------------------------------------------------
@pytest.fixture
def watched_calls(monkeypatch):
    """Every call of the registered function: (training, row length, group)."""
    calls = []

    def watched(module, query, *args, group, **kwargs):
        calls.append((module.training, query.shape[2], group))
        return shifted_sparse_attention(module, query, *args, group=group, **kwargs)

    monkeypatch.setattr(shift_attention, "shifted_sparse_attention", watched)
    return calls


@pytest.mark.slow
def test_sft_lora_trains_in_groups_and_evaluates_whole_rows(
    tmp_path, tiny_model_dir, run_folder, train_in_process, watched_calls
):
    from safetensors.torch import load_file

    data = write_tiny_alpaca(tmp_path / "train.json", n=96)
    spec = tiny_spec(tmp_path / "run", tiny_model_dir, data, preset=SHORT, shift_attention=True, shift_group_size=8)
    spec["data"]["eval_ratio"] = 0.1
    Spec.model_validate(spec)
    metrics = train_in_process(run_folder(spec, cpu_plan()))
    loss = series(metrics, "loss")
    assert loss[-1] < 0.9 * loss[0], loss
    trained = [(length, group) for training, length, group in watched_calls if training]
    assert len(trained) == 2 * SHORT["max_steps"] * 2  # two layers, two micro-batches a step
    assert all(group == 8 and length % 8 == 0 and length > 8 for length, group in trained)
    assert any(not training for training, _, _ in watched_calls)  # evaluation went through it, as full attention
    saved = load_file(tmp_path / "run" / "adapter" / "adapter_model.safetensors")
    assert saved and all(".lora_A." in name or ".lora_B." in name for name in saved)  # LoRA alone trains


@pytest.mark.slow
def test_pt_full_packed_trains_and_saves_a_model_with_its_usual_attention(
    tmp_path, tiny_model_dir, run_folder, train_in_process, watched_calls
):
    from transformers import AutoModelForCausalLM

    texts = write_tiny_texts(tmp_path / "texts.jsonl", n=96)
    spec = tiny_spec(
        tmp_path / "run", tiny_model_dir, texts, "text", preset=SHORT, stage="pt", method="full", shift_attention=True
    )
    spec["data"]["packing"] = True
    metrics = train_in_process(run_folder(spec, cpu_plan()))
    assert metrics["last_loss"] < 0.9 * metrics["first_loss"], metrics["log"]
    assert all(group == 32 and length % 32 == 0 for _, length, group in watched_calls)
    assert any(training and length > 32 for training, length, _ in watched_calls)  # packed rows of several groups
    saved = tmp_path / "run" / "model"
    assert ATTENTION_NAME not in (saved / "config.json").read_text(encoding="utf-8")
    assert AutoModelForCausalLM.from_pretrained(saved).config._attn_implementation == "sdpa"
    assert json.loads((saved / "config.json").read_text(encoding="utf-8"))["model_type"] == "llama"
