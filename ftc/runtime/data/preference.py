"""Preference data → the records trl's preference trainers take, checked against our chat template first.

What we hand trl, and why: trl 1.16's DPOTrainer, KTOTrainer and ORPOTrainer always tokenize their
dataset themselves (there is no pre-tokenized path to pass through, as SFT has), so every preference
stage gives trl *conversational* records: the prompt as messages, each reply as one assistant
message. The tokenizer carries our template as its chat template (`use_template`), so trl renders
exactly our template's text: the prompt with the assistant header, then the reply with the
template's end marker, which is trained (the model learns to stop). trl takes the reply to start
where the tokenized prompt stops matching the tokenized prompt + reply. RewardTrainer takes the same
records (it joins prompt and reply), so all four stages read alike.

Before that, we render every record through our own template: a record the template refuses is
reported with its file and position, and the lengths tell the user what the cutoff does, which trl
would do silently (a reply cut short; for rm a pair dropped).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ftc.errors import RuntimeUserError
from ftc.records.collector import collector_paused
from ftc.runtime.data.batch_encode import encode_batch, in_chunks
from ftc.runtime.data.tokenize import conversation_segments, untokenized_end_marker
from ftc.spec.chat_templates import ChatTemplateError, Message, Segment

if TYPE_CHECKING:
    from ftc.runtime.data.loading import KtoExample, PreferencePair
    from ftc.spec.models import Spec


@dataclass(frozen=True)
class PreferenceData:
    records: list[dict[str, Any]]  # for trl: {"prompt", "chosen", "rejected"} or {"prompt", "completion", "label"}
    prompt_tokens: list[int]  # per record kept, as our template tokenizes it
    reply_tokens: list[int]  # the longest reply of each record kept
    truncated: int  # kept, but prompt + reply is cut at cutoff_len
    dropped: int  # left out: the prompt alone fills cutoff_len (rm: a sequence over cutoff_len)


def assistant(text: str) -> list[Message]:
    return [{"role": "assistant", "content": text}]


def encode_pairs(
    tokenizer: Any, pairs: Sequence[PreferencePair], template_name: str, cutoff_len: int, drop_long: bool = False
) -> PreferenceData:
    """Records for DPO, ORPO and RM. `drop_long`: a pair that does not fit whole is left out (rm, whose
    trainer drops them too: a reward read off a cut reply would be the reward of another text)."""
    records = [
        {"prompt": pair.prompt, "chosen": assistant(pair.chosen), "rejected": assistant(pair.rejected)}
        for pair in pairs
    ]
    lengths = _measure(
        tokenizer, template_name, [(pair.where, pair.prompt, [pair.chosen, pair.rejected]) for pair in pairs]
    )
    return _keep_fitting(list(zip(records, lengths, strict=True)), cutoff_len, drop_long)


def encode_kto_examples(
    tokenizer: Any, examples: Sequence[KtoExample], template_name: str, cutoff_len: int
) -> PreferenceData:
    records = [
        {"prompt": example.prompt, "completion": assistant(example.completion), "label": example.label}
        for example in examples
    ]
    lengths = _measure(tokenizer, template_name, [(e.where, e.prompt, [e.completion]) for e in examples])
    return _keep_fitting(list(zip(records, lengths, strict=True)), cutoff_len, drop_long=False)


def _measure(
    tokenizer: Any, template_name: str, items: Sequence[tuple[str, list[Message], list[str]]]
) -> list[tuple[int, list[int]]]:
    """For each (where, prompt, replies): the prompt's tokens and each reply's (with its end marker) as our
    template renders them, each segment encoded on its own as SFT encodes it; in one tokenizer call a chunk."""
    measured: list[tuple[int, list[int]]] = []
    for chunk in in_chunks(items, "records"):
        texts: list[str] = []
        shapes: list[tuple[int, int]] = []  # (prompt segments, replies) of each item, to read the lengths back
        for where, prompt, replies in chunk:
            for index, reply in enumerate(replies):
                segments = _segments(tokenizer, template_name, where, prompt + assistant(reply))
                # The reply is the last trainable segment; a separator may follow it, untrained.
                reply_at = max(position for position, segment in enumerate(segments) if segment.trainable)
                if index == 0:  # the prompt renders alike before every reply
                    texts += [segment.text for segment in segments[:reply_at]]
                    shapes.append((reply_at, len(replies)))
                texts.append(segments[reply_at].text)
        _, lengths = encode_batch(tokenizer, texts)
        at = 0
        for prompt_segments, replies in shapes:
            # Texts were queued as: the prompt's segments and the first reply, then each further reply.
            prompt_length = int(lengths[at : at + prompt_segments].sum())
            at += prompt_segments
            measured.append((prompt_length, [int(length) for length in lengths[at : at + replies]]))
            at += replies
    return measured


def _segments(tokenizer: Any, template_name: str, where: str, messages: list[Message]) -> list[Segment]:
    try:
        return conversation_segments(tokenizer, template_name, messages)
    except ChatTemplateError as error:
        raise RuntimeUserError(
            f"{where}: {error}", "fix the record, or set model.template to one that fits it"
        ) from None


def _keep_fitting(
    measured: list[tuple[dict[str, Any], tuple[int, list[int]]]], cutoff_len: int, drop_long: bool
) -> PreferenceData:
    records, prompts, replies, truncated, dropped = [], [], [], 0, 0
    for record, (prompt_length, reply_lengths) in measured:
        too_long = prompt_length + max(reply_lengths) > cutoff_len
        if prompt_length >= cutoff_len or (drop_long and too_long):
            dropped += 1
            continue
        truncated += too_long
        records.append(record)
        prompts.append(prompt_length)
        replies.append(max(reply_lengths))
    if not records:
        raise RuntimeUserError(
            f"no record fits within data.cutoff_len = {cutoff_len} tokens with room for its reply",
            "raise data.cutoff_len",
        )
    return PreferenceData(records, prompts, replies, truncated, dropped)


def describe_preferences(data: PreferenceData, tokenizer: Any, template_name: str, what: str = "pairs") -> str:
    """One line on what training will see, as `describe_data` says it for SFT."""
    count = len(data.records)
    longest = max(prompt + reply for prompt, reply in zip(data.prompt_tokens, data.reply_tokens, strict=True))
    line = (
        f"data: {count} {what}, prompt {sum(data.prompt_tokens) / count:.0f} + reply "
        f"{sum(data.reply_tokens) / count:.0f} tokens on average (longest {longest}; {data.truncated} truncated, "
        f"{data.dropped} dropped), template {template_name}"
    )
    marker = untokenized_end_marker(tokenizer, template_name)
    if marker is not None:
        line += f"\nwarning: {marker!r} is not a single token for this tokenizer; the model learns it as plain text"
    return line


Encoder = Callable[[Any, Sequence[Any], str, int], PreferenceData]


def tokenizer_and_records(
    spec: Spec, items: Sequence[Any], held_out: Sequence[Any], encode: Encoder, what: str = "pairs"
) -> tuple[Any, PreferenceData, list[dict[str, Any]] | None]:
    """What every preference stage hands trl: the tokenizer carrying the run's template, the training
    records (described in one line), and the held-out records to evaluate on (None without any)."""
    from ftc.runtime.data.tokenize import use_template
    from ftc.runtime.model.loading import load_tokenizer

    tokenizer = load_tokenizer(spec.model)
    use_template(tokenizer, spec.model.template)
    with collector_paused():
        data = encode(tokenizer, items, spec.model.template, spec.data.cutoff_len)
    print(describe_preferences(data, tokenizer, spec.model.template, what=what), flush=True)
    if not held_out:
        return tokenizer, data, None
    with collector_paused():
        evaluated = encode(tokenizer, held_out, spec.model.template, spec.data.cutoff_len).records
    print(f"evaluation: {len(evaluated)} held-out {what}, at every logging step", flush=True)
    return tokenizer, data, evaluated
