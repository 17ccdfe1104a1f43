"""The SVG chart geometry."""
from app.web.charts import HEIGHT, line_chart


def test_a_rising_series_goes_up_and_a_gap_breaks_the_line():
    chart = line_chart("rows", [10, 20, None, 30])
    assert chart.path.count("M") == 2 and chart.path.count("L") == 1
    ys = [y for _, y in chart.points]
    assert ys[0] > ys[1] > ys[2]  # SVG y grows downwards
    assert (chart.low, chart.high, chart.last) == (10, 30, 30)


def test_a_constant_series_runs_through_the_middle():
    chart = line_chart("size", [5, 5, 5])
    assert {y for _, y in chart.points} == {HEIGHT / 2}


def test_nothing_to_draw():
    chart = line_chart("latency", [None, None])
    assert chart.path == "" and chart.last is None


def test_one_reading_is_a_level_line_across_the_chart_not_a_dot():
    chart = line_chart("rows", [None, 42])
    assert chart.single and chart.path.count("M") == 1 and chart.path.count("L") == 1
    assert (chart.low, chart.high, chart.last) == (42, 42, 42)
    assert line_chart("rows", [1, 2]).single is False
