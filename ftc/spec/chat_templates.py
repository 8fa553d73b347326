"""Chat templates: how a conversation becomes text, and which parts of that text the model learns.

One registry, `TEMPLATES`, of small declarative records. A record renders a conversation into
ordered segments `(text, trainable)`: everything the model is shown as a prompt (system, user,
assistant header) is not trainable; each assistant reply plus its end marker is, so the model
learns both to answer and to stop. The same record also writes itself as a jinja chat template,
so a saved tokenizer renders prompts at inference exactly as training saw them.

This module is pure (no torch, no transformers): the spec validator imports it to check names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

# {"role": "system" | "user" | "assistant" | "tool", "content": str}; an assistant turn may carry OpenAI-style
# "tool_calls", a tool turn "tool_call_id". Templates with a ToolFormat render tool use at inference only.
Message = dict[str, Any]
# Where each image of a record goes in its text; a template with images writes its model's image text there.
IMAGE = "<image>"


class ChatTemplateError(ValueError):
    """A conversation this template cannot render (bad roles or order, a system it has no place for)."""


@dataclass(frozen=True)
class Wrap:
    """Text written before and after a message's content."""

    before: str
    after: str

    def around(self, content: str) -> str:
        return self.before + content + self.after


class Segment(NamedTuple):  # a tuple: a dataset makes millions of them
    text: str
    trainable: bool


@dataclass(frozen=True)
class ToolFormat:
    """How a template offers tools, writes a tool call and hands a tool's result back; and how a reply's tool calls
    are read (transformers' declarative `response_template` for `tokenizer.parse_response`)."""

    name: str
    offer: Wrap  # after the system prompt, around the tool signatures (one JSON object a line)
    call: Wrap  # around one call's JSON object {"name": ..., <arguments_key>: {...}}
    result: Wrap  # around one tool result
    response_template: dict[str, Any]
    arguments_key: str = "arguments"  # the call object's key for its arguments
    # None: consecutive results share one user turn, a line apart; else each result is a turn of its own, this one
    result_turn: Wrap | None = None
    max_calls: int | None = None  # the most calls one reply may make; None: any number, a line apart


# Hermes' format, which Qwen 2.5 and later speak: tools in <tools>, each call a JSON object in <tool_call>.
HERMES_TOOLS = ToolFormat(
    name="hermes",
    offer=Wrap(
        "\n\n# Tools\n\nYou may call functions to answer. Their signatures, one JSON object a line:\n<tools>",
        "\n</tools>\n\nTo call one, write a JSON object with its name and arguments inside <tool_call></tool_call> "
        'tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>',
    ),
    call=Wrap("<tool_call>\n", "\n</tool_call>"),
    result=Wrap("<tool_response>\n", "\n</tool_response>"),
    response_template={
        "defaults": {"role": "assistant"},
        "start_anchor": "<|im_start|>assistant\n",
        "fields": {
            "tool_calls": {
                # the leading whitespace belongs to no region: text before a call keeps no trailing newline
                "open_pattern": r"\s*<tool_call>",
                "close": "</tool_call>",
                "repeats": True,
                "content": "json",
                "transform": {"type": "function", "function": "{content}"},
            },
            "content": {"close_pattern": r"\s*<\|im_end\|>", "content": "text"},
        },
    },
)


