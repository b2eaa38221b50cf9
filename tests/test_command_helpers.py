"""What the replay and prune commands share: time arguments and the progress bar."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from imbot_app.management.progress import ProgressBar
from imbot_app.management.timespec import parse_duration, parse_moment

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45s", timedelta(seconds=45)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("30d", timedelta(days=30)),
        ("1w", timedelta(weeks=1)),
        (" 3D ", timedelta(days=3)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "d", "3", "3 days", "-2h", "1.5h", "2y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_moments(settings) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    assert parse_moment("2h", now=NOW) == NOW - timedelta(hours=2)
    berlin = timezone.get_current_timezone()
    assert parse_moment("2025-03-01") == datetime(2025, 3, 1, tzinfo=berlin)
    assert parse_moment("2025-03-01T10:30") == datetime(2025, 3, 1, 10, 30, tzinfo=berlin)
    assert parse_moment("2025-03-01 10:30:00+00:00") == datetime(2025, 3, 1, 10, 30, tzinfo=UTC)
    for bad in ("yesterday", "2025-13-01", "2025-02-30"):
        with pytest.raises(ValueError, match="neither a duration"):
            parse_moment(bad)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_in_a_log_file_prints_a_line_per_tenth() -> None:
    stream, clock = io.StringIO(), FakeClock()
    bar = ProgressBar(20, stream, label="replay", width=10, clock=clock)
    for _ in range(20):
        clock.now += 0.5
        bar.advance()
    bar.finish()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0] == "replay [#---------]  2/20  10% 2/s"
    assert lines[-1] == "replay [##########] 20/20 100% 2/s"
    assert "\r" not in stream.getvalue()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_redraws_one_line_at_most_five_times_a_second() -> None:
    stream, clock = Terminal(), FakeClock()
    bar = ProgressBar(100, stream, label="prune", width=4, clock=clock)
    for _ in range(100):
        clock.now += 0.01  # a second in all
        bar.advance()
    bar.finish()
    text = stream.getvalue()
    assert text.count("\r") == 7  # five redraws in the second, the last item, the finish
    assert text.endswith("\rprune [####] 100/100 100% 100/s\n")


def test_progress_with_nothing_to_do() -> None:
    stream = io.StringIO()
    bar = ProgressBar(0, stream, label="prune")
    bar.finish()
    assert stream.getvalue().startswith("prune [##############################] 0/0 100%")
