"""This process's place in a run: device, torchrun rank and world, seeding, mixed precision."""
import os
import random

import numpy as np
import torch
import torch.distributed as dist


class Dist:
    """This process's place in a torchrun job (world 1 without torchrun)."""

    def __init__(self, device_setting):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available() if device_setting == "auto" else device_setting == "cuda"
        self.device = torch.device(f"cuda:{local}" if cuda else "cpu")
        if cuda:
            torch.cuda.set_device(self.device)
        if self.world > 1:
            dist.init_process_group("nccl" if cuda else "gloo")

    @property
    def main(self):
        return self.rank == 0

    def gather(self, obj):
        """List of every rank's `obj` (on every rank)."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def close(self):
        """Every rank leaves together: a rank that tears gloo down while a peer is still
        writing outputs can abort ("terminate called without an active exception")."""
        if self.world > 1:
            dist.barrier()
            dist.destroy_process_group()


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(env, cfg):
    return torch.autocast("cuda", dtype=torch.float16,
                          enabled=env.device.type == "cuda" and cfg.amp)
