"""How a token stage's records become rows: which records it reads, how they encode, how that is said.

Each token stage's runtime module names its recipe (`RECIPE`, one of those below). The stage trains on
what it makes, and `ftc launch` makes the same thing ahead of it (one pass with the data check, into
the cache): both find it through `recipe_of`, so the two cannot prepare differently. A stage without
a recipe (its record says `cached_rows = False`) hands its records to trl, which tokenizes them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ftc.runtime.data.loading import Conversation, TextDocument
from ftc.spec.models import Spec
from ftc.stages import STAGES


@dataclass(frozen=True)
class TokenRecipe:
    item: type  # what the stage's records are read as
    encode: Callable[[Any, Sequence[Any], Spec], Any]  # (tokenizer, records, spec) → .rows and the counts
    describe: Callable[[Any, Any, Spec], str]  # (encoded, tokenizer, spec) → one line
    uses_template: bool  # the tokenizer is given the spec's chat template first


def _encode_conversations(tokenizer: Any, records: Sequence[Any], spec: Spec) -> Any:
    from ftc.runtime.data.tokenize import encode_conversations

    return encode_conversations(tokenizer, records, spec.model.template, spec.data.cutoff_len)


def _describe_conversations(encoded: Any, tokenizer: Any, spec: Spec) -> str:
    from ftc.runtime.data.tokenize import describe_data

    return describe_data(encoded, tokenizer, spec.model.template)


def _encode_texts(tokenizer: Any, records: Sequence[Any], spec: Spec) -> Any:
    from ftc.runtime.data.texts import encode_texts

    return encode_texts(tokenizer, records, spec.data.cutoff_len)


def _describe_texts(encoded: Any, tokenizer: Any, spec: Spec) -> str:
    from ftc.runtime.data.texts import describe_texts

    return describe_texts(encoded)


CONVERSATIONS = TokenRecipe(Conversation, _encode_conversations, _describe_conversations, uses_template=True)
TEXTS = TokenRecipe(TextDocument, _encode_texts, _describe_texts, uses_template=False)


def recipe_of(spec: Spec) -> TokenRecipe:
    """The recipe the spec's stage module names."""
    return importlib.import_module(STAGES[spec.train.stage].module).RECIPE


def stage_tokenizer(spec: Spec) -> Any:
    """The tokenizer the stage encodes with: loaded from the model, with the run's template where it uses one."""
    from ftc.runtime.data.tokenize import use_template
    from ftc.runtime.model.loading import load_tokenizer

    tokenizer = load_tokenizer(spec.model)
    if recipe_of(spec).uses_template:
        use_template(tokenizer, spec.model.template)
    return tokenizer
