"""What a leaderboard protocol costs here: every entry's work from its sweep plan, timed by a
short probe of each model (sweep/probe.py), optionally calibrated against a board measured
on this machine (the ratio of its real wall time to the probe's estimate for its entries).

    python scripts/leaderboard_estimate.py --protocol cpu [--models PATTERN]
        [--calibrate /tmp/lb_sample --calibrate-seconds 240] [--probe-crop 48]

Prints one line per model (estimated seconds) and the total, in hours.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--protocol", default="cpu", help="preset name or protocol.json")
    ap.add_argument(
        "--models",
        default=None,
        help="comma list / patterns (default: the protocol's, else every offline model)",
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--probe-crop", type=int, default=48)
    ap.add_argument("--calibrate", type=Path, help="a board measured here (its models)")
    ap.add_argument("--calibrate-seconds", type=float, help="that board's wall time")
    args = ap.parse_args()

    import pandas as pd
    import torch

    from roundtrip_ml.studies.leaderboard import QUICK_MODELS, load_protocol, select_models
    from roundtrip_ml.studies.leaderboard.board import PER_PHOTO_COLUMNS, _entries, _sweep
    from roundtrip_ml.studies.leaderboard.protocol import ModelRef, Protocol, pin_photos
    from roundtrip_ml.sweep import parse_sweep
    from roundtrip_ml.sweep.grid import make_sweep_plan
    from roundtrip_ml.sweep.probe import estimate_work, probe

    torch.set_num_threads(1)
    t0 = time.perf_counter()

    def probed(p: Protocol, models: list[ModelRef], show: bool) -> float:
        """Seconds the probe predicts for every entry of ``p`` with ``models`` (its upscale
        paths included)."""
        total = 0.0
        for m in _entries(p, pd.DataFrame(columns=PER_PHOTO_COLUMNS), models):
            cfg = parse_sweep(_sweep(p, m, Path("/tmp/unused-estimate"), args.device), "estimate")
            plan = make_sweep_plan(cfg)
            est = estimate_work(plan)
            probe(plan, est, crop=min(args.probe_crop, p.crop or args.probe_crop))
            e = next(iter(est.values()))
            if e.seconds is None:
                print(f"{m.label} x{m.scale}: probe failed: {e.probe_error}")
                continue
            total += e.seconds
            if show:
                print(f"{m.label:36s} x{m.scale}  {e.seconds:8.1f} s (probe)", flush=True)
        return total

    p = pin_photos(load_protocol(args.protocol))
    default = ",".join(QUICK_MODELS) if p.name == "quick" else None
    models = (
        select_models(args.models or default, p.x1_scale)
        if args.models or default or not p.models
        else list(p.models)
    )
    total = probed(p, models, show=True)
    factor = 1.0
    if args.calibrate and args.calibrate_seconds:
        cal = load_protocol(args.calibrate / "protocol.json")
        predicted = probed(cal, list(cal.models), show=False)
        factor = args.calibrate_seconds / predicted
        print(
            f"calibration: {args.calibrate} took {args.calibrate_seconds:.0f} s, the probe "
            f"predicts {predicted:.0f} s for it: x{factor:.2f}"
        )
    print(
        f"{len(models)} models + baselines, protocol {p.name}: about "
        f"{total * factor / 3600:.2f} h ({total * factor:.0f} s) on {args.device}; probing "
        f"took {time.perf_counter() - t0:.0f} s"
    )


if __name__ == "__main__":
    main()
