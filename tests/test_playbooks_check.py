"""`playbooks check FILE` from the user's side: a bad playbook file is ONE line on stderr naming the
file, the line and the key path, and the exit status is 2; huddle.toml's own [[playbooks]] too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

HEAD = '[[playbooks]]\nname = "x"\n'
BAD = [
    # (file text, the line the error names, what it says)
    (HEAD + 'trigger = "order.created"\ncondtion = "true"\n[[playbooks.steps]]\nsend = "hi"\n',
     4, "playbooks[0] (x).condtion: unknown key 'condtion'"),
    (HEAD + 'trigger = "order.created"\n[[playbooks.steps]]\nsned = "hi"\n',
     5, "playbooks[0] (x).steps[0].sned: unknown key 'sned'"),
    (HEAD + 'trigger = "order.made"\n[[playbooks.steps]]\nsend = "hi"\n',
     3, "playbooks[0] (x).trigger: unknown trigger 'order.made'"),
    (HEAD + 'trigger = "order.created"\ncondition = "event.total >"\n[[playbooks.steps]]\nsend = "hi"\n',
     4, "playbooks[0] (x).condition: condition does not compile"),
    (HEAD + 'trigger = "order.created"\ncondition = "event.total > 5.0 && bogus.x"\n[[playbooks.steps]]\n'
     'send = "hi"\n', 4, "playbooks[0] (x).condition: unknown name 'bogus'"),
    (HEAD + 'trigger = "signup"\ncondition = "event.total > 5.0"\n[[playbooks.steps]]\nsend = "hi"\n',
     4, "playbooks[0] (x).condition: event.total does not exist"),
    ('# win-back\n\n' + HEAD + 'trigger = "visit.overdue"\ndescription = """\nsend = "not a key"\n"""\n'
     '[[playbooks.steps]]\nwait = "1d"\n\n[[playbooks.steps]]\n# the greeting\nsend = "Hi {{ customer.frist_name }}"\n',
     14, "playbooks[0] (x).steps[1].send: template field customer.frist_name does not exist"),
    (HEAD + 'trigger = "signup"\n[[playbooks.steps]]\nsend = "Hi {{ customer.first_name }"\n',
     5, "playbooks[0] (x).steps[0].send: template line 1"),
    (HEAD + 'trigger = "signup"\n[[playbooks.steps]]\nsend = "{{ cycler.__init__.__globals__.os.popen(\'id\') }}"\n',
     5, "playbooks[0] (x).steps[0].send: template refused: a call"),
    (HEAD + 'trigger = "signup"\n[[playbooks.steps]]\nsend = "hi"\n[[playbooks.steps]]\nwait = "soon"\n',
     7, "playbooks[0] (x).steps[1].wait: 'soon' is not a duration"),
    (HEAD + 'trigger = "signup"\n[[playbooks.steps]]\nwait_until = "25:99"\n',
     5, "playbooks[0] (x).steps[0].wait_until: '25:99' is not a time of day"),
    (HEAD + 'trigger = "signup"\n[[playbooks.steps]]\nbranch = "true"\nthen = "nowhere"\n',
     6, "playbooks[0] (x).steps[0].then: branch target 'nowhere' is no step id"),
    (HEAD + 'trigger = "signup"\nsteps = [{ send = "hi" }, { wait = "later" }]\n',
     4, "playbooks[0] (x).steps[1].wait: 'later' is not a duration"),
    ('[[playbooks]]\nname = "a"\ntrigger = "signup"\n[[playbooks.steps]]\nsend = "hi"\n\n'
     '[[playbooks]]\nname = "a"\ntrigger = "optout"\n[[playbooks.steps]]\nsend = "bye"\n',
     8, "playbooks[1] (a).name: 'a' is defined twice"),
    (HEAD + 'trigger = "signup"\n[[playbooks.steps]]\nsend = "hi"\n\n[[playbooks]\nname = "y"\n',
     7, "TOML: Expected ']]' at the end of an array declaration"),
]


def _check(tmp_path: Path, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "playbooks", "check", str(path)], cwd=tmp_path,
                          capture_output=True, text=True, env={"HUDDLE_DATABASE_URL": str(tmp_path / "x.db"),
                                                               "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                                               "HOME": str(tmp_path)})


@pytest.mark.parametrize(("text", "line", "expected"), BAD)
def test_a_bad_playbook_file_is_one_line_with_file_line_and_key_exit_2(tmp_path: Path, text: str, line: int,
                                                                        expected: str) -> None:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    path = folder / "winback.toml"
    path.write_text(text)
    done = _check(tmp_path, path)
    assert done.returncode == 2, done.stdout + done.stderr
    [out] = done.stderr.strip().splitlines()
    assert out.startswith(f"huddle: {path}:{line}:"), out
    assert expected in out, out


def test_a_file_in_playbooks_holds_only_playbooks(tmp_path: Path) -> None:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    path = folder / "mixed.toml"
    path.write_text(HEAD + 'trigger = "signup"\n[[playbooks.steps]]\nsend = "hi"\n\n[stores]\ncode = "main"\n')
    done = _check(tmp_path, path)
    assert done.returncode == 2
    [out] = done.stderr.strip().splitlines()
    assert out.startswith(f"huddle: {path}:7: unknown key 'stores'"), out


def test_huddle_toml_playbooks_name_their_line_too(tmp_path: Path) -> None:
    (tmp_path / "huddle.toml").write_text('[[stores]]\ncode = "main"\nname = "Main"\n\n' + HEAD
                                          + 'trigger = "signup"\n[[playbooks.steps]]\nsend = "{{ event.total }}"\n')
    env = {"HUDDLE_DATABASE_URL": str(tmp_path / "x.db"), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    subprocess.run([sys.executable, str(ROOT / "main.py"), "db", "upgrade"], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "playbooks", "list"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 2, done.stdout + done.stderr
    [out] = done.stderr.strip().splitlines()
    assert out.startswith("huddle: huddle.toml:9: playbooks[0] (x).steps[0].send: template field event.total"), out


def test_a_good_file_checks_clean(tmp_path: Path) -> None:
    path = tmp_path / "good.toml"
    path.write_text(HEAD + 'trigger = "receipt.awarded"\ncondition = "event.customer_points >= 10"\n'
                    '[[playbooks.steps]]\n'
                    'send = "Thanks {{ customer.first_name }}: {{ event.customer_points }} points"\n'
                    '\n[[playbooks]]\nname = "y"\ntrigger = "points.reversed"\n[[playbooks.steps]]\n'
                    'notify = "{{ event.delta }} points reversed: {{ event.reason }}"\n')
    done = _check(tmp_path, path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 playbook(s) OK: x, y" in done.stdout
