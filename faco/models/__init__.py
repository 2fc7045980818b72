"""Models as directories: the one model interface (llama: build, load, save a LLaMA-architecture LM and
its tokenizer), checkpoints (a base, the teacher or `faco evaluate`'s model from a directory, the hub or
a GGUF file, keyed by content), serve (a checkpoint on 127.0.0.1 through `transformers serve`).
May import faco.core and faco.config.
"""
