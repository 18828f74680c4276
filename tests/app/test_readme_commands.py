"""The README's command lines against the CLI itself: every command and option the README shows
must exist as written, where click takes it (global options before the command), and the values
it lists for a choice option must be choices (the docs drifted before: a flag that never
existed, a choice the code refuses). Options and choices the README leaves out are fine; `--help`
lists them. Values of options that take free text (`--reward VERSION`) are not checked."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import click
import pytest

from app.cli import cli

README = Path(__file__).resolve().parents[2] / "README.md"
_INLINE = re.compile(r"`((?:[A-Z_]+=\S+ )*(?:\.venv/bin/)?rlhf(?: [^`]*)?)`")
_BLOCK_LINE = re.compile(r"^\s*(?:\$ )?(.*\brlhf\b.*)$")


def _readme_command_lines() -> list[tuple[int, str]]:
    """(line number, command line) of each `rlhf ...` in inline code and in shell code blocks
    (continued lines joined, comments dropped)."""
    found, in_block, held = [], False, ""
    for number, line in enumerate(README.read_text().splitlines(), start=1):
        if line.lstrip().startswith("```"):
            in_block, held = not in_block, ""
            continue
        if in_block:
            line = held + re.sub(r"(^|\s)#.*$", "", line).rstrip()
            if line.endswith("\\"):
                held = line[:-1] + " "
                continue
            held = ""
            if (m := _BLOCK_LINE.match(line)) and re.search(r"(^|&& |; |\s)(?:\.venv/bin/)?rlhf( |$)", m.group(1)):
                found.append((number, m.group(1).strip()))
        else:
            found += [(number, m.group(1)) for m in _INLINE.finditer(line)]
    return found


def _tokens(command_line: str) -> list[str]:
    """The words of a synopsis, its notation dropped: ``[--opt a\\|b]`` -> ``--opt``, ``a|b``;
    ``--opt=value`` -> ``--opt``, ``value``; leading ``VAR=value`` settings dropped."""
    text = command_line.replace("\\|", "|").replace(".venv/bin/rlhf", "rlhf")
    text = re.sub(r"[\[\]()]", " ", text)
    try:
        words = shlex.split(text)
    except ValueError:  # an unbalanced quote in prose: plain split
        words = text.split()
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words.pop(0)
    out: list[str] = []
    for w in words:
        if w.startswith("--") and "=" in w:
            out += w.split("=", 1)
        elif w not in ("|", "..."):
            out.append(w)
    return out


def _options(command: click.Command) -> dict[str, click.Parameter]:
    return {opt: p for p in command.params for opt in (*p.opts, *p.secondary_opts)}


def _check(command_line: str) -> list[str]:
    """What in one README command line (maybe a shell chain: ``rlhf ... && rlhf ...``) the CLI
    does not have."""
    problems: list[str] = []
    for part in re.split(r" && |; | (?<!\\)\| ", command_line):
        words = _tokens(part)
        if words and words[0] == "rlhf":
            problems += _check_words(words[1:])
    return problems


def _check_words(words: list[str]) -> list[str]:
    """``words`` after ``rlhf``: global options, then the command (and subcommand), then its
    options, as click parses them (a global option after the command is an error there)."""
    problems: list[str] = []
    command: click.Command = cli
    options = _options(cli) | {"--help": None, "--version": None}
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("-") and word not in ("-", "--"):
            if word not in options:
                problems.append(f"{command.name}: no option {word}")
            param = options.get(word)
            value = words[i + 1] if i + 1 < len(words) else None
            if isinstance(param, click.Option) and isinstance(param.type, click.Choice) and value is not None:
                listed = [c for c in value.split("|") if c and c != "..."]
                if len(listed) > 1 or (listed and listed[0].islower() and not listed[0].startswith("-")):
                    # a choice list (a|b|c) or one literal value; CAPITALS are placeholders
                    choices = {str(c) for c in param.type.choices}
                    problems += [f"{command.name} {word}: no choice {c!r}" for c in listed if c not in choices]
            takes_value = isinstance(param, click.Option) and not (param.is_flag or param.count)
            i += 2 if takes_value else 1
            continue
        if isinstance(command, click.Group):
            if word in ("COMMAND", "..."):  # `rlhf COMMAND --help`, `rlhf --debug ...`
                return problems
            sub = command.get_command(click.Context(command), word)
            if sub is None:
                problems.append(f"no command {word!r}")
                return problems
            command, options = sub, _options(sub) | {"--help": None}
        i += 1  # an argument or an option's value
    return problems


def test_the_readme_shows_rlhf_commands():
    lines = _readme_command_lines()
    named = {_tokens(line)[1] for _, line in lines if len(_tokens(line)) > 1 and not _tokens(line)[1].startswith("-")}
    assert len(lines) >= 40
    # the command table, at least, is there
    assert {"demo", "train-reward", "train-policy", "loop", "users", "export", "import"} <= named


@pytest.mark.parametrize(("number", "command_line"), _readme_command_lines(), ids=lambda v: str(v)[:40])
def test_a_readme_command_line_matches_the_cli(number, command_line):
    assert _check(command_line) == [], f"README.md line {number}: {command_line}"


def test_the_check_catches_a_wrong_option_command_and_choice():
    assert _check("rlhf demo --project p --segments 10") == []
    assert _check("rlhf --data-dir D train-policy --project p --algo sac") == []
    assert _check("RLHF_WORKERS=external .venv/bin/rlhf app && rlhf worker --drain") == []
    assert _check("rlhf demo --segmnts 10") == ["demo: no option --segmnts"]
    assert _check("rlhf demo --data-dir D") == ["demo: no option --data-dir"]  # global options go first
    assert _check("rlhf trian-reward --project p") == ["no command 'trian-reward'"]
    assert _check("rlhf train-reward --kind bt|lasso") == ["train-reward --kind: no choice 'lasso'"]
    assert _check("rlhf train-reward --kind=lasso --project p") == ["train-reward --kind: no choice 'lasso'"]
    assert _check("rlhf train-reward --kind=bt --project p") == []
    assert _check("rlhf users add NAME --role root") == ["add --role: no choice 'root'"]
    assert _check("rlhf users ad NAME") == ["no command 'ad'"]
    assert _check("rlhf status && rlhf stats") == ["no command 'stats'"]


def test_shell_blocks_are_read_whole(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text(
        "text `rlhf demo --project p`\n```bash\nrlhf --data-dir D train-reward --project p \\\n"
        "    --kind bt   # a comment --nope\nRLHF_WORKERS=external rlhf app\necho rlhf-free line\n```\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "README", readme)
    assert _readme_command_lines() == [
        (1, "rlhf demo --project p"),
        (4, "rlhf --data-dir D train-reward --project p      --kind bt"),
        (5, "RLHF_WORKERS=external rlhf app"),
    ]


def test_the_readme_command_table_names_every_command():
    text = README.read_text()
    start = text.index("## Command line")
    table = text[start : text.index("\n## ", start + 1)]
    words = {word for _, line in _readme_command_lines() if f"`{line}`" in table for word in _tokens(line)}
    assert set(cli.commands) - words == set()
    for name, command in cli.commands.items():
        if isinstance(command, click.Group):  # users add, users list, ...
            assert set(command.commands) - words == set(), name
