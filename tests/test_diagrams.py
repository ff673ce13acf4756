import matplotlib.pyplot as plt
import pytest
from matplotlib.patches import FancyBboxPatch
from matplotlib.text import Annotation

from sdkit.book.diagrams import BOX_HEIGHT, BOX_WIDTH, draw_arrow, draw_box, plot_two_stage_procedure


def test_box_is_centred_on_its_point_with_its_text():
    _, ax = plt.subplots()
    box = draw_box(ax, (4.2, 2.0), "Stage 1", "#cfe2f3")
    assert (box.get_x(), box.get_y()) == pytest.approx((4.2 - BOX_WIDTH / 2, 2.0 - BOX_HEIGHT / 2))
    assert (box.get_width(), box.get_height()) == pytest.approx((BOX_WIDTH, BOX_HEIGHT))
    (text,) = ax.texts
    assert text.get_text() == "Stage 1" and text.get_position() == (4.2, 2.0)


def test_arrow_label_sits_at_the_middle_moved_by_the_offset():
    _, ax = plt.subplots()
    draw_arrow(ax, (1.0, 2.0), (3.0, 0.0), "same batch x", dx=-0.5, dy=0.25)
    arrow, label = ax.texts
    assert isinstance(arrow, Annotation) and arrow.xy == (3.0, 0.0) and arrow.xyann == (1.0, 2.0)
    assert label.get_text() == "same batch x" and label.get_position() == pytest.approx((1.5, 1.25))
    draw_arrow(ax, (0.0, 0.0), (1.0, 0.0))  # no label: only the arrow
    assert len(ax.texts) == 3


def test_two_stage_procedure_has_six_boxes_six_arrows_and_the_stages():
    fig = plot_two_stage_procedure()
    (ax,) = fig.axes
    assert sum(isinstance(p, FancyBboxPatch) for p in ax.patches) == 6
    arrows = [t for t in ax.texts if isinstance(t, Annotation)]
    assert len(arrows) == 6
    words = " ".join(t.get_text() for t in ax.texts)
    for part in ("Stage 1", "Stage 2", "frozen teacher", "validation split", "q = softmax(t/T)"):
        assert part in words
    assert ax.get_title().startswith("Self-distillation") and not ax.axison
