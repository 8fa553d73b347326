"""The runtime's model room: the tokenizer and causal LM loaded, quantized and given their adapters, and the
frozen reference and reward models beside them.
"""
