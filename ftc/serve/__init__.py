"""`ftc serve`: a trained run (or a model folder) behind an OpenAI-compatible HTTP API.

`protocol` holds the request and response shapes, `backends` the generation engines (transformers here,
vLLM where CUDA and vllm are present) behind one interface, `app` the FastAPI routes that queue requests
with a bounded concurrency and answer every bad request with an OpenAI-shaped error.
"""
