"""README.md stays true about configuration and the rules it states."""

from __future__ import annotations

from app.core.addresses import PLUS_IGNORED, normalise_email
from app.core.config import Settings
from tests.conftest import ROOT


def test_every_setting_is_documented() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`{name}`" not in readme]
    assert missing == []


def test_the_plus_rule_is_the_one_the_code_applies() -> None:
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "`+tags` are dropped" not in readme  # not from every address: see below
    start = readme.index("a `+tag` is dropped only at the providers")
    rule = readme[start : readme.index("so it is kept", start)]
    listed = {d.strip(" ,") for d in rule.split("(", 1)[1].split(")", 1)[0].split()}
    assert listed == PLUS_IGNORED
    # And the code does what the README says: tags dropped there, kept elsewhere.
    assert normalise_email("Ann+news@Proton.me") == "ann@proton.me"
    assert normalise_email("ann+bob@example.org") == "ann+bob@example.org"
