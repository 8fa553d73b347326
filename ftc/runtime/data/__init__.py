"""The runtime's data room: the spec's datasets read, mixed, streamed, rendered by the chat template, tokenized
and packed into what the stages train on.
"""
