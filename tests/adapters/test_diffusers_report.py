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
    # the installed diffusers expresses every quick configuration and probe, and the adapter drives them all
    assert report["summary"]["not_applicable"] == [] and report["summary"]["errors"] == []
    assert report["findings_not_run"] == [] and report["versions"]["numpy"]
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
    """The committed full report keeps the fields the text needs."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "diffusers_report.json"
    report = json.loads(path.read_text())
    text = R.format_report(report)
    assert all(f["id"] in text for f in report["findings"])
    # the current format: every configuration of the catalogue, findings as records, probes that could not run listed
    assert {c["name"] for c in report["configurations"]} == {c.name for c in R.cases()}
    assert report["versions"]["numpy"] and "findings_not_run" in report and not report["quick"]
    assert all({"id", "discrepancy", "size"} <= set(f) for f in report["findings"])


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


def test_learned_range_probe_agrees_with_diffchecks_learned_sampler_and_catches_a_beta_interpolation(monkeypatch):
    """The exact variance output gives diffcheck's learned-variance law (and, with trailing spacing, the exact law); a
    variance interpolated in beta instead of log beta (diffusers #2090) does not."""
    f = R.probe_learned_range((10,), full=20)
    assert isinstance(f, Record) and f.passed
    size = f.details["size"]
    assert max(size["law_difference_every_index"], size["law_difference_respaced"]) <= 1e-8 and size["largest_error_trailing"] <= 1e-9
    from diffusers import DDPMScheduler

    own = DDPMScheduler._get_variance

    def in_beta(self, t, predicted_variance=None, variance_type=None):
        if (variance_type or self.config.variance_type) != "learned_range":
            return own(self, t, predicted_variance, variance_type)
        small, large = own(self, t, None, "fixed_small"), own(self, t, None, "fixed_large")
        frac = (predicted_variance + 1) / 2
        return frac * large + (1 - frac) * small

    monkeypatch.setattr(DDPMScheduler, "_get_variance", in_beta)
    g = R.probe_learned_range((10,), full=20)
    assert not g.passed and g.details["size"]["law_difference_every_index"] > 1e-4


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


# -- releases: what an older diffusers cannot express is "not applicable"; a walk that stops short of the data is judged
def _euler_without_spacing():
    """EulerDiscreteScheduler as diffusers had it before 0.17: no timestep_spacing option (linspace spacing only)."""
    from diffusers import EulerDiscreteScheduler

    class Euler(EulerDiscreteScheduler):
        def __init__(self, num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                     prediction_type="epsilon"):
            super().__init__(num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end,
                             beta_schedule=beta_schedule, prediction_type=prediction_type)

    return Euler


def test_a_configuration_a_release_cannot_express_is_not_applicable_and_the_rest_runs(monkeypatch):
    import diffusers

    monkeypatch.setattr(diffusers, "EulerDiscreteScheduler", _euler_without_spacing())
    with pytest.raises(R.A.NotApplicable, match="no option 'timestep_spacing'"):
        R.A.SchedulerConfig.make("EulerDiscreteScheduler", timestep_spacing="trailing")
    report = R.verify_diffusers(schedulers=["euler-trailing-v", "euler-linspace-eps"], steps=(5, 10), progress=False,
                                mixtures=(), probes=False)
    by = {c["name"]: c for c in report["configurations"]}
    assert by["euler-trailing-v"]["verdict"] == "not applicable"
    assert "timestep_spacing" in by["euler-trailing-v"]["reason"] and diffusers.__version__ in by["euler-trailing-v"]["reason"]
    assert by["euler-linspace-eps"]["verdict"] == "ok"
    assert report["summary"]["not_applicable"] == ["euler-trailing-v"] and report["summary"]["errors"] == []
    text = R.format_report(report)
    assert "euler-trailing-v: not applicable" in text and "not applicable to this diffusers: 1 configurations" in text
    # a probe whose configurations all need the missing option is reported as not applicable, not raised
    from diffcheck.adapters.diffusers_report import report as RP

    monkeypatch.setattr(diffusers, "DDIMScheduler", type("DDIM", (diffusers.DDIMScheduler,), {
        "__init__": lambda self, num_train_timesteps=1000: diffusers.DDIMScheduler.__init__(self, num_train_timesteps)}))
    got = RP._run_probe((R.probe_ddim_previous, ((10,),), {"extra": ()}))
    assert got["status"] == "not applicable" and "timestep_spacing" in got["reason"]


def test_a_sampler_meant_to_reach_the_data_is_judged_against_the_data_law():
    """DPM-Solver++ with Karras sigmas that keeps sigma_min as its last sigma (what diffusers did before #6477) stops at
    sigma_min after a step of size 0: on the narrow target that residual noise exceeds its discretisation error and the
    configuration is a discrepancy; the same sampler ending at sigma = 0 is not."""
    from diffcheck.adapters.diffusers_report.measure import measure_case

    def case(final):
        cfg = R.A.SchedulerConfig.make("DPMSolverMultistepScheduler", use_karras_sigmas=True, final_sigmas_type=final)
        return R.Case("k", cfg, R.cases()[0].comparator, False, 2.0, "float32")

    stuck, fixed = measure_case(case("sigma_min"), (10, 30)), measure_case(case("zero"), (10, 30))
    assert stuck["verdict"] == "discrepancy" and "meant to reach the data" in stuck["notes"][0], stuck["notes"]
    row = stuck["reach_narrow"][-1]
    assert row["data_gap"] > R.REACH_FACTOR * row["discretisation"] and row["error"] > row["discretisation"]
    # judged against the law where it stops (as before), its error converges: the old judging saw nothing
    assert all(r["error_end"] < 0.3 for r in stuck["rows"]) and stuck["rows"][-1]["error_end"] < stuck["rows"][0]["error_end"]
    assert fixed["verdict"] == "ok" and "reach_narrow" not in fixed and all(r["data_gap"] == 0.0 for r in fixed["rows"])


def test_reach_verdict_needs_the_gap_beyond_twice_the_discretisation_error():
    from diffcheck.adapters.diffusers_report.measure import reach_verdict

    row = {"steps": 50, "last_time": 0.001, "error": 0.25, "discretisation": 0.1}
    assert reach_verdict([dict(row, data_gap=0.3)], "narrow") is not None
    assert reach_verdict([dict(row, data_gap=0.19)], "narrow") is None
    assert reach_verdict([dict(row, data_gap=0.0)], "narrow") is None


def test_a_report_can_be_narrowed_to_named_configurations_and_probes():
    """What the release runner's evidence runs use: no configuration, one probe, no two-sample test."""
    report = R.verify_diffusers(schedulers=[], progress=False, mixtures=(), probes=["float32-tables"])
    assert report["configurations"] == [] and [f["id"] for f in report["findings"]] == ["float32-tables"]
    assert report["selection"] == {"schedulers": [], "probes": ["float32-tables"]} and report["findings_not_run"] == []
    assert "float32-tables" in R.format_report(report)
    with pytest.raises(ValueError, match="probes: unknown ids"):
        R.verify_diffusers(schedulers=[], progress=False, probes=["no-such-probe"])
