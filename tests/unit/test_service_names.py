"""Service names (`taskorg.dns.service_names`): which instances are named, what is skipped, what the DNS
service accepts from the wire, and the hosts file it writes."""

from __future__ import annotations

import pytest

from taskorg.dns.service_names import (ServedInstance, check_name_map, name_map, removed_any,
                                       render_service_hosts)

SUFFIX = "taskorg.internal"


def test_running_healthy_and_unchecked_instances_are_named_by_node_address() -> None:
    result = name_map([
        ServedInstance("shop", "web", "127.0.1.3", "healthy"),
        ServedInstance("shop", "web", "127.0.1.2", None),  # no health check: running is enough
        ServedInstance("shop", "web", "127.0.1.4", "starting"),
        ServedInstance("shop", "web", "127.0.1.5", "unhealthy"),
        ServedInstance("shop", "db", "127.0.1.10", "healthy"),
    ], SUFFIX)
    assert result.names == {"web.shop.taskorg.internal": ["127.0.1.2", "127.0.1.3"],
                            "db.shop.taskorg.internal": ["127.0.1.10"]}
    assert result.skipped == {}


def test_two_instances_on_one_node_give_one_address_and_a_dead_node_none() -> None:
    result = name_map([ServedInstance("j", "web", "127.0.1.2", None), ServedInstance("j", "web", "127.0.1.2", None),
                       ServedInstance("j", "web", None, "healthy")], SUFFIX)
    assert result.names == {"web.j.taskorg.internal": ["127.0.1.2"]}


@pytest.mark.parametrize("job, task, named", [
    ("My_Job", "web", "job name 'My_Job'"),
    ("shop", "-web", "task name '-web'"),
    ("shop", "Web", "task name 'Web'"),
    ("a.b", "web", "job name 'a.b'"),
    ("shop", "w" * 64, "task name"),
])
def test_a_name_that_is_not_a_dns_label_is_skipped_with_the_reason(job: str, task: str, named: str) -> None:
    result = name_map([ServedInstance(job, task, "127.0.1.2", None)], SUFFIX)
    assert result.names == {}
    assert named in result.skipped[f"{task}.{job}"] and "not a DNS label" in result.skipped[f"{task}.{job}"]


def test_the_dns_service_accepts_only_task_job_suffix_names_and_real_addresses() -> None:
    assert check_name_map({"web.shop.taskorg.internal": ["127.0.1.3", "127.0.1.2"]}, SUFFIX) == \
        {"web.shop.taskorg.internal": ["127.0.1.2", "127.0.1.3"]}
    for bad, words in [({"web.shop.other.org": ["127.0.0.1"]}, "is not <task>.<job>.taskorg.internal"),
                       ({"web.taskorg.internal": ["127.0.0.1"]}, "is not <task>.<job>"),
                       ({"web\n1.2.3.4 master.shop.taskorg.internal": ["127.0.0.1"]}, "is not <task>.<job>"),
                       ({"web.shop.taskorg.internal": ["127.0.0.1 master"]}, "not an IP address"),
                       ({"web.shop.taskorg.internal": []}, "needs 1 to")]:
        with pytest.raises(ValueError, match=words):
            check_name_map(bad, SUFFIX)


def test_the_hosts_file_is_sorted_and_a_removed_address_is_noticed() -> None:
    names = {"web.shop.x": ["127.0.1.2", "127.0.1.3"], "db.shop.x": ["127.0.1.4"]}
    assert render_service_hosts(names) == "127.0.1.4 db.shop.x\n127.0.1.2 web.shop.x\n127.0.1.3 web.shop.x\n"
    assert not removed_any(names, {**names, "web.shop.x": ["127.0.1.2", "127.0.1.3", "127.0.1.5"]})
    assert removed_any(names, {**names, "web.shop.x": ["127.0.1.2"]})
    assert removed_any(names, {"web.shop.x": names["web.shop.x"]})
