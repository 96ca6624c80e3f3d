"""Static checks of the Slicer module (no Slicer application here): every widget the Python uses exists in the
.ui file with a class that has what the Python uses; parameter bindings match the parameter node; the module
compiles, installs nothing at import, and its requirements match the package's."""

from __future__ import annotations

import ast
import py_compile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "MammoDNN" / "MammoDNN.py"
UI = REPO / "MammoDNN" / "Resources" / "UI" / "MammoDNN.ui"
REQUIREMENTS = REPO / "MammoDNN" / "Resources" / "requirements.txt"
ICON = REPO / "MammoDNN" / "Resources" / "Icons" / "MammoDNN.png"

BUTTONS = {"QPushButton", "QToolButton", "ctkPushButton", "ctkCollapsibleButton", "QCheckBox", "QRadioButton"}
COMBOS = {"QComboBox", "ctkComboBox"}
# What the module does with a widget -> the widget classes that support it.
ATTRIBUTE_CLASSES: dict[str, set[str]] = {
    "enabled": None,  # every QWidget
    "toolTip": None,
    "text": BUTTONS | {"QLabel", "QLineEdit"},
    "checked": BUTTONS,
    "collapsed": {"ctkCollapsibleButton"},
    "setValue": {"QProgressBar", "QSpinBox", "QDoubleSpinBox", "QSlider", "ctkSliderWidget"},
    "setRange": {"QProgressBar", "QSpinBox", "QDoubleSpinBox", "QSlider", "ctkSliderWidget"},
    "clear": COMBOS | {"QLineEdit", "QListWidget"},
    "addItem": COMBOS | {"QListWidget"},
    "findData": COMBOS,
    "itemData": COMBOS,
    "currentData": COMBOS,
    "currentIndex": COMBOS,
    "count": COMBOS | {"QListWidget"},
    "blockSignals": None,
    "connect": None,  # the signal is checked against SIGNAL_CLASSES
    "setMRMLTableNode": {"qMRMLTableView"},
    "mrmlTableNode": {"qMRMLTableView"},
    "selectionModel": {"qMRMLTableView", "QTableView"},
    "sortFilterProxyModel": {"qMRMLTableView"},
    "tableModel": {"qMRMLTableView"},
    "currentNode": {"qMRMLNodeComboBox"},
    "setCurrentNode": {"qMRMLNodeComboBox"},
}
SIGNAL_CLASSES: dict[str, set[str]] = {
    "clicked(bool)": BUTTONS,
    "clicked()": BUTTONS,
    "toggled(bool)": BUTTONS,
    "currentIndexChanged(int)": COMBOS,
    "selectionChanged()": {"qMRMLTableView"},
    "currentNodeChanged(vtkMRMLNode*)": {"qMRMLNodeComboBox"},
}
# Parameter types -> widget classes the parameter node wrapper can connect them to.
PARAMETER_WIDGETS: dict[str, set[str]] = {
    "vtkMRMLScalarVolumeNode": {"qMRMLNodeComboBox"},
    "bool": {"QCheckBox", "ctkCheckBox", "QPushButton", "ctkCheckablePushButton"},
    "str": {"QLineEdit", "QLabel", "QComboBox", "ctkComboBox", "QTextEdit"},
    "float": {"QDoubleSpinBox", "ctkSliderWidget", "ctkDoubleSpinBox"},
    "int": {"QSpinBox", "QSlider"},
}


def _ui_widgets() -> dict[str, ET.Element]:
    root = ET.parse(UI).getroot()
    return {w.get("name"): w for w in root.iter("widget")}


def _module_tree() -> ast.Module:
    return ast.parse(MODULE.read_text(encoding="utf-8"))


