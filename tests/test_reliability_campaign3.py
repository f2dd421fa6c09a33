"""Third fault campaign (issue 31): what the fixes so far hold."""

from __future__ import annotations

import pytest

from ticketzoo.errors import TicketzooError


@pytest.mark.parametrize("text", ["evil\n", "evil\r\n", "a\nb"])
def test_a_trailing_newline_is_no_valid_name_rev_or_license(text):
    """``^...$`` with ``.match()`` let one trailing newline through: every such pattern ends
    in ``\\Z`` now (names, revisions, sha256/commit ids, license ids)."""
    from ticketzoo.card.validate import LICENSE_RE
    from ticketzoo.folder import SHA_RE
    from ticketzoo.names import valid_name
    from ticketzoo.registry import local
    from ticketzoo.registry.hub import COMMIT_RE
    from ticketzoo.registry.refs import REV_RE, parse_ref

    assert not valid_name(text)
    assert not LICENSE_RE.match("mit\n") and not REV_RE.match("v1\n")
    assert not local.REV_RE.match("ab" * 6 + "\n") and not SHA_RE.match("ab" * 32 + "\n")
    assert not COMMIT_RE.match("ab" * 20 + "\n")
    # a typed reference is stripped of surrounding blanks: never a name that holds a newline
    if text.strip() == text:
        with pytest.raises(TicketzooError):
            parse_ref(text)
    else:
        assert parse_ref(text).name == text.strip()


def test_push_refuses_a_name_or_license_with_a_newline(tmp_path, cli, ticket_file):
    registry = tmp_path / "reg"
    registry.mkdir()
    code, _, err = cli("push", ticket_file, "--registry", f"file://{registry}", "--name", "evil\n")
    assert code == 1 and "invalid ticket name" in err
    code, _, err = cli("push", ticket_file, "--registry", f"file://{registry}", "--license", "mit\n")
    assert code != 0 and "license" in err
    assert not any(registry.iterdir()) or not any(p.name.endswith("\n") for p in registry.rglob("*"))
