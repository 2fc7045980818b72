"""Test only: lets accelerate run FSDP on CPU processes (gloo), which it otherwise turns into plain DDP.

accelerate enables its FSDP plugin for GPU-like distributed types only; on a machine without CUDA the
Trainer's FSDP arguments are silently dropped and the processes run DDP. unit_tests/test_sharding.py puts
this directory on PYTHONPATH of the processes it launches, so `accelerate.state` is patched when it is
first imported: an `AcceleratorState` given an FSDP plugin on MULTI_CPU becomes FSDP. Everything else, the
Trainer's FSDP2 wrapping, its full state dict and faco's launch, export and checks, is the real code.
Nothing is imported here before `accelerate.state` is (faco pins CPU numerics before torch loads).
"""

import importlib.abc
import importlib.machinery
import sys


def _lift_gate(state) -> None:  # noqa: ANN001
    original = state.AcceleratorState.__init__

    def __init__(self, *args, fsdp_plugin=None, **kwargs):  # noqa: ANN001, ANN002, ANN003, N807
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)  # every call re-copies MULTI_CPU into the state
        plugin = fsdp_plugin or getattr(self, "fsdp_plugin", None)
        if plugin is not None and self.distributed_type == state.DistributedType.MULTI_CPU:
            self.distributed_type = state.DistributedType.FSDP
            self.fsdp_plugin = plugin

    state.AcceleratorState.__init__ = __init__


class _OnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):  # noqa: ANN001
        if name != "accelerate.state":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run = spec.loader.exec_module

        def exec_module(module) -> None:  # noqa: ANN001
            run(module)
            _lift_gate(module)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _OnImport())