def _ui_uses(tree: ast.Module) -> dict[str, dict[str, set[str]]]:
    """``self.ui.<name>`` uses: {name: {"attributes": {...}, "signals": {...}}}."""
    uses: dict[str, dict[str, set[str]]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        value = node.value
        if (
            isinstance(value, ast.Attribute)
            and value.attr == "ui"
            and isinstance(value.value, ast.Name)
            and value.value.id == "self"
        ):
            uses.setdefault(node.attr, {"attributes": set(), "signals": set()})
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            inner = node.value
            if isinstance(inner.value, ast.Attribute) and inner.value.attr == "ui" and inner.attr in uses:
                uses[inner.attr]["attributes"].add(node.attr)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "connect"
        ):
            target = node.func.value
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Attribute)
                and target.value.attr == "ui"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                uses[target.attr]["signals"].add(node.args[0].value)
    # Local aliases (``view = self.ui.findingsTableView`` / ``combo = self.ui.dicomStudyComboBox``).
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef,)):
            aliases = {}
            for statement in ast.walk(node):
                if (
                    isinstance(statement, ast.Assign)
                    and len(statement.targets) == 1
                    and isinstance(statement.targets[0], ast.Name)
                ):
                    value = statement.value
                    if (
                        isinstance(value, ast.Attribute)
                        and isinstance(value.value, ast.Attribute)
                        and value.value.attr == "ui"
                    ):
                        aliases[statement.targets[0].id] = value.attr
            for statement in ast.walk(node):
                if (
                    isinstance(statement, ast.Attribute)
                    and isinstance(statement.value, ast.Name)
                    and statement.value.id in aliases
                ):
                    uses[aliases[statement.value.id]]["attributes"].add(statement.attr)
    return uses


def test_module_compiles():
    py_compile.compile(str(MODULE), doraise=True)


def test_every_widget_the_module_uses_exists_with_a_compatible_class():
    widgets = _ui_widgets()
    uses = _ui_uses(_module_tree())
    assert uses, "the module uses no self.ui widgets?"
    missing = sorted(name for name in uses if name not in widgets)
    assert not missing, f"widgets used in MammoDNN.py but absent from MammoDNN.ui: {missing}"
    problems = []
    for name, use in uses.items():
        cls = widgets[name].get("class")
        for attribute in use["attributes"]:
            if attribute not in ATTRIBUTE_CLASSES:
                problems.append(f"{name}.{attribute}: unknown use (add it to ATTRIBUTE_CLASSES)")
                continue
            allowed = ATTRIBUTE_CLASSES[attribute]
            if allowed is not None and cls not in allowed:
                problems.append(f"{name} is a {cls}, which has no {attribute}")
        for signal in use["signals"]:
            allowed = SIGNAL_CLASSES.get(signal)
            if allowed is None or cls not in allowed:
                problems.append(f"{name} is a {cls}; signal {signal} is not one of its signals here")
    assert not problems, "\n".join(problems)


def _parameter_fields() -> dict[str, str]:
    for node in _module_tree().body:
        if isinstance(node, ast.ClassDef) and node.name == "MammoDNNParameterNode":
            return {
                statement.target.id: ast.unparse(statement.annotation)
                for statement in node.body
                if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
            }
    raise AssertionError("MammoDNNParameterNode not found")


def test_parameter_bindings_name_parameter_node_fields_with_fitting_widgets():
    fields = _parameter_fields()
    bound = {}
    for name, widget in _ui_widgets().items():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.find("string").text] = (name, widget.get("class"))
    assert bound, "no widget is bound to the parameter node"
    for parameter, (name, cls) in bound.items():
        assert parameter in fields, f"{name} is bound to {parameter!r}, which MammoDNNParameterNode lacks"
        assert cls in PARAMETER_WIDGETS[fields[parameter]], (
            f"{name} ({cls}) cannot show a {fields[parameter]}"
        )
    # The four view selectors are bound, and the module knows them by the same names.
    for parameter in ("rightCC", "leftCC", "rightMLO", "leftMLO"):
        assert bound[parameter] == (f"{parameter}Selector", "qMRMLNodeComboBox")