# Llama 3.1's JSON tool calling: the reply is one call, a JSON object {"name": ..., "parameters": {...}}, alone or
# after <|python_tag|>; each result comes back in a turn of the ipython role. The format has room for one call.
LLAMA3_JSON_TOOLS = ToolFormat(
    name="llama3_json",
    offer=Wrap(
        "\n\nYou may call functions to answer. Their signatures, one JSON object a line:",
        "\n\nTo call one, answer with nothing but a JSON object holding its name and arguments: "
        '{"name": <function-name>, "parameters": <args-json-object>}',
    ),
    call=Wrap("", ""),
    result=Wrap("", ""),
    arguments_key="parameters",
    result_turn=Wrap("<|start_header_id|>ipython<|end_header_id|>\n\n", "<|eot_id|>"),
    max_calls=1,
    response_template={
        "defaults": {"role": "assistant"},
        "start_anchor": "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "fields": {
            "tool_calls": {
                # the marker, or (looked ahead at, so the object keeps its brace) a JSON object opening with its
                # name; the call runs to the end of the reply
                "open_pattern": r'\s*(?:<\|python_tag\|>|(?=\{\s*"name"))',
                "repeats": True,
                "content": "json",
                "transform": {
                    "type": "function",
                    "function": {"name": "{content.name}", "arguments": "{content.parameters}"},
                },
            },
            "content": {"close_pattern": r"\s*(?:<\|eot_id\|>|<\|eom_id\|>)", "content": "text"},
        },
    },
)


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    bos: str  # written once, at the very start
    user: Wrap
    assistant_header: str  # part of the prompt: what the model sees before it answers
    assistant_end: str  # trained with the reply, so the model learns to stop
    after_assistant: str = ""  # separator after the end marker; the next turn's business, not trained
    system: Wrap | None = None  # None: the format has no place for a system message
    # "own_turn": a system message is a turn of its own; "in_first_user": it is written inside the
    # first user turn, for formats whose training data never had a separate system turn.
    system_placement: Literal["own_turn", "in_first_user"] = "own_turn"
    default_system: str | None = None  # used when a conversation brings no system message
    # ChatGLM3 ends a reply by writing the next user turn's role token: the end marker is trained, and
    # the user turn that follows writes only the rest of its opening (user.before must start with it).
    end_opens_next_turn: bool = False
    # None: the format has no tool use. Tools render only at inference (the jinja); training data with tool
    # calls is refused by the segment renderer.
    tools: ToolFormat | None = None
    # The text written for each IMAGE placeholder, which the model's processor then expands to the image's
    # tokens; None: a text-only template, which leaves the placeholder as it is.
    image: str | None = None

    @property
    def supports_system(self) -> bool:
        return self.system is not None

    @property
    def user_after_reply(self) -> str:
        """The opening of a user turn that follows a reply."""
        if self.end_opens_next_turn:
            return self.user.before.removeprefix(self.assistant_end)
        return self.user.before

    def segments(self, messages: list[Message]) -> list[Segment]:
        return render_segments(self, messages)

    def render(self, messages: list[Message], add_generation_prompt: bool = False) -> str:
        return render_text(self, messages, add_generation_prompt)

    def jinja(self) -> str:
        return to_jinja(self)


_LLAMA3_HEADER = "<|start_header_id|>{role}<|end_header_id|>\n\n"
_CHATML_TURN = Wrap("<|im_start|>{role}\n", "<|im_end|>\n")


def _chatml(role: str) -> Wrap:
    return Wrap(_CHATML_TURN.before.format(role=role), _CHATML_TURN.after)


def _llama3(role: str) -> Wrap:
    return Wrap(_LLAMA3_HEADER.format(role=role), "<|eot_id|>")


_CHATML = ChatTemplate(
    name="chatml",
    bos="",
    system=_chatml("system"),
    user=_chatml("user"),
    assistant_header="<|im_start|>assistant\n",
    assistant_end="<|im_end|>",
    after_assistant="\n",
)


# Gemma calls the assistant "model" and, like Gemma 3, puts a system prompt at the top of the first user turn.
_GEMMA = ChatTemplate(
    name="gemma",
    bos="<bos>",
    system=Wrap("", "\n\n"),
    system_placement="in_first_user",
    user=Wrap("<start_of_turn>user\n", "<end_of_turn>\n"),
    assistant_header="<start_of_turn>model\n",
    assistant_end="<end_of_turn>",
    after_assistant="\n",
)


def _build_registry(*templates: ChatTemplate) -> dict[str, ChatTemplate]:
    return {template.name: template for template in templates}


