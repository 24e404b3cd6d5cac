"""Input that cannot hurt the spec parser (issue 15): each known crash and CPU bomb is a SpecError.

Every case must fail fast with a clear message, never with another exception. Times
are this thread's CPU time, so that a busy machine does not fail the tests.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import pytest

from taskorg.spec import SpecError, job_from_dict, parse_spec_text
from taskorg.spec import limits


def refused(parse: Callable[[], Any], budget_s: float = 1.0) -> str:
    """The message of the SpecError `parse` raises, checked to come within `budget_s`."""
    started = time.thread_time()
    with pytest.raises(SpecError) as info:
        parse()
    assert time.thread_time() - started < budget_s
    return str(info.value)


def test_an_impossible_date_is_a_string_not_a_crash() -> None:
    text = "job: j\nseed: 2001-02-30\ntasks: [{name: a, image: x}]\n"
    assert refused(lambda: parse_spec_text(text)) == "<input>:2: seed: must be an integer, got '2001-02-30'"


def test_a_date_in_env_stays_text() -> None:
    job = parse_spec_text("name: a\nimage: x\nenv: {DAY: 2001-02-03}\n")
    assert job.tasks[0].env == {"DAY": "2001-02-03"}


@pytest.mark.parametrize("text, message", [
    ("name: a\nimage: !!int x\n", "<input>:2: image: 'x' is not a valid !!int"),
    ("name: a\nimage: !!float x\n", "<input>:2: image: 'x' is not a valid !!float"),
    ("name: a\nimage: !!timestamp x\n", "<input>:2: invalid YAML: the tag !!timestamp is not allowed: "
                                        "a spec holds strings, numbers, booleans, null, lists and mappings"),
    ("name: a\nimage: !!binary aGk=\n", "<input>:2: invalid YAML: the tag !!binary is not allowed: "
                                        "a spec holds strings, numbers, booleans, null, lists and mappings"),
    ("name: a\nimage: !!set {a, b}\n", "<input>:2: invalid YAML: the tag !!set is not allowed: "
                                       "a spec holds strings, numbers, booleans, null, lists and mappings"),
    ("name: a\nimage: !custom x\n", "<input>:2: invalid YAML: the tag !custom is not allowed: "
                                    "a spec holds strings, numbers, booleans, null, lists and mappings"),
    ("name: =\nimage: x\n", "<input>:1: name: must be 1 to 63 lowercase letters, digits, '_', '.' or '-', "
                            "starting with a letter or digit, got '='"),
])
def test_tags_are_checked_with_their_line(text: str, message: str) -> None:
    assert refused(lambda: parse_spec_text(text)) == message


def test_a_4301_digit_integer() -> None:
    digits = "1" * 4301
    yaml_text = f"job: j\nseed: {digits}\ntasks: [{{name: a, image: x}}]\n"
    assert refused(lambda: parse_spec_text(yaml_text)) == "<input>:2: seed: an integer has more than 40 digits"
    json_text = f'{{"job": "j", "seed": {digits}, "tasks": [{{"name": "a", "image": "x"}}]}}'
    assert refused(lambda: parse_spec_text(json_text)) == "<input>: an integer has more than 40 digits"
    data = {"job": "j", "seed": 10**4400, "tasks": [{"name": "a", "image": "x"}]}
    assert refused(lambda: job_from_dict(data)) == "<input>: an integer has more than 40 digits"


@pytest.mark.parametrize("text", ["name: " + "[" * 900, "[" * 900 + "]" * 900, '{"a":' * 900 + "1" + "}" * 900,
                                  "x:\n" + "".join("  " * i + "- \n" for i in range(1, 200))])
def test_deep_nesting(text: str) -> None:
    assert "nests deeper than 32 levels" in refused(lambda: parse_spec_text(text))


def test_deep_nesting_handed_in_as_data() -> None:
    data: Any = 1
    for _ in range(5000):
        data = [data]
    assert refused(lambda: job_from_dict({"name": "a", "image": "x", "env": data})) == (
        "<input>: the spec nests deeper than 32 levels")


def test_merge_key_bomb() -> None:
    """Each level merges the previous one twice: 603 bytes once took 3.2 s."""
    lines = ["a0: &a0 {x: 1, y: 2}"]
    lines += [f"a{i}: &a{i} {{<<: [*a{i - 1}, *a{i - 1}], z{i}: 1}}" for i in range(1, 25)]
    message = refused(lambda: parse_spec_text("\n".join(lines) + "\n"), 0.2)
    assert message == "<input>:2: invalid YAML: aliases (*a0) are not allowed: write the value out where it is used"


def test_an_inline_merge_key_is_refused_too() -> None:
    message = refused(lambda: parse_spec_text("name: a\n<<: {image: x}\n"))
    assert message == "<input>:2: merge keys (<<) are not allowed: write the fields out"


def test_billion_laughs() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]" for i in range(8)]
    assert "aliases (*a) are not allowed" in refused(lambda: parse_spec_text("\n".join(lines)), 0.2)


def test_after_with_3000_unknown_names() -> None:
    """105 s in difflib once; a list that long is refused before any suggestion is searched."""
    names = ", ".join(f"n{i}" for i in range(3000))
    text = f"job: j\ntasks:\n  - name: a\n    image: x\n    after: [{names}]\n"
    assert "holds more than 1000 entries" in refused(lambda: parse_spec_text(text), 0.5)


def test_suggestion_work_is_capped_within_the_limits() -> None:
    """999 unknown names among 199 tasks: suggestions stop at the budget, problems at their cap."""
    tasks = [{"name": f"task{i}", "image": "x"} for i in range(199)]
    tasks.append({"name": "last", "image": "x", "after": [f"tsak{i}" for i in range(999)]})
    started = time.thread_time()
    with pytest.raises(SpecError) as info:
        job_from_dict({"job": "j", "tasks": tasks})
    assert time.thread_time() - started < 1.0
    problems = info.value.problems
    assert len(problems) == limits.MAX_PROBLEMS + 1
    assert problems[-1].message == f"... and {999 - limits.MAX_PROBLEMS} more problems"
    assert sum("did you mean" in p.message for p in problems) <= limits.MAX_SUGGESTIONS


def big_job(tasks: int) -> str:
    env = ", ".join(f"V{j}: '{'y' * 8}'" for j in range(60))
    return "job: big\ntasks:\n" + "\n".join(
        f"  - name: t{i}\n    image: taskorg/busybox:latest\n    command: echo {i}\n"
        f"    env: {{{env}}}\n    after: [{', '.join(f't{k}' for k in range(max(0, i - 3), i))}]"
        for i in range(tasks))


def test_a_valid_one_mib_job_is_fast() -> None:
    """11 s once; libyaml's parser and a single pass keep it near 1 s."""
    text = big_job(930)
    assert 1000 * 1024 < len(text) <= limits.MAX_TEXT_BYTES
    started = time.thread_time()
    job = parse_spec_text(text)
    elapsed = time.thread_time() - started
    assert len(job.tasks) == 930 and elapsed < 4.0, elapsed


