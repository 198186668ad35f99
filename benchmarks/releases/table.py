"""The releases table: each catalogued diffusers scheduler bug, the last release that had it, and what its report says.

Reads ``reports/diffusers-<release>.json`` (written by ``releases.py run``; where it is missing,
``diffusers-<release>-evidence.json`` from ``run --evidence``) and, as the
fixed control, the committed report of the diffusers the test extra installs
(``benchmarks/results/diffusers_report.json``); writes ``table.md`` and ``table.json``.
A bug is flagged when the report's configuration named for it is a discrepancy or failed,
or the finding named for it is a discrepancy; the figure is that record's own.
"""

from __future__ import annotations

import json
from pathlib import Path

from diffcheck.io import write_text

CURRENT = Path(__file__).resolve().parents[1] / "results" / "diffusers_report.json"

# facts from the repository's history (git tag --contains of each fix): see the README of this folder
BUGS = [
    {"bug": "diffusers#590", "title": "KarrasVe sigma schedule missing a square", "release": "0.3.0", "fixed_in": "0.4.0 (#627)",
     "evidence": [("finding", "sigma-range")]},
    {"bug": "diffusers#1512", "title": "Heun's second stage at sigma_hat (v-prediction)", "release": "0.9.0", "fixed_in": "0.10.0",
     "note": "never released: HeunDiscreteScheduler (#1336), its v-prediction (#1505) and the fix (#1512) all landed between "
             "v0.9.0 and v0.10.0, so 0.9.0 has no Heun scheduler and 0.10.0 has the fixed one",
     "evidence": [("configuration", "heun-linspace-v")]},
    {"bug": "diffusers#2090", "title": "learned-range variance interpolated in beta", "release": "0.12.1", "fixed_in": "0.13.0",
     "evidence": [("finding", "learned-range-variance")]},
    {"bug": "diffusers#2094 (#1486)", "title": "DDIM keeps the x_0 output as eps", "release": "0.14.0", "fixed_in": "0.15.0",
     "evidence": [("configuration", "ddim-leading-x0")]},
    {"bug": "diffusers#3005", "title": "add_noise casts alphas_cumprod to float16", "release": "0.14.0", "fixed_in": "0.15.0",
     "evidence": [("finding", "add-noise-keeps-tables")]},
    {"bug": "diffusers#6477 (#5689)", "title": "DPM-Solver with Karras sigmas repeats the last sigma", "release": "0.25.1",
     "fixed_in": "0.26.0", "evidence": [("configuration", "dpmpp-2m-karras-eps")]},
    {"bug": "diffusers#6953", "title": "single-step DPM-Solver ignores lower_order_final for even step counts", "release": "0.26.2",
     "fixed_in": "0.26.3", "evidence": [("configuration", "dpm-single-2-eps")]},
    {"bug": "diffusers#9261", "title": "DDPM's previous timestep for trailing spacing", "release": "0.31.0", "fixed_in": "0.32.0 (#9384)",
     # at step counts that divide T = 1000 (the report's) t - T // N is the next kept index: only the probe at 30 and 64
     # steps can see the bug (ddpm-trailing-large's discrepancy is the noise added on the step into the data, in every release)
     "evidence": [("configuration", "ddpm-trailing-small-v"), ("finding", "ddpm-previous-timestep")]},
    {"bug": "diffusers#14213", "title": "negative radicand in Euler ancestral (cosine, float32)", "release": "0.40.0",
     "fixed_in": "open upstream (#14221 proposed)", "evidence": [("finding", "few-steps-finite")]},
    {"bug": "diffusers#2585", "title": "leading spacing starts at 980 while x_T ~ N(0, I)", "release": "every release (the default)",
     "report_of": "0.40.0", "fixed_in": "options since 0.17.0 (timestep_spacing, rescale_betas_zero_snr); the default is unchanged",
     "evidence": [("finding", "leading-spacing")]},
]


def _short(v, n: int = 220) -> str:
    text = (v if isinstance(v, str) else json.dumps(v)).replace("|", "/")
    return text if len(text) <= n else text[: n - 3] + "..."