TEMPLATES: dict[str, ChatTemplate] = _build_registry(
    ChatTemplate(
        name="llama3",
        bos="<|begin_of_text|>",
        system=_llama3("system"),
        user=_llama3("user"),
        assistant_header=_LLAMA3_HEADER.format(role="assistant"),
        assistant_end="<|eot_id|>",
        tools=LLAMA3_JSON_TOOLS,
    ),
    _CHATML,
    # Qwen speaks ChatML and brings its own system prompt when the conversation has none.
    replace(
        _CHATML,
        name="qwen",
        default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
        tools=HERMES_TOOLS,
    ),
    ChatTemplate(
        # Every user turn opens a new sequence with its own <s>; the system prompt sits inside the first one.
        name="llama2",
        bos="",
        system=Wrap("<<SYS>>\n", "\n<</SYS>>\n\n"),
        system_placement="in_first_user",
        user=Wrap("<s>[INST] ", " [/INST]"),
        assistant_header=" ",
        assistant_end=" </s>",
    ),
    ChatTemplate(
        # Mistral's instruct format has no system role; its own template refuses one, and so do we.
        name="mistral",
        bos="<s>",
        user=Wrap("[INST] ", " [/INST]"),
        assistant_header="",
        assistant_end="</s>",
    ),
    _GEMMA,
    # Yi's chat models speak ChatML.
    replace(_CHATML, name="yi"),
    ChatTemplate(
        # DeepSeek LLM chat (v1, 2023): plain "User:" / "Assistant:" lines, a system prompt as plain text first.
        name="deepseek",
        bos="<｜begin▁of▁sentence｜>",
        system=Wrap("", "\n\n"),
        user=Wrap("User: ", "\n\n"),
        assistant_header="Assistant: ",
        assistant_end="<｜end▁of▁sentence｜>",
    ),
    ChatTemplate(
        # DeepSeek V2.5 / V3 / R1: role tokens, the system prompt right after the BOS.
        name="deepseek3",
        bos="<｜begin▁of▁sentence｜>",
        system=Wrap("", ""),
        user=Wrap("<｜User｜>", ""),
        assistant_header="<｜Assistant｜>",
        assistant_end="<｜end▁of▁sentence｜>",
    ),
    ChatTemplate(
        # Baichuan 2 chat: reserved tokens mark the user turn; a system prompt is plain text before it.
        name="baichuan2",
        bos="",
        system=Wrap("", ""),
        user=Wrap("<reserved_106>", "<reserved_107>"),
        assistant_header="",
        assistant_end="</s>",
    ),
    ChatTemplate(
        # ChatGLM3: role tokens on their own lines; a reply ends by opening the next user turn.
        name="chatglm3",
        bos="[gMASK]sop",
        system=Wrap("<|system|>\n", ""),
        user=Wrap("<|user|>\n", ""),
        assistant_header="<|assistant|>\n",
        assistant_end="<|user|>",
        end_opens_next_turn=True,
    ),
    ChatTemplate(
        # LLaVA-1.5 speaks Vicuna v1: "USER: <image>\n… ASSISTANT: …</s>"; its processor expands each <image>.
        name="llava",
        bos="<s>",
        system=Wrap("", " "),
        user=Wrap("USER: ", " "),
        assistant_header="ASSISTANT: ",
        assistant_end="</s>",
        image=IMAGE,
    ),
    # Qwen2-VL and Qwen2.5-VL speak ChatML; an image is a run of <|image_pad|> between its start and end markers,
    # one pad here, as many as the image's grid needs once the processor expands it.
    replace(
        _CHATML,
        name="qwen2_vl",
        default_system="You are a helpful assistant.",
        image="<|vision_start|><|image_pad|><|vision_end|>",
    ),
    # Gemma 3 with images: Gemma's turns, and an image is its start marker, which Gemma3Processor replaces by the
    # marker itself between blank lines, the image's mm_tokens_per_image soft tokens and the end marker.
    replace(_GEMMA, name="gemma3", image="<start_of_image>"),
    ChatTemplate(
        name="phi3",
        bos="",
        system=Wrap("<|system|>\n", "<|end|>\n"),
        user=Wrap("<|user|>\n", "<|end|>\n"),
        assistant_header="<|assistant|>\n",
        assistant_end="<|end|>",
        after_assistant="\n",
    ),
)


def split_system(template: ChatTemplate, messages: list[Message]) -> tuple[str | None, list[Message]]:
    """The system prompt to use (the conversation's own, else the template's default) and the turns after it.

    Checks the shape every template here assumes: an optional system message first, then turns
    alternating user, assistant, starting with the user.
    """
    if well_formed(template, messages):
        if messages and messages[0]["role"] == "system":
            return messages[0]["content"], messages[1:]
        return template.default_system, messages
    return checked_split_system(template, messages)


def checked_split_system(template: ChatTemplate, messages: list[Message]) -> tuple[str | None, list[Message]]:
    """split_system's answer found by checking each rule in turn, so that a broken rule is named."""
    for index, message in enumerate(messages):
        if message.get("role") == "tool" or message.get("tool_calls"):
            raise ChatTemplateError(
                f"message {index} is a tool call or a tool result, and the {template.name} template has no place "
                "for tool use"
            )
        if not isinstance(message.get("content"), str):
            raise ChatTemplateError(f"message {index} has no text 'content'")
    if messages and messages[0].get("role") == "system":
        system, turns = messages[0]["content"], messages[1:]
        if not template.supports_system:
            raise ChatTemplateError(f"the {template.name} template has no place for a system message")
    else:
        system, turns = template.default_system, messages
    for index, message in enumerate(turns):
        expected = "user" if index % 2 == 0 else "assistant"
        if message.get("role") != expected:
            position = index + (len(messages) - len(turns))
            raise ChatTemplateError(
                f"message {position} has role {message.get('role')!r} where {expected!r} belongs: "
                "after an optional system message, turns alternate user, assistant"
            )
    return system, turns


