"""The basics every part of faco stands on; imports nothing of faco.

numerics (pinned CPU numerics, usable cores), cache (content-addressed entries, their keys and the code
versions keys hold), digests (files by content), lifetime (child processes that die with their parent),
logs (the noisy third-party loggers quieted once).
"""
