"""The README documents every setting the code reads, and its layout matches the tree."""

import re
from pathlib import Path

from shared.settings import documented_env_vars

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")

# Read by the platform but not settings of the Settings dataclass.
EXTRA_ENV = {"DAGSTER_PG_URL", "TEST_POSTGRES_URL"}


def test_every_setting_is_in_the_readme_table() -> None:
    table_rows = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", README, flags=re.MULTILINE))
    missing = sorted((set(documented_env_vars()) | EXTRA_ENV) - table_rows)
    assert missing == []


def test_readme_table_lists_no_setting_that_does_not_exist() -> None:
    table_rows = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", README, flags=re.MULTILINE))
    assert sorted(table_rows - set(documented_env_vars()) - EXTRA_ENV) == []


def test_ci_runs_exactly_the_readme_test_command() -> None:
    commands = re.findall(r"^```bash\n(.*?)\n```", README, flags=re.MULTILINE | re.DOTALL)
    test_cmd = next(c for c in commands if "pytest" in c).strip()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_cmd in ci.splitlines()


def test_architecture_section_names_only_existing_paths() -> None:
    section = README.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    paths = set(re.findall(r"`((?:orchestration|serving|shared|tests|bench)/[\w./-]*)`", section))
    assert paths, "the architecture section names no paths"
    assert sorted(p for p in paths if not (ROOT / p).exists()) == []