_TURN_ROLES = ("user", "assistant")


def well_formed(template: ChatTemplate, messages: list[Message]) -> bool:
    """One quick pass for the usual conversation: text messages, an optional system message the template has a
    place for, then user and assistant in turn. Anything else takes split_system's checks, which say what is wrong."""
    first = 1 if messages and messages[0].get("role") == "system" else 0
    if first and template.system is None:
        return False
    for index, message in enumerate(messages):
        if type(message.get("content")) is not str or message.get("tool_calls"):
            return False
        if index >= first and message.get("role") != _TURN_ROLES[(index - first) % 2]:
            return False
    return True


def render_segments(template: ChatTemplate, messages: list[Message]) -> list[Segment]:
    """The conversation as text segments in order: the prompt before each reply, then the reply (with its end
    marker); no segment is empty, and no two neighbours are alike in trainability."""
    system, turns = split_system(template, messages)
    # A dataset renders millions of turns: the template's parts are read once, the prompt kept as pieces.
    first_user = template.user.before
    if system is not None and template.system_placement == "in_first_user":
        first_user += template.system.around(system)
    user_after, later_user = template.user.after, template.user_after_reply
    header, end, after_assistant = template.assistant_header, template.assistant_end, template.after_assistant
    image = template.image if template.image not in (None, IMAGE) else None
    segments: list[Segment] = []
    prompt = [template.bos]  # the untrained text since the last reply, written as one segment before the next
    if system is not None and template.system_placement == "own_turn":
        prompt.append(template.system.around(system))
    for index, message in enumerate(turns):
        if index % 2 == 0:  # a user turn: split_system checked that they alternate, user first
            content = message["content"] if image is None else message["content"].replace(IMAGE, image)
            prompt += (first_user if index == 0 else later_user, content, user_after)
            continue
        prompt.append(header)
        reply = message["content"] + end
        if reply:
            text = "".join(prompt)
            if text:
                segments.append(Segment(text, False))
            segments.append(Segment(reply, True))
            prompt = []
        prompt.append(after_assistant)
    text = "".join(prompt)
    if text:
        segments.append(Segment(text, False))
    return segments


def render_text(template: ChatTemplate, messages: list[Message], add_generation_prompt: bool = False) -> str:
    """The conversation as one string; with a generation prompt it ends where the assistant's answer begins."""
    text = "".join(segment.text for segment in render_segments(template, messages))
    return text + template.assistant_header if add_generation_prompt else text


def _literal(text: str | None) -> str:
    # A JSON string is also a valid jinja string literal, escapes included.
    return "none" if text is None else json.dumps(text)


