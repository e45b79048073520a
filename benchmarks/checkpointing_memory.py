"""Peak memory of one training step with and without gradient checkpointing (train.gradient_checkpointing), and
with LoRA (train.method=lora), on a random-init model of XLM-R base's shape (hidden 768, 12 layers, 12 heads).

    python benchmarks/checkpointing_memory.py [--batch 16] [--length 128]

Each configuration runs in a fresh process (peak resident memory on CPU, torch.cuda.max_memory_allocated on a GPU):
forward, backward and an AdamW step on random token ids, as the Trainer runs them. The vocabulary is cut to
30,000 (XLM-R's 250,002 would add the same 0.7 GB of embedding and optimizer state to every row). Writes
benchmarks/checkpointing_memory.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(batch: int, length: int, checkpointing: bool, lora: bool, device: str) -> dict:
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    torch.manual_seed(0)
    cfg = XLMRobertaConfig(vocab_size=30000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                           intermediate_size=3072, max_position_embeddings=514, num_labels=3)
    model = XLMRobertaForSequenceClassification(cfg).to(device)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                                                 modules_to_save=["classifier"], task_type="SEQ_CLS"))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    ids = torch.randint(5, 30000, (batch, length), device=device)
    labels = torch.randint(0, 3, (batch,), device=device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.monotonic()
    for _ in range(2):  # the second step has the optimizer state allocated
        loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    seconds = (time.monotonic() - start) / 2
    peak = (torch.cuda.max_memory_allocated() if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"batch": batch, "length": length, "gradient_checkpointing": checkpointing, "lora": lora,
            "device": device, "peak_mib": round(peak / 2**20), "seconds_per_step": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", nargs=2, metavar=("CHECKPOINTING", "LORA"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "checkpointing_memory.json"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.batch, args.length, args.one[0] == "1", args.one[1] == "1", args.device)))
        return
    rows = []
    for checkpointing, lora in ((False, False), (True, False), (False, True), (True, True)):
        out = subprocess.run([sys.executable, __file__, "--batch", str(args.batch), "--length", str(args.length),
                              "--device", args.device, "--one", str(int(checkpointing)), str(int(lora))],
                             check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.splitlines()[-1]))
        print(rows[-1], flush=True)
    Path(args.out).write_text(json.dumps({"machine": platform.platform(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
