"""PyTorch peer for bench/attention_scaling.ts: one ViT block (torch_block.py: dim 192, 3 heads,
MLP 768, batch 1) forward+backward at N tokens, loss = sum(output * a fixed random cotangent),
gradients w.r.t. the parameters and the input.

    PYTHONPATH=/opt/torch2 python3 bench/peers/torch_attention_scaling.py N THREADS REPEATS WARMUP CPU_CAP_S [--compile]

--compile wraps the block in torch.compile (inductor, default mode); its first call (compilation)
is reported as compile_seconds and is not timed. If one warm-up call costs more than CPU_CAP_S
seconds of CPU, the timed runs are skipped and "capped" is set. Peak memory is VmHWM from
/proc/self/status at the end, and "baseline_mb" VmHWM after importing torch and building the block.
Prints one JSON line.
"""
import json
import os
import sys
import time

import torch

from peer_timing import timed
from torch_block import SDPA, Block


def vm_hwm_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main(argv):
    n, threads, repeats, warmup, cap = int(argv[1]), int(argv[2]), int(argv[3]), int(argv[4]), float(argv[5])
    compiled = "--compile" in argv[6:]
    pid_file = os.environ.get("PAUSABLE_PID_FILE")
    if pid_file:
        with open(pid_file, "w") as f:
            f.write(f"{os.getpid()}\n")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    block = Block(192, 3, 768)
    x = torch.randn(1, n, 192, requires_grad=True)
    cot = torch.randn(1, n, 192)
    baseline = vm_hwm_mb()
    run = torch.compile(block) if compiled else block

    def fwd_bwd():
        block.zero_grad(set_to_none=True)
        x.grad = None
        run(x).backward(cot)

    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "n": n, "compiled": compiled,
           "attention": "sdpa" if SDPA else "math", "baseline_mb": baseline}
    compile_seconds = 0.0
    if compiled:
        t0 = time.perf_counter()
        fwd_bwd()
        compile_seconds = time.perf_counter() - t0
    c0 = time.process_time()
    fwd_bwd()
    first_cpu = time.process_time() - c0
    if first_cpu > cap:
        out.update(capped=True, first_cpu_seconds=first_cpu, peak_mb=vm_hwm_mb(), compile_seconds=compile_seconds)
    else:
        seconds = timed(fwd_bwd, repeats, warmup=max(0, warmup - 1))
        out.update(capped=False, seconds=seconds, first_cpu_seconds=first_cpu, peak_mb=vm_hwm_mb(), compile_seconds=compile_seconds)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
