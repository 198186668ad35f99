"""The summary of a GPU benchmark result: the fastest run of each case, the agreement verdict, the ratios
against diffusers, and the targets of the DDIM-50 headline. A pure function of the result's rows."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["summarize", "ratios", "targets", "TARGET_RATIO", "TARGET_FRACTION"]

TARGET_RATIO = 1.5  # throughput over diffusers' fastest mode of the same precision, batch and NFE
TARGET_FRACTION = 0.35  # achieved bf16 TFLOP/s over the matrix-multiply rate measured in the same run


def ratios(res: dict) -> list[dict]:
    """Each of our runs against diffusers' runs of the same case, batch and precision class: the fastest
    mode, and the fastest eager mode."""
    theirs = [d for d in (res.get("diffusers") or {}).get("runs", []) if d["status"] == "ok"]
    out = []
    for r in (r for r in res["runs"] if r["status"] == "ok"):
        same = [d for d in theirs if (d["case"], d["batch"], d["precision"]) == (r["case"], r["batch"], r["precision"])]
        if not same:
            continue
        best = max(same, key=lambda d: d["images_per_s"])
        eager = [d["images_per_s"] for d in same if "compile" not in d["mode"]]
        out.append({"case": r["case"], "variant": r["variant"], "batch": r["batch"], "precision": r["precision"],
                    "ours_images_per_s": r["images_per_s"], "diffusers_best_mode": best["mode"],
                    "ratio_vs_best": r["images_per_s"] / best["images_per_s"],
                    "ratio_vs_eager": r["images_per_s"] / max(eager) if eager else None})
    return out


def targets(res: dict, headline: str, rat: list[dict]) -> dict:
    """The issue's three targets for ``headline`` (whether they apply: full configuration on an H100 or H200)."""
    env = res["environment"]
    applies = (str(env.get("device", "")).startswith("cuda") and res.get("configuration") == "full"
               and bool(re.search(r"H100|H200", str(env.get("device_name", "")))))
    out: dict[str, Any] = {"applies": applies, "note": "measured on the target hardware" if applies
                           else "targets are defined for the full configuration on an H100 or H200"}
    head = [r for r in res["runs"] if r["case"] == headline and r["status"] == "ok"]
    if not head:
        out["status"] = f"{headline} was not measured"
        return out
    fastest = max(head, key=lambda r: r["images_per_s"])
    out["fastest"] = {k: fastest[k] for k in ("variant", "batch", "images_per_s", "tflops", "fraction_of_bf16_matmul")}
    frac = fastest["fraction_of_bf16_matmul"]
    out["matmul_fraction"] = {"value": frac, "target": TARGET_FRACTION, "met": None if frac is None else frac >= TARGET_FRACTION}
    mine = [q for q in rat if (q["case"], q["variant"], q["batch"]) == (headline, fastest["variant"], fastest["batch"])]
    if mine:
        q = mine[0]
        out["diffusers_ratio"] = {"value": q["ratio_vs_best"], "against": q["diffusers_best_mode"], "target": TARGET_RATIO,
                                  "met": q["ratio_vs_best"] >= TARGET_RATIO, "value_vs_eager_diffusers": q["ratio_vs_eager"]}
    else:
        out["diffusers_ratio"] = {"value": None, "met": None, "reason": "no diffusers run at the fastest variant's batch and precision"}
    out["agreement"] = {"fastest_agrees": fastest.get("agrees")}
    return out


def summarize(res: dict, headline: str) -> dict:
    """Best run per case, the agreement verdict over every run, the diffusers ratios and the targets."""
    runs = [r for r in res["runs"] if r["status"] == "ok"]
    best: dict[str, dict] = {}
    for r in runs:
        if r["case"] not in best or r["images_per_s"] > best[r["case"]]["images_per_s"]:
            best[r["case"]] = r
    keys = ("variant", "batch", "images_per_s", "ms_per_nfe", "tflops", "fraction_of_bf16_matmul", "peak_memory_bytes")
    rat = ratios(res)
    return {
        "cases": {cid: {k: r.get(k) for k in keys} for cid, r in best.items()},
        "agreement": {"all_passed": all(r.get("agrees", False) for r in runs),
                      "failed": [f"{r['case']} {r['variant']} B={r['batch']}" for r in runs if not r.get("agrees", False)]},
        "diffusers_ratios": rat,
        "targets": targets(res, headline, rat),
    }
