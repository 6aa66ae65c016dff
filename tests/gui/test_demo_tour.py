"""`workbench demo` without --headless: the app opens the prepared project and the tour walks its five steps."""

from __future__ import annotations

from workbench.core.demo_pipeline import prepare_demo_project
from workbench.gui.demo_tour import STEPS, DemoTour


def test_tour_raises_each_steps_panel(make_window, tmp_path, qtbot):
    window = make_window()
    project = prepare_demo_project(tmp_path / "demo")
    window.open_project(str(project.folder))
    assert window.project is not None and window.project.folder == project.folder
    tour = DemoTour(window)
    qtbot.addWidget(tour)
    tour.show()
    assert tour.title.text().startswith("1 ·") and not tour.back.isEnabled()
    for index in range(1, len(STEPS)):
        tour.next.click()
        assert tour.index == index and tour.title.text() == STEPS[index].title
        dock = window.docks[STEPS[index].dock]
        assert dock.isVisible()
    assert tour.next.text() == "Finish"
    tour.back.click()
    assert tour.index == len(STEPS) - 2
    tour.show_step(len(STEPS) - 1)
    tour.next.click()  # Finish closes the tour
    assert not tour.isVisible()
