"""``diffcheck sample`` exits 0 when the samples are consistent with the exact law and 1 when they are not."""

from __future__ import annotations

import pytest

from diffcheck.cli import main


def test_a_right_sampler_exits_0_and_a_wrong_one_exits_1(capsys):
    assert main(["sample", "--sampler", "ddim", "--steps", "100", "-n", "500"]) == 0
    assert "consistent with the exact law" in capsys.readouterr().out
    assert main(["sample", "--sampler", "ddim", "--steps", "2", "-n", "500"]) == 1  # two DDIM steps: far from the law
    assert "NOT the exact law" in capsys.readouterr().out


@pytest.mark.parametrize("sampler", ["euler-maruyama", "pc"])
def test_cosine_sampling_ends_in_one_verdict_line(sampler, capsys):
    """The cosine schedule is singular at t = 1; the command's grid starts at CosineVP.t_max and the verdict is one line."""
    rc = main(["sample", "--process", "cosine", "--sampler", sampler, "-n", "500"])
    out, err = capsys.readouterr()
    assert rc in (0, 1) and "Traceback" not in err
    assert out.count("\n") == 1 and ("consistent with the exact law" in out) == (rc == 0)
    assert rc == 0  # from t_max both are consistent with the exact law at alpha = 1e-3
