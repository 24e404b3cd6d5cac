"""Sparklines: points scaled into the box by time and value, breaks at gaps, empty history, words for
screen readers; the history cache asks the master for the hour at most once a step; the dashboard
draws four lines per node."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from flask.testing import FlaskClient

from taskorg.webview import history, sparkline
from taskorg.webview.sparkline import PERCENT, Box, Scale
from tests.webview.fakes import FakeCluster

BOX = Box(width=100, height=20, pad=0)
SVG = "{http://www.w3.org/2000/svg}"


def parse(text: str) -> ET.Element:
    return ET.fromstring(text.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


def test_points_are_scaled_into_the_box_by_time_and_value() -> None:
    [run] = sparkline.runs([(0.0, 0.0), (50.0, 50.0), (100.0, 100.0)], 0.0, 100.0, PERCENT, BOX)
    assert run == [(0.0, 20.0), (50.0, 10.0), (100.0, 0.0)]  # y grows downwards: 100 % is the top


def test_padding_keeps_every_point_inside_and_values_are_clamped() -> None:
    box = Box(width=96, height=24, pad=2.5)
    [run] = sparkline.runs([(0.0, -20.0), (5.0, 250.0), (10.0, 30.0)], 0.0, 10.0, PERCENT, box)
    for x, y in run:
        assert box.pad <= x <= box.width - box.pad and box.pad <= y <= box.height - box.pad
    assert run[0][1] == box.height - box.pad and run[1][1] == box.pad


def test_a_missing_value_or_a_long_hole_breaks_the_line_and_outsiders_are_left_out() -> None:
    samples = [(-5.0, 1.0), (0.0, 10.0), (10.0, 20.0), (20.0, None), (30.0, 30.0), (40.0, 40.0),
               (90.0, 50.0), (150.0, 60.0)]
    runs = sparkline.runs(samples, 0.0, 100.0, PERCENT, BOX, gap=25.0)
    assert [len(r) for r in runs] == [2, 2, 1]  # None breaks; 40 -> 90 is a hole; -5 and 150 are outside


def test_temperatures_get_a_fitted_range_at_least_twenty_degrees_wide() -> None:
    assert Scale.around([47.0, 52.0]) == Scale(40.0, 60.0)
    assert Scale.around([30.0, 80.0]) == Scale(25.0, 85.0)
    assert Scale.around([]) == Scale(0.0, 20.0)


def test_the_svg_says_what_it_shows_and_draws_a_dot_at_the_newest_point() -> None:
    text = sparkline.svg([(0.0, 10.0), (50.0, 90.0), (100.0, 40.0)], start=0.0, end=100.0, scale=PERCENT,
                         figure="cpu", title="CPU", unit=" %", box=BOX)
    root = parse(text)
    assert root.get("class") == "spark spark-cpu" and root.get("data-points") == "3"
    assert root.get("aria-label") == "CPU 40 % now; 10–90 % in the last 2 min"
    assert root.find(f"{SVG}title").text == root.get("aria-label")
    [path] = root.findall(f"{SVG}path")
    assert path.get("d") == "M0.0,18.0 L50.0,2.0 L100.0,12.0"
    dot = root.find(f"{SVG}circle")
    assert (dot.get("cx"), dot.get("cy")) == ("100.0", "12.0")


def test_an_empty_history_draws_a_baseline_and_says_so() -> None:
    root = parse(sparkline.svg([], start=0.0, end=3600.0, scale=PERCENT, figure="disk", title="Disk", unit=" %"))
    assert root.get("data-points") == "0" and root.get("aria-label") == "Disk: no history yet"
    assert root.findall(f"{SVG}path") == [] and root.find(f"{SVG}circle") is None
    assert root.find(f"{SVG}line") is not None and root.find(f"{SVG}text").text == "no history yet"


def test_a_lone_point_still_shows_and_text_is_escaped() -> None:
    root = parse(sparkline.svg([(5.0, 50.0)], start=0.0, end=10.0, scale=PERCENT, figure="x\"<", title="<b>",
                               unit="%", box=BOX))
    [path] = root.findall(f"{SVG}path")
    assert path.get("d").startswith("M50.0,10.0 L")
    assert root.get("aria-label").startswith("<b> 50%") and "x\"<" in root.get("class")


def test_a_node_history_becomes_four_sparklines_ending_at_its_newest_point() -> None:
    points = [{"time": 1000.0 + 10 * n, "cpu": 50.0, "memory": 20.0, "disk": None, "temperature": 41.0}
              for n in range(6)]
    drawn = history.sparklines({"step": 10.0, "span": 3600.0, "points": points}, now=99999.0)
    assert list(drawn) == ["cpu", "memory", "disk", "temperature"]
    cpu = parse(str(drawn["cpu"]))
    assert cpu.get("data-points") == "6"
    [path] = cpu.findall(f"{SVG}path")
    last_x = float(path.get("d").split()[-1][1:].split(",")[0])
    assert 90 < last_x < 96  # the newest point is at the right edge (its step's middle), whatever `now` says
    disk = parse(str(drawn["disk"]))
    assert disk.get("data-points") == "0" and disk.get("aria-label") == "Disk: none reported"  # no such figure
    assert cpu.get("aria-label") == "CPU 50 % now; 50–50 % in the last 1 min"  # the minutes the points cover
    assert "no history yet" in str(history.sparklines(None, now=0.0)["temperature"])


def test_the_cache_asks_for_the_hour_once_a_step_and_keeps_serving_it() -> None:
    fake, now = FakeCluster(), [0.0]
    cache = history.HistoryCache(clock=lambda: now[0])
    first = cache.members(fake)
    now[0] = 5.0
    second = cache.members(fake)
    now[0] = 10.0
    cache.members(fake)
    assert [c for c in fake.calls if c[0] == "members"] == [("members", True), ("members", False), ("members", True)]
    assert second["members"][0]["history"]["points"] == first["members"][0]["history"]["points"]


def test_the_cache_follows_a_shorter_step_of_the_master() -> None:
    fake = FakeCluster()
    real = fake.members

    def members(history: bool = False) -> dict:
        view = real(history)
        for member in view["members"]:
            if history:
                member["history"]["step"] = 2.0
        return view

    fake.members = members  # type: ignore[method-assign]
    cache = history.HistoryCache(clock=lambda: 0.0)
    cache.members(fake)
    assert cache.every == 2.0


def test_the_dashboard_draws_four_sparklines_per_node_and_the_disk(logged_in: FlaskClient) -> None:
    html = logged_in.get("/").get_data(as_text=True)
    row = re.search(r'<tr id="member-node1".*?</tr>', html, re.S).group(0)
    assert re.findall(r'class="spark spark-(\w+)"', row) == ["cpu", "memory", "disk", "temperature"]
    assert 'data-holds="state"' in row and "75 %" in row and "state on / · 24.0 GiB used" in row
    assert 'data-holds="docker"' in row and "91 %" in row  # docker's data root on its own filesystem
    assert "no history yet" in re.search(r'<tr id="member-node3".*?</tr>', html, re.S).group(0)
    # A gap in the history (a failover) breaks the line in two.
    cpu = re.search(r'<svg class="spark spark-cpu".*?</svg>', row, re.S).group(0)
    assert cpu.count('class="spark-line"') == 2
    fragment = logged_in.get("/api/dashboard").get_json()["fragments"]["members"]
    assert fragment.count('class="spark spark-') == 12
