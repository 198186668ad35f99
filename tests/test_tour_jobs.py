"""The tour on several processes gives the records, in the order, and the figures that it gives in one process."""

from __future__ import annotations

import io

import pytest

from diffcheck import tour
from diffcheck.tour_jobs import auto_jobs

ONLY = "ddpm.alpha_bar_T,iddpm.cosine_table,iddpm.beta_tilde,process.subvp,ncsnv2.technique2"


def _stable(report: dict) -> list[dict]:
    return [{k: v for k, v in rec.items() if k != "seconds"} for rec in report["checks"]]


def test_two_processes_give_the_records_and_figures_of_one(tmp_path):
    one = tour.run_tour(ONLY, tmp_path / "one", progress=False, stream=io.StringIO(), jobs=1)
    two = tour.run_tour(ONLY, tmp_path / "two", progress=False, stream=io.StringIO(), jobs=2)
    assert [r["id"] for r in one["checks"]] == [r["id"] for r in two["checks"]]
    assert len(one["checks"]) == 5 and len({r["id"].split(".")[0] for r in one["checks"]}) == 4  # several modules
    assert _stable(one) == _stable(two)
    assert [p.replace("/one/", "/x/") for p in one["plots"]] == [p.replace("/two/", "/x/") for p in two["plots"]]
    assert one["plots"] and all((tmp_path / "two" / "plots" / p.rsplit("/", 1)[-1]).is_file() for p in two["plots"])


def test_jobs_is_checked_and_small_selections_stay_in_process(tmp_path):
    from diffcheck.checks import select

    with pytest.raises(ValueError, match="jobs"):
        tour.run_tour(ONLY, tmp_path, with_plots=False, progress=False, jobs=0)
    assert auto_jobs(select("ddpm.alpha_bar_T")) == 1
