"""The zoo: every re-created bug fails a generic check, every fixed form passes them all."""

import pytest

from diffcheck.zoo import ENTRIES, check_entry, format_table, zoo_table

NOT_CAUGHT = {"diffusers#2090", "k-diffusion#56"}  # see the README: not visible to the generic checks on these targets


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.id)
def test_generic_checks_catch_the_wrong_form_and_pass_the_right_one(entry):
    r = check_entry(entry)
    assert not r["false_alarms"], r["right"]
    if entry.id in NOT_CAUGHT:
        assert not r["caught"], r["wrong"]  # if this starts to catch it, move it out of NOT_CAUGHT
    else:
        assert r["caught"], r["wrong"]


def test_table_text():
    table = zoo_table(["diffusers#590", "k-diffusion#43"])
    text = format_table(table)
    assert "catch rate: 2 of 2 bugs" in text and "diffusers#590" in text
