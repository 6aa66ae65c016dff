"""The devices panel against a real agent process: add, test (on a worker), refused token, remove, persistence."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from agent_process import AgentProcess
from workbench.devices.agent import AgentDevice
from workbench.devices.local import LocalDevice
from workbench.gui.devices_panel import DevicesPanel


@pytest.fixture
def agent(tmp_path):
    process = AgentProcess(tmp_path / "store")
    yield process
    process.kill()


@pytest.fixture
def panel(qtbot):
    widget = DevicesPanel()
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    assert widget.shutdown()
    assert not widget.tasks.busy(), "a test thread is still running"


def _add(qtbot, panel, agent, token):
    panel.host.setText(agent.host)
    panel.port.setValue(agent.port)
    panel.token.setText(token)
    with qtbot.waitSignal(panel.devices_changed, timeout=5000) as changed:
        qtbot.mouseClick(panel.add_button, Qt.LeftButton)
    return changed.args[0]


def test_add_test_and_remove_an_agent(qtbot, panel, agent):
    assert [type(d) for d in panel.devices()] == [LocalDevice] and not panel.remove_button.isEnabled()
    devices = _add(qtbot, panel, agent, agent.token)
    assert len(devices) == 2 and isinstance(devices[1], AgentDevice) and devices[1].port == agent.port
    assert panel.list.currentRow() == 1 and panel.token.text() == ""

    with qtbot.waitSignal(panel.tested, timeout=30000) as tested:
        qtbot.mouseClick(panel.test_button, Qt.LeftButton)
        assert "Contacting" in panel.details.text()  # the click returned before the answer: the GUI did not block
    device, info = tested.args
    assert device is devices[1] and info["onnxruntime"] and info["cores"] >= 1
    text = panel.details.text()
    assert info["cpu_model"] in text and f"onnxruntime {info['onnxruntime']}" in text and "int8" in text
    assert info["cpu_model"] in panel.list.item(1).text()

    saved = panel.to_list()
    assert saved[1]["token"] == agent.token and saved[1]["port"] == agent.port
    with qtbot.waitSignal(panel.devices_changed, timeout=5000) as changed:
        qtbot.mouseClick(panel.remove_button, Qt.LeftButton)
    assert [type(d) for d in changed.args[0]] == [LocalDevice]

    with qtbot.waitSignal(panel.devices_changed, timeout=5000) as changed:
        panel.load(saved)
    assert [d.to_dict() for d in changed.args[0]] == saved


def test_a_wrong_token_shows_the_agents_refusal(qtbot, panel, agent):
    _add(qtbot, panel, agent, "not-the-token")
    with qtbot.waitSignal(panel.test_failed, timeout=30000) as failed:
        qtbot.mouseClick(panel.test_button, Qt.LeftButton)
    assert "refused the token" in str(failed.args[1]) and "refused the token" in panel.details.text()
    assert panel.test_button.isEnabled()


def test_this_machine_can_be_tested_but_not_removed(qtbot, panel):
    panel.list.setCurrentRow(0)
    qtbot.mouseClick(panel.remove_button, Qt.LeftButton)
    assert len(panel.devices()) == 1
    with qtbot.waitSignal(panel.tested, timeout=60000) as tested:
        qtbot.mouseClick(panel.test_button, Qt.LeftButton)
    assert tested.args[1]["isa_flags"] is not None and "local" in panel.details.text()
