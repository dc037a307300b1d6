"""docs/operations.md lists every worker setting, as the code defines them."""

from __future__ import annotations

from pathlib import Path

from cloaca.cli.settings import env_name, settings_table
from cloaca.config import config_fields

DOC = Path(__file__).parents[2] / "docs" / "operations.md"


def test_the_settings_table_is_the_generated_one() -> None:
    text = DOC.read_text()
    start = text.index("-->\n", text.index("<!-- settings table")) + len("-->\n")
    end = text.index("<!-- end of settings table -->")
    assert text[start:end].strip() == settings_table(), (
        "regenerate the table: python -c 'from cloaca.cli.settings import settings_table as t; "
        "print(t())'"
    )


def test_every_field_and_its_variable_is_in_the_doc() -> None:
    text = DOC.read_text()
    for name in config_fields():
        assert f"`{name}`" in text and f"`{env_name(name)}`" in text, name


def test_the_readme_links_it() -> None:
    assert "docs/operations.md" in (DOC.parents[1] / "README.md").read_text()
