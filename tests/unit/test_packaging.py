"""Packaging files agree with each other: the menu entry, the icon it names, and the per-user install script."""

from __future__ import annotations

import configparser
import importlib.util
import os
import stat
import subprocess
from pathlib import Path

from PySide6.QtGui import QImage

ROOT = Path(__file__).resolve().parents[2]
ICONS = ROOT / "workbench" / "resources" / "icons"


def _desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(ROOT / "packaging" / "model-workbench.desktop")
    return parser["Desktop Entry"]


def test_the_menu_entry_starts_the_bundle_and_names_the_shipped_icon():
    entry = _desktop_entry()
    assert entry["Type"] == "Application" and entry["Name"] == "Model Workbench"
    assert entry["Exec"].split()[:2] == ["ModelWorkbench", "gui"]  # the bundle's program, opening a file given
    assert entry["Icon"] == entry["StartupWMClass"] == "model-workbench"
    assert (ICONS / f"{entry['Icon']}.svg").is_file()


def test_the_png_icon_is_the_svg_rendered(qapp, tmp_path):
    spec = importlib.util.spec_from_file_location("render_icon", ROOT / "packaging" / "render_icon.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fresh = tmp_path / "icon.png"
    module.render(ICONS / "model-workbench.svg", fresh)
    shipped, again = QImage(str(ICONS / "model-workbench.png")), QImage(str(fresh))
    assert shipped.width() == shipped.height() == 256
    assert shipped == again, "run python packaging/render_icon.py after editing the SVG"


def test_install_script_installs_and_removes_a_bundle_for_one_user(tmp_path):
    bundle = tmp_path / "ModelWorkbench"
    (bundle / "_internal" / "workbench" / "resources").mkdir(parents=True)
    (bundle / "_internal" / "workbench" / "resources" / "icons").symlink_to(ICONS)
    program = bundle / "ModelWorkbench"
    program.write_text("#!/bin/sh\necho started \"$@\"\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home)}
    env.pop("XDG_DATA_HOME", None)
    script = ROOT / "packaging" / "install_desktop.sh"
    subprocess.run(["sh", str(script), str(bundle)], env=env, check=True, capture_output=True, timeout=60)

    app = home / ".local" / "lib" / "model-workbench" / "ModelWorkbench"
    out = subprocess.run([str(home / ".local" / "bin" / "ModelWorkbench"), "x"], capture_output=True, text=True)
    assert out.stdout == "started x\n" and app.is_file()
    desktop = (home / ".local" / "share" / "applications" / "model-workbench.desktop").read_text()
    assert f'Exec="{app}" gui %f' in desktop.splitlines()
    assert (home / ".local/share/icons/hicolor/256x256/apps/model-workbench.png").read_bytes() == \
        (ICONS / "model-workbench.png").read_bytes()

    subprocess.run(["sh", str(script), "--uninstall"], env=env, check=True, capture_output=True, timeout=60)
    left = [p for p in (home / ".local").rglob("*") if p.is_file() or p.is_symlink()]
    assert left == []


def test_install_script_refuses_a_missing_bundle(tmp_path):
    proc = subprocess.run(["sh", str(ROOT / "packaging" / "install_desktop.sh"), str(tmp_path / "none")],
                          env={**os.environ, "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "make package" in proc.stderr