def to_jinja(template: ChatTemplate) -> str:
    """A jinja chat template that renders exactly what `render_text` renders (for `apply_chat_template`)."""
    system_wrap = template.system or Wrap("", "")
    own_turn = template.supports_system and template.system_placement == "own_turn"
    in_first_user = template.supports_system and template.system_placement == "in_first_user"
    refuse_system = (
        "{{- raise_exception(" + _literal(f"the {template.name} template has no place for a system message") + ") -}}"
    )
    lines = [
        "{{- " + _literal(template.bos) + " -}}" if template.bos else "",
        "{%- if messages and messages[0]['role'] == 'system' -%}",
        "{%- set system = messages[0]['content'] -%}{%- set turns = messages[1:] -%}",
        refuse_system if not template.supports_system else "",
        "{%- else -%}",
        "{%- set system = " + _literal(template.default_system) + " -%}{%- set turns = messages -%}",
        "{%- endif -%}",
    ]
    tools = template.tools
    if own_turn and tools is not None:
        lines += [
            "{%- if system is not none or tools -%}",
            "{{- " + _literal(system_wrap.before) + " + (system if system is not none else '') -}}",
            "{%- if tools -%}",
            # with no system prompt the turn opens on the offer, without the blank lines that set it apart
            "{{- "
            + _literal(tools.offer.before)
            + " if system is not none else "
            + _literal(tools.offer.before.lstrip())
            + " -}}",
            "{%- for tool in tools -%}{{- '\\n' + tool | tojson -}}{%- endfor -%}",
            "{{- " + _literal(tools.offer.after) + " -}}",
            "{%- endif -%}",
            "{{- " + _literal(system_wrap.after) + " -}}",
            "{%- endif -%}",
        ]
    elif own_turn:
        lines += [
            "{%- if system is not none -%}",
            "{{- " + _literal(system_wrap.before) + " + system + " + _literal(system_wrap.after) + " -}}",
            "{%- endif -%}",
        ]
    lines += [
        "{%- for message in turns -%}",
        "{%- if message['role'] == 'user' -%}",
        "{%- set content = message['content'] -%}",
    ]
    if template.image not in (None, IMAGE):
        lines.append(
            "{%- set content = content | replace(" + _literal(IMAGE) + ", " + _literal(template.image) + ") -%}"
        )
    if in_first_user:
        lines += [
            "{%- if loop.first and system is not none -%}",
            "{%- set content = "
            + _literal(system_wrap.before)
            + " + system + "
            + _literal(system_wrap.after)
            + " + content -%}",
            "{%- endif -%}",
        ]
    lines += [
        "{%- set before = "
        + _literal(template.user.before)
        + " if loop.first else "
        + _literal(template.user_after_reply)
        + " -%}",
        "{{- before + content + " + _literal(template.user.after) + " -}}",
        "{%- elif message['role'] == 'assistant' -%}",
    ]
    if tools is None:
        lines.append(
            "{{- "
            + _literal(template.assistant_header)
            + " + message['content'] + "
            + _literal(template.assistant_end + template.after_assistant)
            + " -}}"
        )
    else:
        lines += _tool_use_jinja(template, tools)
    lines += [
        "{%- else -%}",
        "{{- raise_exception('turns alternate user, assistant after an optional system message') -}}",
        "{%- endif -%}",
        "{%- endfor -%}",
        "{%- if add_generation_prompt -%}",
        "{{- " + _literal(template.assistant_header) + " -}}",
        "{%- endif -%}",
    ]
    return "\n".join(line for line in lines if line) + "\n"


def _tool_use_jinja(template: ChatTemplate, tools: ToolFormat) -> list[str]:
    """An assistant turn with its tool calls, then the branch for tool results (the loop's next `elif`)."""
    lines = []
    if tools.max_calls is not None:
        too_many = f"the {template.name} template's tool format has room for {tools.max_calls} call(s) in a reply"
        lines.append(
            "{%- if (message.tool_calls or []) | length > "
            + str(tools.max_calls)
            + " -%}{{- raise_exception("
            + _literal(too_many)
            + ") -}}{%- endif -%}"
        )
    lines += [
        "{{- " + _literal(template.assistant_header) + " + (message['content'] or '') -}}",
        "{%- for call in message.tool_calls or [] -%}",
        "{%- set function = call.function if call.function is defined else call -%}",
        "{%- set arguments = function.arguments if function.arguments is string else function.arguments | tojson -%}",
        "{{- ('\\n' if message['content'] or not loop.first else '') + "
        + _literal(tools.call.before)
        + " + '{\"name\": ' + function.name | tojson + "
        + _literal(f', "{tools.arguments_key}": ')
        + " + arguments + '}' + "
        + _literal(tools.call.after)
        + " -}}",
        "{%- endfor -%}",
        "{{- " + _literal(template.assistant_end + template.after_assistant) + " -}}",
        "{%- elif message['role'] == 'tool' -%}",
    ]
    if tools.result_turn is not None:
        turn, result = tools.result_turn, tools.result
        return lines + [
            "{{- "
            + _literal(turn.before + result.before)
            + " + message['content'] + "
            + _literal(result.after + turn.after)
            + " -}}"
        ]
    return lines + [
        # consecutive results share one user turn
        "{%- if loop.first or turns[loop.index0 - 1]['role'] != 'tool' -%}",
        "{{- " + _literal(template.user_after_reply) + " -}}",
        "{%- else -%}{{- '\\n' -}}{%- endif -%}",
        "{{- " + _literal(tools.result.before) + " + message['content'] + " + _literal(tools.result.after) + " -}}",
        "{%- if loop.last or turns[loop.index0 + 1]['role'] != 'tool' -%}",
        "{{- " + _literal(template.user.after) + " -}}",
        "{%- endif -%}",
    ]
