"""One step runner: wall time back, a failure raised with the command and the log's tail."""
from __future__ import annotations

import sys

import pytest

from mmnpc.runs import StepFailed, run_tool


def test_a_logged_step_writes_its_output_to_the_log(tmp_path):
    log = tmp_path / 'logs' / 'step.log'
    seconds = run_tool([sys.executable, '-c', 'print("hello"); import sys; '
                        'print("err", file=sys.stderr)'], log=log)
    assert seconds >= 0
    assert log.read_text().split() == ['hello', 'err']


def test_a_failed_step_names_the_command_and_the_last_lines(tmp_path):
    log = tmp_path / 'step.log'
    code = 'import sys; [print(f"line {i}") for i in range(40)]; sys.exit(3)'
    with pytest.raises(StepFailed) as raised:
        run_tool([sys.executable, '-c', code], log=log)
    message = str(raised.value)
    assert raised.value.status == 3
    assert 'exit status 3' in message and 'sys.exit(3)' in message
    assert 'line 39' in message and 'line 9\n' not in message  # the last 30 lines only


def test_allowed_exit_codes_and_the_terminal(capfd):
    run_tool([sys.executable, '-c', 'import sys; sys.exit(2)'], ok_codes=(0, 2))
    assert '$ ' in capfd.readouterr().out
    with pytest.raises(StepFailed, match='exit status 2'):
        run_tool([sys.executable, '-c', 'import sys; sys.exit(2)'], echo=False)
