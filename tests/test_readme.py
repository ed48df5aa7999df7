"""README.md's test command is exactly what CI runs, and its main command runs the demo."""
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def readme_commands():
    return re.findall(r"```bash\n(python3 -m venv .*)\n```", (ROOT / "README.md").read_text())


def test_ci_runs_the_readme_test_command():
    main_command, test_command = readme_commands()
    assert test_command.endswith("pytest -q")
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == test_command
    assert main_command.endswith("teamnet demo --workdir demo")