def test_documents_over_the_size_limit_are_refused_on_every_path() -> None:
    text = big_job(1000)
    assert len(text) > limits.MAX_TEXT_BYTES
    assert refused(lambda: parse_spec_text(text)) == "<input>: the spec is larger than 1024 KiB"
    assert refused(lambda: parse_spec_text(json.dumps({"name": "a", "image": "x" * limits.MAX_TEXT_BYTES}))) == (
        "<input>: the spec is larger than 1024 KiB")


def test_canonical_size_is_capped_on_the_data_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("taskorg.spec.parse.MAX_CANONICAL_BYTES", 2000)
    data = {"job": "j", "tasks": [{"name": f"t{i}", "image": "x"} for i in range(10)]}
    message = refused(lambda: job_from_dict(data))
    assert "the job's canonical form is" in message and "(split it into several jobs)" in message


def test_parsing_is_time_boxed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "TIME_BUDGET_S", 0.0)
    text = "job: j\ntasks:\n" + "".join(f"  - {{name: t{i}, image: x}}\n" for i in range(5))
    assert refused(lambda: parse_spec_text(text)) == (
        "<input>: checking the spec took longer than 0 s: it is too large or too complex")


def test_foreign_objects_handed_in_are_refused() -> None:
    assert refused(lambda: job_from_dict({"name": "a", "image": object()})).startswith(
        "<input>: a value of type object is not plain data")
