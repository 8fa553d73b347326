"""Stop strings that end generation, judged on the text the client will see.

transformers' StopStringCriteria matches the raw text of every token, special tokens included, and the prompt's
last tokens too: a model that writes a special token (an untrained one writes <|begin_of_text|>) whose raw text
holds the stop string is stopped though the reply shown, special tokens skipped, holds nothing yet. This criterion
decodes only the reply, as the client gets it. StopCutter still cuts the text: generation stops on the token that
completes a stop string, which may carry text past it.
"""

from __future__ import annotations

from typing import Any

from transformers import StoppingCriteria


class StopOnShownText(StoppingCriteria):
    def __init__(self, tokenizer: Any, stops: tuple[str, ...], prompt_length: int) -> None:
        self.tokenizer, self.stops, self.prompt_length = tokenizer, stops, prompt_length

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        # the whole reply is decoded each step: a window of tokens would miss a stop string behind a run of
        # special tokens, which show no text; one decode costs far less than the forward pass before it
        replies = self.tokenizer.batch_decode(input_ids[:, self.prompt_length :], skip_special_tokens=True)
        return torch.tensor([any(stop in reply for stop in self.stops) for reply in replies], device=input_ids.device)