def _evidence(report: dict, kind: str, name: str) -> dict:
    if kind == "configuration":
        res = next((r for r in report["configurations"] if r["name"] == name), None)
        if res is None:
            return {"what": f"configuration {name}", "state": "absent"}
        if res["verdict"] in ("not applicable", "error"):
            return {"what": f"configuration {name}", "state": res["verdict"], "figure": res.get("reason", "")}
        flagged = res["verdict"] in ("discrepancy", "failed")
        return {"what": f"configuration {name}", "state": res["verdict"], "flagged": flagged,
                "figure": "; ".join(res.get("notes", [])) or f"verdict {res['verdict']}"}
    found = next((f for f in report["findings"] if f["id"] == name), None)
    if found is not None:
        return {"what": f"finding {name}", "state": "discrepancy" if found["discrepancy"] else "passed",
                "flagged": bool(found["discrepancy"]), "figure": found["size"]}
    skipped = next((f for f in report.get("findings_not_run", []) if f["id"] == name), None)
    if skipped is not None:
        return {"what": f"finding {name}", "state": skipped["status"], "figure": skipped["reason"]}
    return {"what": f"finding {name}", "state": "absent"}


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def write_table(reports: Path, out_dir: Path) -> dict:
    """Build the table from the reports under ``reports``; write ``table.json`` and ``table.md`` under ``out_dir``."""
    current = _load(CURRENT)
    rows, releases = [], {}
    for bug in BUGS:
        row = {k: v for k, v in bug.items() if k != "evidence"}
        version = bug.get("report_of") or bug["release"]
        if version is None:
            row.update(installed=None, flagged=None, evidence=[])
            rows.append(row)
            continue
        # the full report where it exists, else the evidence run (only the records named for the bugs)
        suffix = "" if (reports / f"diffusers-{version}.json").exists() else "-evidence"
        run = _load(reports / f"run-{version}{suffix}.json") or {}
        env = run.get("environment", {})
        report = _load(reports / f"diffusers-{version}{suffix}.json")
        row["report"] = f"reports/diffusers-{version}{suffix}.json" if report else None
        row["report_kind"] = "full" if not suffix else "evidence"
        row["installed"] = bool(env.get("installed")) and bool(env.get("imports"))
        if not row["installed"]:
            row.update(flagged=None, evidence=[], error=env.get("error", "no environment"))
        elif report is None:
            row.update(flagged=None, evidence=[], error=run.get("error", "no report"))
        else:
            row["evidence"] = [_evidence(report, *e) for e in bug["evidence"]]
            if any(e.get("flagged") for e in row["evidence"]):
                row["flagged"] = True
            elif row["evidence"] and all(e["state"] == "not applicable" for e in row["evidence"]):
                row["flagged"] = "not applicable"
            else:
                row["flagged"] = False
            if not suffix:
                releases[version] = report["summary"]
        if current is not None and bug["evidence"]:
            row["current"] = {"diffusers": current["versions"]["diffusers"],
                              "evidence": [_evidence(current, *e) for e in bug["evidence"]]}
        rows.append(row)
    summary = {v: {"configurations": s["configurations"], "not_applicable": len(s.get("not_applicable", [])),
                   "errors": s.get("errors", []), "findings_not_applicable": len(s.get("findings_not_applicable", [])),
                   "findings_with_errors": s.get("findings_with_errors", []), "discrepancies": s["discrepancies"],
                   "failed": s["failed"]} for v, s in sorted(releases.items(), key=lambda kv: [int(p) for p in kv[0].split(".")])}
    table = {"bugs": rows, "releases": summary}
    write_text(out_dir / "table.json", json.dumps(table, indent=2) + "\n")
    write_text(out_dir / "table.md", _markdown(table) + "\n## Compact (the README's)\n\n" + compact(table))
    return table


def _figure(e: dict) -> str:
    """One record's figure in a few words: a finding's sizes to three digits, a configuration's first reason."""
    fig = e.get("figure", "")
    if isinstance(fig, dict):
        fig = ", ".join(f"{k} {v:.3g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else f"{k} {v}"
                        for k, v in fig.items() if v is not None)
    return _short(str(fig).split("; ")[0], 340)


def compact(table: dict) -> str:
    """The README's table: bug, release, flagged, and the figure of each record that flagged it (or why not)."""
    now = next((r["current"]["diffusers"] for r in table["bugs"] if r.get("current")), "current")
    lines = [f"| bug | release | flagged | by (record: figure) | the same records on {now} |", "|---|---|---|---|---|"]
    for r in table["bugs"]:
        shown = [e for e in r.get("evidence", []) if e.get("flagged")] or r.get("evidence", [])
        by = "; ".join(f"{e['what'].split(' ', 1)[1]} ({e['state']}): {_figure(e)}" for e in shown) or r.get("error", "")
        names = {e["what"] for e in shown}
        cur = "; ".join(f"{e['what'].split(' ', 1)[1]}: {e['state']}" for e in r.get("current", {}).get("evidence", [])
                        if e["what"] in names) or "-"
        release = (r.get("report_of") or r["release"]) + (" (the default in every release)" if r.get("report_of") else "")
        release += ", evidence run" if r.get("report_kind") == "evidence" else ""
        lines.append(f"| {r['bug']} {r['title']} | {release} | {_mark(r.get('flagged'))} | {by} | {cur} |")
    return "\n".join(lines) + "\n"


def _mark(flag) -> str:
    if isinstance(flag, str):
        return flag
    return "-" if flag is None else ("yes" if flag else "no")


def _markdown(table: dict) -> str:
    lines = ["# diffcheck verify-diffusers on the releases that had the bugs", "",
             "| bug | last release with it | installed | flagged | by | in the current release |", "|---|---|---|---|---|---|"]
    for r in table["bugs"]:
        by = "; ".join(f"{e['what']} ({e['state']}): {_short(e.get('figure', ''))}" for e in r.get("evidence", [])) or r.get("error", "")
        if r.get("note"):
            by += f" ({r['note']})"
        now = r.get("current")
        cur = ("; ".join(f"{e['what']}: {e['state']}" for e in now["evidence"]) + f" ({now['diffusers']})") if now else "-"
        kind = " [evidence run]" if r.get("report_kind") == "evidence" else ""
        lines.append(f"| {r['bug']}: {r['title']} | {r['release']}{kind} (fixed: {r['fixed_in']}) | {_mark(r.get('installed'))} | "
                     f"{_mark(r.get('flagged'))} | {by} | {cur} |")
    lines += ["", "## Per release", "", "| release | configurations | not applicable | probes not applicable | errors | discrepancies | failed |",
              "|---|---|---|---|---|---|---|"]
    for v, s in table["releases"].items():
        errors = ", ".join(s["errors"] + s["findings_with_errors"]) or "none"
        lines.append(f"| {v} | {s['configurations']} | {s['not_applicable']} | {s['findings_not_applicable']} | {errors} | "
                     f"{', '.join(s['discrepancies']) or 'none'} | {', '.join(s['failed']) or 'none'} |")
    return "\n".join(lines) + "\n"
