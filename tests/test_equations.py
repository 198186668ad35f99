"""The equation index: citations read unambiguously, every source names its paper, and docs/equations.md is current."""

import json

import pytest

from diffcheck import equations as E


def test_citations_attach_each_reference_to_its_paper():
    cs = E.citations("Ho et al. 2020, Eq. 3-5 and 13; Sohl-Dickstein et al. 2015")
    assert cs == [E.Citation("Ho et al. 2020", ("Eq. 3", "Eq. 4", "Eq. 5", "Eq. 13")), E.Citation("Sohl-Dickstein et al. 2015")]
    assert E.citations("Song et al. 2021, Eq. 13 (Heun; Karras et al. 2022, Algorithm 1)") == [
        E.Citation("Song et al. 2021", ("Eq. 13",)), E.Citation("Karras et al. 2022", ("Algorithm 1",))]
    assert E.citations("Algorithm 2 of Karras et al. 2022") == [E.Citation("Karras et al. 2022", ("Algorithm 2",))]
    assert E.citations("Goodfellow et al. 2014, Prop. 1 and Thm. 1")[0].refs == ("Proposition 1", "Theorem 1")
    assert E.citations("Song et al. 2021b, Thm. 1-2")[0] == E.Citation("Song et al. 2021b", ("Theorem 1", "Theorem 2"))


def test_bare_references_are_found():
    assert E.bare_references("Eq. 11") == ["Eq. 11"]
    assert E.bare_references("the posterior (Eq. 6-7)") == ["Eq. 6", "Eq. 7"]
    assert E.bare_references("Ho et al. 2020, Eq. 11; Algorithm 2") == ["Algorithm 2"]  # the second segment names no paper
    assert E.bare_references("Ho et al. 2020, Eq. 11") == [] and E.bare_references("Algorithm 2 of Ho et al. 2020") == []


def test_every_sampler_paper_and_check_source_cites_with_author_and_year():
    """A sampler's declared paper and a check's source never hold a bare 'Eq. 11'."""
    from diffcheck import samplers as S
    from diffcheck.checks import registry

    texts = {f"sampler {n}": S.info(getattr(S, n)).paper for n in S.__all__ if getattr(getattr(S, n), "info", None)}
    texts |= {f"check {cid}": fn.source for cid, fn in registry().items()}
    assert len(texts) > 80
    bare = {name: E.bare_references(text) for name, text in texts.items() if E.bare_references(text)}
    assert not bare, bare


def test_docs_equations_md_is_current():
    """docs/equations.md is what the code's metadata and the recorded tour give now: regenerate with 'diffcheck equations --write'."""
    record = E.load_record()
    assert record is not None, "docs/equations-tour.json (a recorded tour) is missing"
    assert E.INDEX.read_text(encoding="utf-8") == E.render(E.build_index(), record, checks=E.uncited_checks()), \
        "docs/equations.md is stale: run 'diffcheck equations --write'"


def test_index_rows_name_paper_functions_and_checks():
    rows = E.build_index(checks={"x.one": "Ho et al. 2020, Eq. 11", "x.two": "definition of log-SNR"},
                         samplers={"m.ddpm": "Ho et al. 2020, Algorithm 2"},
                         docstrings=[("m.step", "One step (Ho et al. 2020, Eq. 11)."), ("m.other", "No citation.")])
    assert [(r.paper, r.ref, r.functions, r.checks) for r in rows] == [
        ("Ho et al. 2020", "Eq. 11", ["m.step"], ["x.one"]), ("Ho et al. 2020", "Algorithm 2", ["m.ddpm"], [])]
    record = E.record_tour({"checks": [{"id": "x.one", "passed": False, "seconds": 1.0}], "environment": {"date": "D"},
                            "summary": {"passed": 0, "total": 1}})
    text = E.render(rows, record)
    assert "| Ho et al. 2020, Eq. 11 | `m.step` | `x.one` | **FAIL** |" in text and "the tour of D" in text
    assert "| Ho et al. 2020, Algorithm 2 | `m.ddpm` | — | — |" in text
    assert "no tour recorded" in E.render(rows, None)
    tail = E.render(rows, record, checks={"x.two": "definition of log-SNR"})
    assert "## Checks that cite no paper" in tail and "| definition of log-SNR | `x.two` | not in the recorded tour |" in tail
    with pytest.raises(ValueError, match="tour"):
        E.record_tour({"checks": []})


def test_cli_prints_the_index_of_one_paper(capsys, tmp_path):
    from diffcheck.cli import main

    assert main(["equations", "--paper", "Ho et al. 2020"]) == 0
    out = capsys.readouterr().out
    assert "## Ho et al. 2020" in out and "ddpm_ancestral" in out
    assert "## Song et al. 2021" not in out and "## Ho et al. 2022" not in out
    assert main(["equations", "--paper", "Nobody 1900"]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"not": "a tour"}))
    assert main(["equations", "--tour", str(bad)]) == 2
