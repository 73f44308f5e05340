"""Run a training script or module under FSDP2 on CPU (gloo), for the distributed tests.

    torchrun --nproc_per_node 2 tests/fsdp_launch.py SCRIPT.py ARGS... --use_cpu --fsdp ...
    torchrun --nproc_per_node 2 tests/fsdp_launch.py -m datacarto.cli train ... --use_cpu --fsdp ...

accelerate (1.16) turns FSDP on only for accelerator devices: with ``use_cpu`` it silently trains
with DDP and ignores ``fsdp``. Here the Trainer's FSDP plugin is kept on CPU, so accelerate's own
FSDP2 code (``fully_shard`` of each layer, gloo collectives) runs as it does on GPUs. The run fails
unless the trained model is really sharded.
"""

from __future__ import annotations

import runpy
import sys

import accelerate.state as state
from accelerate.utils import DistributedType
from torch.distributed.fsdp import FSDPModule
from transformers import Trainer

_init = state.AcceleratorState.__init__


def _init_keeping_fsdp(self, *args, fsdp_plugin=None, **kwargs):
    _init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin
        state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP


_train = Trainer.train


def _train_sharded(self, *args, **kwargs):
    out = _train(self, *args, **kwargs)
    if not (self.is_fsdp_enabled and isinstance(self.model, FSDPModule)):
        raise SystemExit(f"FSDP did not run: the trained model is a {type(self.model).__name__}")
    return out


state.AcceleratorState.__init__ = _init_keeping_fsdp
Trainer.train = _train_sharded

if __name__ == "__main__":
    if sys.argv[1] == "-m":
        sys.argv = [sys.argv[2], *sys.argv[3:]]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name="__main__")