def test_mrml_widgets_receive_the_scene():
    root = ET.parse(UI).getroot()
    mrml_widgets = {
        w.get("name")
        for w in root.iter("widget")
        if w.get("class", "").startswith("qMRML") and w.get("class") != "qMRMLWidget"
    }
    connected = {
        c.findtext("receiver")
        for c in root.iter("connection")
        if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
        and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"
    }
    assert mrml_widgets and mrml_widgets <= connected
    assert root.find("widget").get("class") == "qMRMLWidget"


def test_nothing_heavy_is_imported_or_installed_at_module_import():
    tree = _module_tree()
    heavy = {"torch", "torchvision", "lightgbm", "skimage", "scipy", "pydicom", "highdicom", "matplotlib"}
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]]
        else:
            continue
        assert not heavy & set(names), f"top-level import of {names} in MammoDNN.py"
    top_level_calls = [ast.unparse(n) for n in tree.body if isinstance(n, ast.Expr)]
    assert not any("pip" in call or "install" in call.lower() for call in top_level_calls)


def test_requirements_match_the_package_dependencies():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    expected = {
        d.replace(" ", "")
        for d in pyproject["project"]["dependencies"]
        if not d.lower().startswith(("torch==", "torch>", "torch<", "torch ", "torchvision"))
        and d.split("=")[0].split(">")[0].strip().lower() not in ("torch", "torchvision")
    }
    listed = {line.split("#")[0].strip().replace(" ", "") for line in REQUIREMENTS.read_text().splitlines()}
    listed.discard("")
    assert listed == expected


def test_icon_is_a_128_pixel_png():
    from PIL import Image

    with Image.open(ICON) as image:
        assert image.format == "PNG" and image.size == (128, 128)


def test_module_metadata_mentions_research_use_and_registers_its_test():
    text = MODULE.read_text(encoding="utf-8")
    assert "Research use only" in text
    cmake = (REPO / "MammoDNN" / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in cmake
    assert "class MammoDNNTest(ScriptedLoadableModuleTest)" in text


@pytest.mark.parametrize("name", ["MammoDNN", "MammoDNNWidget", "MammoDNNLogic", "MammoDNNTest"])
def test_scripted_module_classes_exist(name):
    classes = {n.name for n in _module_tree().body if isinstance(n, ast.ClassDef)}
    assert name in classes


def test_self_test_expected_report_is_consistent_headless():
    """The report MammoDNNTest builds (``expectedReport`` in MammoDNN.py) runs through the scene code headless
    and comes back exactly: what the Slicer self-test checks is checked here too."""
    pytest.importorskip("slicer")
    import numpy as np
    from test_scene_support import make_study

    from MammoDNNLib.scene.headless import create_headless_slicer
    from MammoDNNLib.scene.logic import AnalysisLogic
    from MammoDNNLib.scene.results import report_from_scene, segment_mask

    source = MODULE.read_text(encoding="utf-8")
    function = next(
        n for n in _module_tree().body if isinstance(n, ast.FunctionDef) and n.name == "expectedReport"
    )
    namespace: dict = {}
    exec(compile(ast.Module(body=[function], type_ignores=[]), str(MODULE), "exec"), namespace)
    app = create_headless_slicer()
    logic = AnalysisLogic(app.scene)
    volumes = logic.add_study(make_study())
    expected = namespace["expectedReport"](volumes)
    assert len(expected.findings) == 4 and all(f.match_id for f in expected.findings)
    logic.analysis_function = lambda study, **options: expected
    result = logic.analyze(volumes)
    for finding in expected.findings:
        view = result.nodes.views[finding.view_key]
        rows, cols = (
            view.volume.GetImageData().GetDimensions()[1],
            view.volume.GetImageData().GetDimensions()[0],
        )
        np.testing.assert_array_equal(
            segment_mask(view.segmentation, finding.id, view.volume),
            finding.lesion_mask((rows, cols)).full((rows, cols)),
        )
    assert report_from_scene(app.scene).to_dict()["findings"] == expected.to_dict()["findings"]
    assert "phantomSampleFiles" in source and 'glob("*.dcm")' in source
