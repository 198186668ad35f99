"""The diffusers report: its fields, its verdicts, and that it notices a mis-mapped time and a wrong sampler."""

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

import toy  # noqa: E402
from diffcheck.checks import Record  # noqa: E402
from diffcheck.adapters import format_report as lazy_format_report  # noqa: E402
from diffcheck.adapters import diffusers_report as R  # noqa: E402

ROW_FIELDS = {"steps", "first_time", "last_time", "nfe", "error", "error_end", "error_prior", "error_solver", "diffcheck", "agreement"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "diffusers_report.json"
    report = R.verify_diffusers(quick=True, progress=False, out=str(path))
    return report, path


def test_quick_report_is_json_with_its_fields(quick):
    report, path = quick
    assert json.loads(path.read_text()) == json.loads(json.dumps(report))
    for key in ("tool", "date", "versions", "steps", "metric", "configurations", "findings", "summary", "two_sample"):
        assert key in report
    assert report["versions"]["diffusers"]
    assert report["steps"] == list(R.QUICK_STEPS)
    assert {c["name"] for c in report["configurations"]} == set(R.QUICK)
    for res in report["configurations"]:
        assert res["verdict"] in ("ok", "discrepancy", "failed")
        assert len(res["rows"]) == len(R.QUICK_STEPS)
        for row in res["rows"]:
            assert ROW_FIELDS <= set(row), res["name"]
            assert all(v >= 0 for v in (row["error"], row["error_prior"], row["agreement"]))
        assert set(res["orders"]) == {"diffusers", "diffcheck"}
        assert len(res["two_sample"]) == 1 and res["two_sample"][0]["preset"] == "anisotropic"
    for f in report["findings"]:
        # the checks' record fields, and the fields of earlier reports
        assert {"id", "source", "claim", "expected", "measured", "tolerance", "passed", "seconds"} <= set(f)
        assert {"id", "title", "discrepancy", "expected", "measured", "size", "detail", "configurations"} <= set(f)
        assert f["discrepancy"] == (not f["passed"]) and f["title"] == f["claim"]


def test_configurations_that_run_diffchecks_algorithms_agree(quick):
    report, _ = quick
    by = {c["name"]: c for c in report["configurations"]}
    for name in ("ddim-trailing-v", "euler-trailing-v", "euler-ancestral-linspace-eps", "heun-linspace-v"):
        assert by[name]["verdict"] == "ok", (name, by[name]["notes"])
        tol = R.FLOAT64_AGREEMENT if by[name]["arithmetic"] == "float64" else R.FLOAT32_AGREEMENT
        assert max(r["agreement"] for r in by[name]["rows"]) <= tol
        # the same algorithm on the same grid has the same error
        for r in by[name]["rows"]:
            assert abs(r["error"] - r["diffcheck"]["error"]) <= 10 * tol


def test_verdicts_follow_the_schedulers_own_steps(quick):
    """DDIM 'linspace' steps to t - T//N; the report flags it exactly when that is not the next kept timestep."""
    report, _ = quick
    by = {c["name"]: c for c in report["configurations"]}
    sched = R.A.build(R.A.SchedulerConfig.make("DDIMScheduler", timestep_spacing="linspace"))
    off_grid = False
    for n in R.QUICK_STEPS:
        R.A.set_timesteps(sched, n)
        ts = sched.timesteps.tolist()
        off_grid |= any(a - 1000 // n != b for a, b in zip(ts[:-1], ts[1:]))
    assert (by["ddim-linspace-eps"]["verdict"] == "discrepancy") == off_grid
    ids = {f["id"] for f in report["findings"]}
    assert "ddim-previous-timestep" in ids and "leading-spacing" in ids
    assert ("configuration:ddim-linspace-eps" in ids) == off_grid


def test_committed_report_still_formats():
    """The committed full report (written before findings became records) keeps the fields the text needs."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "diffusers_report.json"
    report = json.loads(path.read_text())
    text = R.format_report(report)
    assert all(f["id"] in text for f in report["findings"])


def test_format_report_lists_every_configuration(quick):
    report, _ = quick
    text = lazy_format_report(report)
    for res in report["configurations"]:
        assert res["name"] in text
    assert "findings:" in text and "two-sample tests" in text
    with pytest.raises(TypeError, match="report"):
        R.format_report({"not": "a report"})


def test_a_time_mapped_off_by_one_index_is_detected():
    kw = dict(schedulers=["ddim-trailing-v", "euler-trailing-v"], steps=(5, 10), progress=False, mixtures=(), probes=False)
    right = R.verify_diffusers(**kw)
    wrong = R.verify_diffusers(index_shift=1, **kw)
    assert [c["verdict"] for c in right["configurations"]] == ["ok", "ok"]
    assert [c["verdict"] for c in wrong["configurations"]] == ["discrepancy", "discrepancy"]
    for res in wrong["configurations"]:
        assert max(r["agreement"] for r in res["rows"]) > 1e-4
    assert wrong["summary"]["discrepancies"] == ["ddim-trailing-v", "euler-trailing-v"]


def test_two_sample_test_passes_the_right_sampler_and_rejects_a_wrong_one():
    """At 200 steps DDIM's law is within the test's resolution at n = 500; a model time off by 100 indices is not."""
    case = next(c for c in R.cases() if c.name == "ddim-trailing-v")
    good = R.two_sample(case, "anisotropic", 200, 500, 1e-3, seed=5)
    bad = R.two_sample(case, "anisotropic", 200, 500, 1e-3, seed=5, index_shift=100)
    assert good["passed"] and good["diffcheck"]["passed"]
    assert not bad["passed"] and bad["p_value"] < 1e-6


def test_law_distance_is_zero_on_equal_laws_and_scale_free():
    m = torch.tensor([1.0, -0.5], dtype=torch.float64)
    c = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    assert R.law_distance(m, c, m, c) == 0.0
    d = R.law_distance(m + 0.1, 1.2 * c, m, c)
    # mean part 0.1 sqrt(2) / sqrt(1.5), covariance part 0.2 |C|_F / tr C
    assert abs(d - (0.1 * 2**0.5 / 1.5**0.5 + 0.2 * float(c.norm()) / 1.5)) <= 1e-15
    assert abs(R.law_distance(3 * (m + 0.1), 9 * 1.2 * c, 3 * m, 9 * c) - d) <= 1e-15


def test_report_arguments_are_checked():
    with pytest.raises(ValueError, match="steps"):
        R.verify_diffusers(steps=(10,), progress=False)
    with pytest.raises(ValueError, match="schedulers"):
        R.verify_diffusers(schedulers=["nothing-like-this"], progress=False)
    with pytest.raises(ValueError, match="mixtures"):
        R.verify_diffusers(schedulers=["ddim-trailing-v"], steps=(5, 10), mixtures=["no_such_preset"], progress=False)


def test_learned_range_probe_is_exact_on_trailing_spacing():
    f = R.probe_learned_range((10,))
    assert isinstance(f, Record) and f.passed and f.details["size"]["largest_error_trailing"] <= 1e-9
    # leading spacing ends at index 0 with no noise: Var(x_0 | x_1) is lost, a floor far above round-off
    assert f.details["size"]["largest_error_leading"] > 1e-5


def test_narrow_preset_exists_for_the_report():
    assert callable(toy.narrow) and callable(toy.anisotropic)


def test_second_order_steps_give_one_law_for_every_prediction_type():
    """Heun's corrector and DPM-Solver++ 2M with v and x0 agree with eps to float32 round-off; the probe reports what PNDM does."""
    f = R.probe_second_order_v((10,))
    size = f.details["size"]
    for name in ("HeunDiscreteScheduler", "DPMSolverMultistepScheduler"):
        assert size[f"largest_law_difference_{name}"] <= R.FLOAT32_AGREEMENT
    assert f.passed == (max(size.values()) <= R.FLOAT32_AGREEMENT)


def test_report_without_diffusers_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(ImportError, match=r"pip install 'diffcheck\[diffusers\]'"):
        R.verify_diffusers(quick=True, progress=False)
