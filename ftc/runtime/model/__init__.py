"""The runtime's model room: the tokenizer and causal LM loaded, quantized and given their adapters, and the
frozen reference and reward models beside them.

loading (tokenizer and models as the plan holds them), precision (our dtype names as torch's),
quantization (qlora's bitsandbytes config), lora and lora_inits (the adapter and how it starts),
freeze (the layers that train), trainable (the model as its method trains it), reference and rewards.
"""
