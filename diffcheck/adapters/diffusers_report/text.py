"""The diffusers report as plain text: one line per configuration and step count, then the two-sample tests and the findings."""

from __future__ import annotations

from typing import Any

__all__ = ["format_report"]


def _g(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def format_report(report: dict) -> str:
    """The report as plain text: one line per configuration and step count, then two-sample tests and findings."""
    if not isinstance(report, dict) or "configurations" not in report:
        raise TypeError("report must be the dict returned by verify_diffusers")
    head = (f"diffcheck verify-diffusers  (diffusers {report['versions']['diffusers']}, torch {report['versions']['torch']}, "
            f"{report['date']})\nmetric: {report['metric']}\n")
    cols = ["configuration", "steps", "nfe", "error", "prior", "solver", "dc error", "dc solver", "agreement", "verdict"]
    lines = []
    for res in report["configurations"]:
        for i, r in enumerate(res["rows"]):
            d = r.get("diffcheck", {})
            lines.append([res["name"] if i == 0 else "", str(r["steps"]), _g(r.get("nfe")), _g(r.get("error")), _g(r.get("error_prior")),
                          _g(r.get("error_solver")), _g(d.get("error")), _g(d.get("error_solver")), _g(r.get("agreement")),
                          (res["verdict"] if i == 0 else "") if "failed" not in r else "failed"])
        od, oc = res["orders"].get("diffusers"), res["orders"].get("diffcheck")
        lines.append(["", "order", "", _g(od["order"]) if od else "-", "", f"nominal {res['nominal_order']:g}",
                      _g(oc["order"]) if oc else "-", "", f"vs {res['comparator']['name']}", ""])
    widths = [max(len(c), *(len(l[k]) for l in lines)) for k, c in enumerate(cols)]
    fmt = lambda row: "  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip()
    text = [head, fmt(cols), fmt(["-" * w for w in widths])] + [fmt(l) for l in lines]
    tests = [(res["name"], t) for res in report["configurations"] for t in res.get("two_sample", [])]
    if tests:
        text += ["", f"two-sample tests (n = {report['two_sample']['n']}, alpha per test {report['two_sample']['alpha_each']:.3g}):"]
        for name, t in tests:
            verdict = "pass" if t["passed"] else "REJECT"
            dc = t.get("diffcheck")
            beside = f"; diffcheck's sampler on the same grid: {'pass' if dc['passed'] else 'REJECT'}, p = {_g(dc['p_value'])}" if dc else ""
            text.append(f"  {verdict:6s} {name} on {t['preset']} at {t['steps']} steps: p = {_g(t.get('p_value'))}{beside}"
                        + (f" ({t['failed']})" if "failed" in t else ""))
    if report["findings"]:
        text += ["", "findings:"]
        for f in report["findings"]:
            mark = "!" if f["discrepancy"] else " "
            text.append(f" {mark} [{f['id']}] {f['title']}: {_short(f['size'])}")
    s = report["summary"]
    text += ["", f"{s['ok']} of {s['configurations']} configurations ok; discrepancies: {', '.join(s['discrepancies']) or 'none'}; "
             f"failed: {', '.join(s['failed']) or 'none'}; two-sample rejections of diffusers where diffcheck's sampler passed: "
             f"{', '.join(s['two_sample_rejected_where_diffcheck_passed']) or 'none'} ({len(s['two_sample_rejected'])} rejections in all)"]
    return "\n".join(text) + "\n"


def _short(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {_short(x)}" for k, x in v.items())
    return _g(v)
