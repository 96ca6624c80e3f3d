"""MammoDNN: four-view screening mammography CAD in 3D Slicer (research use only).

This file only glues Qt widgets and the Slicer application to the library: everything that touches the scene
is :class:`MammoDNNLib.scene.logic.AnalysisLogic`, which also runs headless and from the Python console::

    logic = slicer.util.getModuleLogic("MammoDNN")
    result = logic.analyze("/path/to/exam")               # or {"R-CC": volumeNode, ...}
    print([f.label() for f in logic.findings])
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

log = logging.getLogger(__name__)


def _ensureLibraryImportable() -> None:
    """Make ``import MammoDNNLib`` work from the extension build and from a source checkout.

    The extension build installs MammoDNNLib next to this file (Slicer puts this folder on ``sys.path``); in a
    source checkout it is in the parent folder, which is added only when the import fails.
    """
    try:
        import MammoDNNLib
    except ModuleNotFoundError:
        sourceRoot = Path(__file__).resolve().parent.parent
        if (sourceRoot / "MammoDNNLib" / "__init__.py").is_file():
            sys.path.insert(0, str(sourceRoot))
        import MammoDNNLib  # noqa: F401


_ensureLibraryImportable()

from MammoDNNLib.vocabulary import VIEW_KEYS  # noqa: E402 (importable only after the path fix above)

# view key -> parameter name = prefix of the selector widget name ("rightCC" -> self.ui.rightCCSelector)
VIEW_PARAMETERS = {"R-CC": "rightCC", "L-CC": "leftCC", "R-MLO": "rightMLO", "L-MLO": "leftMLO"}
DEVICE_CPU = "cpu"
DEVICE_CUDA = "cuda"
MINIMUM_TORCH = "2.4"
MINIMUM_TORCHVISION = "0.19"
SAMPLE_CATEGORY = "MammoDNN"
SAMPLE_NAME = "MammoDNNPhantomStudy"
ANNOTATOR_SETTING = "MammoDNN/Annotator"
# Review keys (active only while the module is shown): key -> MammoDNNWidget method.
REVIEW_SHORTCUTS = (
    ("A", "onAcceptFinding"),
    ("R", "onRejectFinding"),
    ("N", "onNextFinding"),
    ("P", "onPreviousFinding"),
    ("E", "onEditOutline"),
)

HELP_TEXT = """
Finds masses, calcifications, asymmetries and architectural distortions on the four views of a screening
mammogram (R-CC, L-CC, R-MLO, L-MLO), localizes them (quadrant, depth), matches CC to MLO findings and
suggests malignancy and BI-RADS. Choose the four views (loaded volumes, a DICOM study from the DICOM database,
or a folder), then press Analyze. Results appear as segmentations, boxes and points in a 2×2 hanging layout
and as tables; click a table row to centre the views on a finding.
<br><br>
<b>Research use only. Not a medical device; not for clinical diagnosis.</b>
<br><br>
See the <a href="https://github.com/mammodnn/MammoDNN/blob/main/docs/slicer.md">MammoDNN Slicer
documentation</a>.
"""

ACKNOWLEDGEMENT_TEXT = """
MammoDNN reproduces a four-view deep-learning approach to screening mammography CAD: detection with Faster
R-CNN and four-view fusion (after Ribli D. et al., "Detecting and classifying lesions in mammograms with deep
learning", Scientific Reports 8:4165, 2018), CC–MLO lesion matching and BI-RADS suggestion. The sample study
is a synthetic phantom. Models trained on mini-MIAS must cite Suckling J. et al., "The Mammographic Image
Analysis Society digital mammogram database", Excerpta Medica ICS 1069:375-378, 1994. Built on 3D Slicer
(Fedorov A. et al., Magn Reson Imaging 30(9):1323-41, 2012).
"""


#
# MammoDNN
#


class MammoDNN(ScriptedLoadableModule):
    """Module description (see :data:`HELP_TEXT`)."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("MammoDNN")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Diagnosis")]
        self.parent.dependencies = ["Segmentations", "Markups", "Tables", "Terminologies"]
        self.parent.contributors = ["MammoDNN developers"]
        self.parent.helpText = _(HELP_TEXT)
        self.parent.acknowledgementText = _(ACKNOWLEDGEMENT_TEXT)
        slicer.app.connect("startupCompleted()", onStartupCompleted)


def onStartupCompleted() -> None:
    registerTerminology()
    registerSampleData()


def registerTerminology() -> None:
    """Load MammoDNN's segment terminology (SNOMED CT codes of the finding types) into Slicer."""
    from MammoDNNLib.export.terminology import terminology_file

    path = terminology_file()
    terminologiesLogic = (
        slicer.modules.terminologies.logic() if hasattr(slicer.modules, "terminologies") else None
    )
    if terminologiesLogic is None or not path.is_file():
        return
    if hasattr(terminologiesLogic, "LoadContextFromFile"):
        terminologiesLogic.LoadContextFromFile(str(path))
    else:  # Slicer < 5.7
        terminologiesLogic.LoadTerminologyFromFile(str(path))


def phantomSampleFolder() -> Path:
    from MammoDNNLib.paths import resources_dir

    return resources_dir() / "SampleData" / "phantom-study"


def loadPhantomSample(source=None) -> dict:
    """Load the shipped four-view phantom study into volume nodes ``{key: node}`` (Sample Data downloader)."""
    return slicer.util.getModuleLogic("MammoDNN").loadStudy(phantomSampleFiles())


def phantomSampleFiles() -> list:
    """The sample's DICOM files (the folder may also hold the phantom's truth: truth.json and mask PNGs)."""
    folder = phantomSampleFolder()
    files = sorted(folder.glob("*.dcm")) if folder.is_dir() else []
    if not files:
        raise ValueError(f"the MammoDNN phantom sample is not installed (no DICOM files in {folder})")
    return files


def registerSampleData() -> None:
    """Add the phantom study to the Sample Data module (loaded from local files, nothing downloaded)."""
    import SampleData

    iconPath = os.path.join(os.path.dirname(__file__), "Resources", "Icons", "MammoDNN.png")
    if hasattr(SampleData.SampleDataLogic, "registerCustomSampleDataCategory"):
        SampleData.SampleDataLogic.registerCustomSampleDataCategory(SAMPLE_CATEGORY, title=_("MammoDNN"))
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category=SAMPLE_CATEGORY,
        sampleName=SAMPLE_NAME,
        thumbnailFileName=iconPath,
        uris=[],
        fileNames=[],
        customDownloader=loadPhantomSample,
    )


#
# Parameter node
#


@parameterNodeWrapper
class MammoDNNParameterNode:
    """The module's choices, saved with the scene.

    rightCC, leftCC, rightMLO, leftMLO - the view volumes.
    tta - test-time augmentation.
    runInBackground - analyze in a separate process (keeps Slicer responsive; needs the views' files).
    device - "cpu" or "cuda".
    model - folder of the chosen model ("" = the default model).
    """

    rightCC: vtkMRMLScalarVolumeNode
    leftCC: vtkMRMLScalarVolumeNode
    rightMLO: vtkMRMLScalarVolumeNode
    leftMLO: vtkMRMLScalarVolumeNode
    tta: bool = True
    runInBackground: bool = True
    device: str = DEVICE_CPU
    model: str = ""


#
# DICOM helpers (the application's DICOM database)
#


def dicomInstanceUID(volumeNode) -> str | None:
    uids = volumeNode.GetAttribute("DICOM.instanceUIDs") if volumeNode else None
    return uids.split()[0] if uids else None


def dicomSourceFile(volumeNode) -> Path | None:
    """The DICOM file a volume was loaded from (through Slicer's DICOM database)."""
    uid = dicomInstanceUID(volumeNode)
    if not uid or not slicer.dicomDatabase:
        return None
    path = slicer.dicomDatabase.fileForInstance(uid)
    return Path(path) if path else None


def dicomViewIdentity(volumeNode) -> tuple[str, str] | None:
    """(laterality, view) from the DICOM tags of a volume loaded through the DICOM module, if they say it."""
    uid = dicomInstanceUID(volumeNode)
    if not uid or not slicer.dicomDatabase:
        return None
    database = slicer.dicomDatabase
    laterality = (
        database.instanceValue(uid, "0020,0062") or database.instanceValue(uid, "0020,0060") or ""
    ).strip()
    position = (database.instanceValue(uid, "0018,5101") or "").strip().upper()
    if laterality.upper() in ("L", "R") and position in ("CC", "MLO"):
        return laterality.upper(), position
    return None


def dicomChestWall(volumeNode) -> str | None:
    from MammoDNNLib.scene.volumes import chest_wall_side_from_patient_orientation

    uid = dicomInstanceUID(volumeNode)
    if not uid or not slicer.dicomDatabase:
        return None
    return chest_wall_side_from_patient_orientation(slicer.dicomDatabase.instanceValue(uid, "0020,0020"))


#
# MammoDNNWidget
#


class MammoDNNWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: inputs, model and options, Analyze / Cancel with progress, results tables."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._process = None
        self._processOutput = None
        self._processVolumes = None
        self._cancelRequested = False
        self._review = None  # MammoDNNLib.scene.review.ReviewSession of the latest result
        self._reviewFindingId = None
        self._shortcuts = []
        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(200)
        self._pollTimer.connect("timeout()", self.onPollProcess)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MammoDNN.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = MammoDNNLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.assignViewsButton.connect("clicked(bool)", self.onAssignViews)
        self.ui.loadFolderButton.connect("clicked(bool)", self.onLoadFolder)
        self.ui.loadSampleButton.connect("clicked(bool)", self.onLoadSample)
        self.ui.refreshDicomButton.connect("clicked(bool)", self.onRefreshDicomStudies)
        self.ui.loadDicomStudyButton.connect("clicked(bool)", self.onLoadDicomStudy)
        self.ui.importModelButton.connect("clicked(bool)", self.onImportModel)
        self.ui.detectGpuButton.connect("clicked(bool)", self.onDetectGpu)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onDeviceChanged)
        self.ui.showLayoutButton.connect("clicked(bool)", self.onShowLayout)
        self.ui.clearButton.connect("clicked(bool)", self.onClearResults)
        self.ui.findingsTableView.connect("selectionChanged()", self.onFindingSelected)
        self.ui.reviewFindingComboBox.connect("currentIndexChanged(int)", self.onReviewFindingChanged)
        self.ui.previousFindingButton.connect("clicked(bool)", self.onPreviousFinding)
        self.ui.nextFindingButton.connect("clicked(bool)", self.onNextFinding)
        self.ui.acceptFindingButton.connect("clicked(bool)", self.onAcceptFinding)
        self.ui.rejectFindingButton.connect("clicked(bool)", self.onRejectFinding)
        self.ui.undoDecisionButton.connect("clicked(bool)", self.onUndoDecision)
        self.ui.reviewTypeComboBox.connect("currentIndexChanged(int)", self.onReviewTypeChanged)
        self.ui.setNoteButton.connect("clicked(bool)", self.onSetNote)
        self.ui.editOutlineButton.connect("clicked(bool)", self.onEditOutline)
        self.ui.addLesionButton.connect("clicked(bool)", self.onAddLesion)
        self.ui.linkButton.connect("clicked(bool)", self.onLinkFindings)
        self.ui.unlinkButton.connect("clicked(bool)", self.onUnlinkFinding)
        self.ui.exportCorrectionsButton.connect("clicked(bool)", self.onExportCorrections)

        self.ui.progressBar.setRange(0, 100)
        self.ui.progressBar.setValue(0)
        self.ui.cancelButton.enabled = False
        self.ui.deviceComboBox.clear()
        self.ui.deviceComboBox.addItem(_("CPU"), DEVICE_CPU)
        self.ui.disclaimerLabel.text = _("Research use only. Not for clinical diagnosis.")
        self.populateModels()
        self.setupReview()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self._pollTimer.stop()
        if self._process is not None:
            self._process.cancel()
        for shortcut in self._shortcuts:
            shortcut.setEnabled(False)
            shortcut.setParent(None)
        self._shortcuts = []
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()
        for shortcut in self._shortcuts:
            shortcut.setEnabled(True)
        self.startReview()  # also records outlines edited in the Segment Editor meanwhile

    def exit(self) -> None:
        for shortcut in self._shortcuts:
            shortcut.setEnabled(False)
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._selectComboData(self.ui.deviceComboBox, self._parameterNode.device)
            self._selectComboData(self.ui.modelComboBox, self._parameterNode.model)
            # A saved "cuda" stays only once Detect GPU has offered it in this session.
            self._parameterNode.device = self.ui.deviceComboBox.currentData or DEVICE_CPU
            self._parameterNode.model = self.ui.modelComboBox.currentData or ""
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        busy = self._process is not None
        haveViews = bool(self._parameterNode and self.selectedVolumes(setIdentity=False))
        self.ui.applyButton.enabled = haveViews and not busy
        self.ui.applyButton.toolTip = (
            _("Analyze the selected views") if haveViews else _("Choose at least one view volume")
        )
        self.ui.cancelButton.enabled = busy

    # --- inputs ---------------------------------------------------------------------------------------------
    def selectedVolumes(self, setIdentity: bool = True) -> dict:
        """``{view key: volume node}`` from the four selectors (records each volume's view on the node)."""
        from MammoDNNLib.scene import schema
        from MammoDNNLib.scene.volumes import set_view_identity

        volumes = {}
        for key, parameter in VIEW_PARAMETERS.items():
            node = getattr(self._parameterNode, parameter) if self._parameterNode else None
            if node is None:
                continue
            if setIdentity:
                laterality, view = key.split("-")
                dicomIdentity = dicomViewIdentity(node)
                if dicomIdentity and dicomIdentity != (laterality, view):
                    log.warning(
                        "MammoDNN: %s is %s-%s in its DICOM tags but was chosen as %s",
                        node.GetName(),
                        *dicomIdentity,
                        key,
                    )
                set_view_identity(node, laterality, view)
                chestWall = dicomChestWall(node)
                if chestWall:
                    node.SetAttribute(schema.ATTR_CHEST_WALL, chestWall)
            volumes[key] = node
        return volumes

    def assignVolumes(self, volumes: dict) -> None:
        for key, node in volumes.items():
            setattr(self._parameterNode, VIEW_PARAMETERS[key], node)

    def onAssignViews(self) -> None:
        """Fill the four selectors from the scene's volumes: MammoDNN attributes, DICOM tags, then names."""
        from MammoDNNLib.scene.volumes import view_identity, view_identity_from_name

        found = {}
        for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
            if node.IsA("vtkMRMLLabelMapVolumeNode"):
                continue
            identity = (
                view_identity(node) or dicomViewIdentity(node) or view_identity_from_name(node.GetName())
            )
            if identity:
                found["-".join(identity)] = node
        if not found:
            slicer.util.warningDisplay(
                _("No loaded volume says which view it is. Choose the volume of each view in the selectors.")
            )
            return
        self.assignVolumes(found)

    def onLoadFolder(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(
            slicer.util.mainWindow(), _("Folder of one mammography exam")
        )
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not load the exam."), waitCursor=True):
            self.ensureDependencies(torch=False)
            self.assignVolumes(self.logic.loadStudy(folder))

    def onLoadSample(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not load the phantom sample."), waitCursor=True):
            self.ensureDependencies(torch=False)
            self.assignVolumes(loadPhantomSample())

    def onRefreshDicomStudies(self) -> None:
        """List the studies of Slicer's DICOM database that hold mammography images."""
        combo = self.ui.dicomStudyComboBox
        combo.clear()
        database = slicer.dicomDatabase
        if not database or not database.isOpen:
            combo.addItem(_("(the DICOM database is empty or closed)"), "")
            return
        for patient in database.patients():
            patientName = database.nameForPatient(patient) if hasattr(database, "nameForPatient") else patient
            for study in database.studiesForPatient(patient):
                modalities = {
                    database.fieldForSeries("Modality", series) for series in database.seriesForStudy(study)
                }
                if not modalities & {"MG", "DX", "CR", "RG", "OT"}:
                    continue
                date = database.fieldForStudy("StudyDate", study) or ""
                description = database.fieldForStudy("StudyDescription", study) or ""
                combo.addItem(f"{patientName} {date} {description}".strip(), study)
        if combo.count == 0:
            combo.addItem(_("(no mammography study in the DICOM database)"), "")

    def onLoadDicomStudy(self) -> None:
        studyUID = self.ui.dicomStudyComboBox.currentData
        if not studyUID:
            return
        from DICOMLib import DICOMUtils

        with slicer.util.tryWithErrorDisplay(_("Could not load the DICOM study."), waitCursor=True):
            seriesUIDs = list(slicer.dicomDatabase.seriesForStudy(studyUID))
            loadedIDs = DICOMUtils.loadSeriesByUID(seriesUIDs)
            found = {}
            unknown = []
            for nodeID in loadedIDs:
                node = slicer.mrmlScene.GetNodeByID(nodeID)
                if node is None or not node.IsA("vtkMRMLScalarVolumeNode"):
                    continue
                identity = dicomViewIdentity(node)
                if identity:
                    found["-".join(identity)] = node
                else:
                    unknown.append(node.GetName())
            self.assignVolumes(found)
            if unknown:
                slicer.util.warningDisplay(
                    _(
                        "The DICOM tags of {names} do not say the laterality and view; "
                        "choose their views in the selectors."
                    ).format(names=", ".join(unknown))
                )

    # --- model and device ----------------------------------------------------------------------------------
    def populateModels(self) -> None:
        combo = self.ui.modelComboBox
        combo.blockSignals(True)
        combo.clear()
        combo.addItem(_("Default model"), "")
        try:
            from MammoDNNLib.models.registry import list_models
        except ImportError as exc:
            log.info("MammoDNN: model registry unavailable (%s)", exc)
            list_models = None
        if list_models is not None:
            try:
                for info in list_models():
                    label = getattr(info, "label", None) or f"{info.name} {info.version}"
                    combo.addItem(label, str(getattr(info, "path", "") or info.name))
            except ValueError as exc:
                log.warning("MammoDNN: could not list models: %s", exc)
        combo.blockSignals(False)
        if self._parameterNode:
            self._selectComboData(combo, self._parameterNode.model)

    def onImportModel(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(
            slicer.util.mainWindow(), _("Model folder (manifest.json and .safetensors weights)")
        )
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not import the model."), waitCursor=True):
            from MammoDNNLib.models.registry import import_model

            info = import_model(folder)  # verifies every weight file's sha256 before copying
            self.populateModels()
            self._selectComboData(self.ui.modelComboBox, str(getattr(info, "path", "") or info.name))

    def onModelChanged(self, index: int) -> None:
        if self._parameterNode:
            self._parameterNode.model = self.ui.modelComboBox.itemData(index) or ""

    def onDetectGpu(self) -> None:
        """Offer the GPU only once the user asks and torch reports CUDA (imports torch only now)."""
        with slicer.util.tryWithErrorDisplay(_("Could not check for a GPU."), waitCursor=True):
            self.ensureDependencies(torch=True, others=False)
            import torch

            combo = self.ui.deviceComboBox
            if torch.cuda.is_available():
                if combo.findData(DEVICE_CUDA) < 0:
                    combo.addItem(
                        _("GPU (CUDA): {name}").format(name=torch.cuda.get_device_name(0)), DEVICE_CUDA
                    )
                self._selectComboData(combo, DEVICE_CUDA)
            else:
                slicer.util.infoDisplay(_("PyTorch reports no CUDA GPU; MammoDNN will run on the CPU."))

    def onDeviceChanged(self, index: int) -> None:
        if self._parameterNode:
            self._parameterNode.device = self.ui.deviceComboBox.itemData(index) or DEVICE_CPU

    @staticmethod
    def _selectComboData(combo, data) -> None:
        index = combo.findData(data)
        if index >= 0:
            combo.currentIndex = index

    # --- dependencies ---------------------------------------------------------------------------------------
    def ensureDependencies(self, torch: bool = True, others: bool = True) -> None:
        """Install what the analysis needs, after asking; called only when the user acts, never at import."""
        if others:
            requirementsPath = self.resourcePath("requirements.txt")
            if hasattr(slicer, "packaging") and hasattr(slicer.packaging, "pip_ensure"):
                slicer.packaging.pip_ensure(
                    slicer.packaging.load_requirements(requirementsPath), requester="MammoDNN"
                )
            else:
                missing = missingRequirements(requirementsPath)
                if missing:
                    if not slicer.util.confirmOkCancelDisplay(
                        _(
                            "MammoDNN needs these Python packages, which will be installed now "
                            "(this needs a network connection and may take a few minutes):\n{packages}"
                        ).format(packages="\n".join(missing)),
                        _("Install MammoDNN dependencies"),
                    ):
                        raise ValueError(_("MammoDNN cannot run without its Python packages."))
                    slicer.util.pip_install(missing)
        if torch:
            try:
                import PyTorchUtils
            except ModuleNotFoundError:
                raise ValueError(
                    _(
                        "MammoDNN needs the PyTorch extension. Install 'PyTorch' from the Extensions "
                        "Manager and restart Slicer."
                    )
                ) from None
            torchLogic = PyTorchUtils.PyTorchUtilsLogic()
            if not torchLogic.torchInstalled():
                if not slicer.util.confirmOkCancelDisplay(
                    _("MammoDNN needs PyTorch, which will be installed now (this may take several minutes)."),
                    _("Install PyTorch"),
                ):
                    raise ValueError(_("MammoDNN cannot run without PyTorch."))
                installed = torchLogic.installTorch(
                    askConfirmation=False,
                    torchVersionRequirement=f">={MINIMUM_TORCH}",
                    torchvisionVersionRequirement=f">={MINIMUM_TORCHVISION}",
                )
                if installed is None:
                    raise ValueError(_("PyTorch could not be installed; see the PyTorch Utils module."))

    # --- analysis -------------------------------------------------------------------------------------------
    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("MammoDNN analysis failed."), waitCursor=True):
            volumes = self.selectedVolumes()
            if not volumes:
                raise ValueError(_("Choose the volume of at least one view."))
            self.ensureDependencies()
            device = self._parameterNode.device
            if device == DEVICE_CUDA:
                import torch

                if not torch.cuda.is_available():
                    raise ValueError(_("PyTorch reports no CUDA GPU; choose the CPU."))
            options = {
                "model": self._parameterNode.model or None,
                "device": device,
                "tta": self._parameterNode.tta,
            }
            files = self.sourceFilesForBackground(volumes)
            if self._parameterNode.runInBackground and files is not None:
                self.startBackgroundAnalysis(volumes, files, options)
            else:
                self.runInProcess(volumes, options)

    def sourceFilesForBackground(self, volumes: dict):
        """The views' files, when a worker can analyze them as they are (their own tags name the view)."""
        from MammoDNNLib.scene.volumes import view_identity

        files = []
        for key, node in volumes.items():
            path = self.logic.analysis.source_file(node)
            if path is None:
                return None
            fromDicom = dicomViewIdentity(node)
            if fromDicom is None and dicomInstanceUID(node):
                return None  # the user named this view; the worker would not know
            if fromDicom is not None and "-".join(fromDicom) != key:
                return None
            if fromDicom is None and view_identity(node) is None:
                return None
            files.append(path)
        return files

    def startBackgroundAnalysis(self, volumes: dict, files: list, options: dict) -> None:
        from MammoDNNLib.progress import AnalysisProcess
        from MammoDNNLib.scene.logic import analysis_command, worker_environment

        self._processOutput = tempfile.mkdtemp(prefix="MammoDNN-")
        python = shutil.which("PythonSlicer") or sys.executable
        command = analysis_command(files, self._processOutput, python=python, **options)
        log.info("MammoDNN: running %s", " ".join(command))
        self._processVolumes = volumes
        self._process = AnalysisProcess(command, env=worker_environment()).start()
        self.setBusy(True, _("Starting the analysis…"), progress=0)
        self._pollTimer.start()

    def onPollProcess(self) -> None:
        if self._process is None:
            self._pollTimer.stop()
            return
        status = self._process.poll()
        self.ui.progressBar.setValue(round(100 * status.fraction))
        self.ui.statusLabel.text = status.message
        if status.running:
            return
        self._pollTimer.stop()
        process, output, volumes = self._process, self._processOutput, self._processVolumes
        self._process = self._processOutput = self._processVolumes = None
        try:
            if status.cancelled:
                self.setBusy(False, _("Cancelled."), progress=0)
            elif status.succeeded:
                with slicer.util.tryWithErrorDisplay(_("Could not show the results."), waitCursor=True):
                    self.logic.loadResults(output, volumes)
                    self.showResults()
                self.setBusy(
                    False, _("{count} finding(s).").format(count=len(self.logic.findings)), progress=100
                )
            else:
                message = status.error.message if status.error else _("the analysis stopped")
                self.setBusy(False, message, progress=0)
                slicer.util.errorDisplay(
                    _("MammoDNN analysis failed: {message}").format(message=message),
                    detailedText=process.output_tail,
                )
        finally:
            if output:
                shutil.rmtree(output, ignore_errors=True)

    def runInProcess(self, volumes: dict, options: dict) -> None:
        """Analyze inside Slicer, keeping the GUI alive between steps (used when the views have no files)."""
        from MammoDNNLib.errors import CancelledError

        self._cancelRequested = False

        def progress(fraction: float, message: str) -> None:
            self.ui.progressBar.setValue(round(100 * fraction))
            self.ui.statusLabel.text = message
            slicer.app.processEvents()
            if self._cancelRequested:
                raise CancelledError("cancelled by the user")

        self.setBusy(True, _("Analyzing…"), progress=0)
        try:
            self.logic.analyze(volumes, progress=progress, **options)
            self.showResults()
            self.setBusy(False, _("{count} finding(s).").format(count=len(self.logic.findings)), progress=100)
        except CancelledError:
            self.setBusy(False, _("Cancelled."), progress=0)
        except Exception:
            self.setBusy(False, _("Failed."), progress=0)
            raise

    def onCancelButton(self) -> None:
        if self._process is not None:
            self._process.cancel()
        self._cancelRequested = True

    def setBusy(self, busy: bool, message: str = "", progress: int | None = None) -> None:
        """Switch the panel between running and idle; ``progress`` sets the bar (0-100) when given."""
        self.ui.applyButton.enabled = not busy
        self.ui.cancelButton.enabled = busy
        self.ui.statusLabel.text = message
        if progress is not None:
            self.ui.progressBar.setValue(progress)
        if not busy:
            self._cancelRequested = False
            self._checkCanApply()

    # --- results --------------------------------------------------------------------------------------------
    def showResults(self) -> None:
        nodes = self.logic.nodes
        if nodes is None:
            return
        self.ui.findingsTableView.setMRMLTableNode(nodes.findings_table)
        self.ui.summaryTableView.setMRMLTableNode(nodes.summary_table)
        self.ui.resultsCollapsibleButton.collapsed = False
        self._reviewFindingId = None
        self.startReview()

    def onFindingSelected(self) -> None:
        """Centre the views on the finding of the selected row (and on its matched finding)."""
        view = self.ui.findingsTableView
        table = view.mrmlTableNode()
        selection = view.selectionModel()
        if table is None or selection is None:
            return
        index = selection.currentIndex()
        column = table.GetColumnIndex("id")
        if not index.isValid() or column < 0:
            return
        findingId = index.sibling(
            index.row(), column
        ).data()  # the view's (sorted) row, read through its model
        if findingId:
            with slicer.util.tryWithErrorDisplay(_("Could not show the finding.")):
                self.logic.centerOnFinding(str(findingId))
            self._selectReviewFinding(str(findingId))

    def onShowLayout(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not set up the layout.")):
            self.logic.showLayout(self.selectedVolumes())

    def onClearResults(self) -> None:
        self.logic.clear()
        self.ui.findingsTableView.setMRMLTableNode(None)
        self.ui.summaryTableView.setMRMLTableNode(None)
        self.ui.statusLabel.text = ""
        self.ui.progressBar.setValue(0)
        self._review = None
        self._reviewFindingId = None
        self.updateReviewPanel()

    # --- review ---------------------------------------------------------------------------------------------
    # Every operation is MammoDNNLib.scene.review.ReviewSession; this only moves values between it and widgets.

    def setupReview(self) -> None:
        from MammoDNNLib.scene.review import default_annotator
        from MammoDNNLib.vocabulary import FINDING_TYPES

        for combo in (self.ui.reviewTypeComboBox, self.ui.addLesionTypeComboBox):
            combo.blockSignals(True)
            combo.clear()
            for findingType in FINDING_TYPES:
                combo.addItem(_(findingType.label), findingType.key)
            combo.blockSignals(False)
        self.ui.annotatorLineEdit.text = qt.QSettings().value(ANNOTATOR_SETTING, "") or default_annotator()
        mainWindow = slicer.util.mainWindow()
        if mainWindow is not None:
            for key, method in REVIEW_SHORTCUTS:
                shortcut = qt.QShortcut(qt.QKeySequence(key), mainWindow)
                shortcut.setEnabled(False)  # enabled while the module is shown (enter/exit)
                shortcut.connect("activated()", getattr(self, method))
                self._shortcuts.append(shortcut)
        self.updateReviewPanel()

    def _annotator(self) -> str:
        name = self.ui.annotatorLineEdit.text.strip()
        if name:
            qt.QSettings().setValue(ANNOTATOR_SETTING, name)
        if self._review is not None:
            self._review.annotator = name or self._review.annotator
        return name

    def startReview(self) -> None:
        """Review the latest MammoDNN result in the scene (after an analysis, or a scene loaded from .mrb)."""
        from MammoDNNLib.scene.results import result_ids
        from MammoDNNLib.scene.review import ReviewSession

        if not result_ids(slicer.mrmlScene):
            self._review = None
            self.updateReviewPanel()
            return
        with slicer.util.tryWithErrorDisplay(_("Could not start the review."), waitCursor=True):
            self._review = ReviewSession(slicer.mrmlScene, annotator=self._annotator() or None)
            self._review.sync_edits()
            self.ui.reviewCollapsibleButton.collapsed = False
        self.refreshReviewFindings(self._reviewFindingId or (self._review and self._review.next_finding()))

    def refreshReviewFindings(self, select=None) -> None:
        """Fill the finding list (label and review state) and select ``select``."""
        combo = self.ui.reviewFindingComboBox
        combo.blockSignals(True)
        combo.clear()
        if self._review is not None:
            for item in self._review.items():
                combo.addItem(f"{item.label}  [{item.state}]", item.id)
        index = combo.findData(select) if select else -1
        combo.currentIndex = index if index >= 0 else (0 if combo.count else -1)
        combo.blockSignals(False)
        self._reviewFindingId = combo.currentData if combo.count else None
        self.updateReviewPanel()

    def updateReviewPanel(self) -> None:
        review, findingId = self._review, self._reviewFindingId
        active = review is not None and findingId is not None
        for widget in (self.ui.previousFindingButton, self.ui.nextFindingButton, self.ui.acceptFindingButton,
                       self.ui.rejectFindingButton, self.ui.undoDecisionButton, self.ui.reviewTypeComboBox,
                       self.ui.setNoteButton, self.ui.editOutlineButton, self.ui.linkButton, self.ui.unlinkButton,
                       self.ui.linkPartnerComboBox):
            widget.enabled = active
        self.ui.addLesionButton.enabled = review is not None
        self.ui.exportCorrectionsButton.enabled = review is not None
        views = self.ui.addLesionViewComboBox
        chosenView = views.currentData
        views.clear()
        self.ui.linkPartnerComboBox.clear()
        if review is None:
            self.ui.reviewStatusLabel.text = _("No MammoDNN results to review.")
            return
        for key in review.volumes():
            views.addItem(key, key)
        if chosenView and views.findData(chosenView) >= 0:
            views.currentIndex = views.findData(chosenView)
        progress = review.progress()
        status = _("{reviewed} of {total} findings reviewed").format(reviewed=progress.reviewed, total=progress.total)
        if not active:
            self.ui.reviewStatusLabel.text = status
            return
        item = review.item(findingId)
        typeCombo = self.ui.reviewTypeComboBox
        typeCombo.blockSignals(True)
        typeCombo.currentIndex = typeCombo.findData(item.type)
        typeCombo.blockSignals(False)
        self.ui.reviewNoteLineEdit.text = item.note
        for partner in review.link_candidates(findingId):
            self.ui.linkPartnerComboBox.addItem(partner.label, partner.id)
        if item.match_id and self.ui.linkPartnerComboBox.findData(item.match_id) >= 0:
            self.ui.linkPartnerComboBox.currentIndex = self.ui.linkPartnerComboBox.findData(item.match_id)
        origin = _("added by {who}").format(who=item.audit[0].who) if item.origin == "annotator" else _("model")
        link = _("linked with {id}").format(id=item.match_id) if item.match_id else _("not linked")
        self.ui.reviewStatusLabel.text = f"{item.state} · {origin} · {link} — {status}"

    def _selectReviewFinding(self, findingId) -> None:
        combo = self.ui.reviewFindingComboBox
        index = combo.findData(findingId)
        if index >= 0 and index != combo.currentIndex:
            combo.currentIndex = index  # centres the views through onReviewFindingChanged

    def onReviewFindingChanged(self, index: int) -> None:
        self._reviewFindingId = self.ui.reviewFindingComboBox.itemData(index) if index >= 0 else None
        if self._review is not None and self._reviewFindingId:
            with slicer.util.tryWithErrorDisplay(_("Could not show the finding.")):
                self._review.go_to(self._reviewFindingId)
        self.updateReviewPanel()

    def _reviewAction(self, message: str, action, then=None) -> None:
        """Run ``action(review, findingId)``, then refresh the list and select ``then(review, findingId)``."""
        if self._review is None or not self._reviewFindingId:
            return
        self._annotator()
        findingId = self._reviewFindingId
        with slicer.util.tryWithErrorDisplay(message):
            action(self._review, findingId)
            target = then(self._review, findingId) if then else findingId
            self.refreshReviewFindings(target or findingId)
            if target and target != findingId:
                self._review.go_to(target)

    @staticmethod
    def _nextUnreviewed(review, findingId):
        return review.next_finding(findingId) or findingId

    def onNextFinding(self) -> None:
        self._reviewAction(_("Could not go to the next finding."), lambda review, f: None,
                           lambda review, f: review.next_finding(f) or review.next_finding(f, unreviewed_only=False))

    def onPreviousFinding(self) -> None:
        self._reviewAction(_("Could not go to the previous finding."), lambda review, f: None,
                           lambda review, f: review.previous_finding(f))

    def onAcceptFinding(self) -> None:
        note = self.ui.reviewNoteLineEdit.text
        self._reviewAction(_("Could not accept the finding."), lambda review, f: review.accept(f, note=note),
                           self._nextUnreviewed)

    def onRejectFinding(self) -> None:
        note = self.ui.reviewNoteLineEdit.text
        self._reviewAction(_("Could not reject the finding."), lambda review, f: review.reject(f, note=note),
                           self._nextUnreviewed)

    def onUndoDecision(self) -> None:
        self._reviewAction(_("Could not undo the decision."), lambda review, f: review.set_state(f, "unreviewed"))

    def onReviewTypeChanged(self, index: int) -> None:
        findingType = self.ui.reviewTypeComboBox.itemData(index)
        if findingType:
            self._reviewAction(_("Could not change the type."), lambda review, f: review.set_type(f, findingType))

    def onSetNote(self) -> None:
        note = self.ui.reviewNoteLineEdit.text
        self._reviewAction(_("Could not save the note."), lambda review, f: review.set_note(f, note))

    def onEditOutline(self) -> None:
        if self._review is not None and self._reviewFindingId:
            with slicer.util.tryWithErrorDisplay(_("Could not open the Segment Editor.")):
                self.openSegmentEditor(self._reviewFindingId)

    def openSegmentEditor(self, findingId: str) -> None:
        """Switch to the Segment Editor on the finding's segment; coming back records the edit."""
        segmentation, volume, segmentId = self._review.segment_target(findingId)
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(segmentation)
        if hasattr(editor, "setSourceVolumeNode"):
            editor.setSourceVolumeNode(volume)
        else:  # Slicer < 5.2
            editor.setMasterVolumeNode(volume)
        editor.setCurrentSegmentID(segmentId)

    def onAddLesion(self) -> None:
        if self._review is None:
            return
        key = self.ui.addLesionViewComboBox.currentData
        findingType = self.ui.addLesionTypeComboBox.currentData
        if not key or not findingType:
            return
        self._annotator()
        with slicer.util.tryWithErrorDisplay(_("Could not add the lesion.")):
            findingId = self._review.add_lesion(key, findingType, center=self._review.visible_centre(key))
            self._reviewFindingId = findingId
            self.refreshReviewFindings(findingId)
            self.openSegmentEditor(findingId)

    def onLinkFindings(self) -> None:
        partner = self.ui.linkPartnerComboBox.currentData
        if partner:
            self._reviewAction(_("Could not link the findings."), lambda review, f: review.link(f, partner))

    def onUnlinkFinding(self) -> None:
        self._reviewAction(_("Could not unlink the finding."), lambda review, f: review.unlink(f))

    def onExportCorrections(self) -> None:
        if self._review is None:
            return
        folder = qt.QFileDialog.getExistingDirectory(
            slicer.util.mainWindow(), _("Folder for the corrections (earlier exports there are kept and merged)")
        )
        if not folder:
            return
        from MammoDNNLib.scene.corrections import export_corrections

        annotator = self._annotator() or None
        with slicer.util.tryWithErrorDisplay(_("Could not export the corrections."), waitCursor=True):
            sources = {}
            for key, volume in self._review.volumes().items():
                path = dicomSourceFile(volume)
                if path is not None:
                    sources[key] = path
            result = export_corrections(slicer.mrmlScene, folder, annotator=annotator, sources=sources)
            written = [str(result.manifest)] + ([str(result.coco)] if result.coco else [])
            if result.dicom is not None:
                written += [str(path) for path in result.dicom.all_files()]
            slicer.util.infoDisplay(
                _("Exported {lesions} lesion(s), {rejected} rejected finding(s) recorded; review complete: "
                  "{complete}.").format(lesions=result.lesions, rejected=result.rejected,
                                         complete=_("yes") if result.complete else _("no")),
                detailedText="\n".join(written + result.notes),
            )


#
# MammoDNNLogic
#


class MammoDNNLogic(ScriptedLoadableModuleLogic):
    """The module logic for scripts: a thin shell around :class:`MammoDNNLib.scene.logic.AnalysisLogic`.

    Use it from the Python console::

        logic = slicer.util.getModuleLogic("MammoDNN")
        logic.analyze("/path/to/exam", device="cpu", tta=True)
        logic.findings, logic.report, logic.nodes
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        from MammoDNNLib.scene.logic import AnalysisLogic

        layoutManager = slicer.app.layoutManager()
        layoutNode = layoutManager.layoutLogic().GetLayoutNode() if layoutManager else None
        self.analysis = AnalysisLogic(
            slicer.mrmlScene, source_resolver=dicomSourceFile, layout_node=layoutNode
        )

    def getParameterNode(self):
        return MammoDNNParameterNode(super().getParameterNode())

    @property
    def report(self):
        return self.analysis.report

    @property
    def findings(self):
        return self.analysis.findings

    @property
    def nodes(self):
        return self.analysis.nodes

    def loadStudy(self, source) -> dict:
        """Load a folder / file(s) of one exam as volume nodes ``{key: node}``."""
        return self.analysis.load_study(source)

    def analyze(self, source, **options):
        """Analyze volume nodes (``{"R-CC": node, ...}`` or a list), a Study or a folder; show results."""
        result = self.analysis.analyze(source, **options)
        self._fitViews(result.slice_nodes)
        return result

    def loadResults(self, outputFolder, volumes):
        result = self.analysis.load_results(outputFolder, volumes)
        self._fitViews(result.slice_nodes)
        return result

    def showLayout(self, volumes: dict) -> dict:
        from MammoDNNLib.scene.layout import apply_hanging_layout

        sliceNodes = apply_hanging_layout(slicer.mrmlScene, volumes, layout_node=self.analysis.layout_node)
        self._fitViews(sliceNodes)
        return sliceNodes

    def centerOnFinding(self, findingId: str, **options):
        return self.analysis.center_on_finding(findingId, **options)

    def clear(self, volumes: bool = False) -> int:
        return self.analysis.clear(volumes=volumes)

    @staticmethod
    def _fitViews(sliceNodes: dict) -> None:
        """Fit each hanging view to its image now that the widgets have their real size."""
        layoutManager = slicer.app.layoutManager()
        if not layoutManager:
            return
        for sliceNode in sliceNodes.values():
            widget = layoutManager.sliceWidget(sliceNode.GetLayoutName())
            if widget is not None:
                widget.sliceLogic().FitSliceToAll()


def missingRequirements(requirementsPath: str) -> list:
    """Requirement strings of ``requirementsPath`` that the running Python does not satisfy (Slicer < 5.9)."""
    import importlib.metadata

    from packaging.requirements import Requirement

    missing = []
    with open(requirementsPath, encoding="utf-8") as handle:
        for line in handle:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate():
                continue
            try:
                version = importlib.metadata.version(requirement.name)
            except importlib.metadata.PackageNotFoundError:
                missing.append(line)
                continue
            if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
                missing.append(line)
    return missing


#
# MammoDNNTest
#


class MammoDNNTest(ScriptedLoadableModuleTest):
    """Runs the module on the phantom sample study: load, analyze, check the nodes, clear."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_PhantomStudyResults()
        self.setUp()
        self.test_PipelineOnPhantom()
        self.setUp()
        self.test_Review()

    def _loadPhantom(self, logic):
        try:
            files = phantomSampleFiles()
        except ValueError as exc:
            self.skipTest(str(exc))
        return logic.loadStudy(files)

    def test_PhantomStudyResults(self):
        """Analyze with :func:`expectedReport` as the analysis; check every node against that report."""
        try:  # the Python packages the library needs (installed when a user first presses Analyze)
            import skimage  # noqa: F401

            import MammoDNNLib.io  # noqa: F401  (pydicom and the JPEG decoders)
        except ImportError as exc:
            self.skipTest(f"MammoDNN's Python dependencies are not installed: {exc}")
        import numpy as np

        from MammoDNNLib.scene import results
        from MammoDNNLib.scene.volumes import volume_ijk_to_ras

        self.delayDisplay("Loading the phantom study")
        logic = MammoDNNLogic()
        volumes = self._loadPhantom(logic)
        self.assertGreaterEqual(len(volumes), 1)
        truthReport = expectedReport(volumes)

        def truthAnalysis(study, **options):
            self.assertEqual(set(study.views), set(volumes))
            return truthReport

        logic.analysis.analysis_function = truthAnalysis
        self.delayDisplay("Analyzing")
        result = logic.analyze(volumes)
        self.assertEqual(len(logic.findings), len(truthReport.findings))

        for finding in truthReport.findings:
            view = result.nodes.views[finding.view_key]
            volume = view.volume
            rows, cols = volume.GetImageData().GetDimensions()[1], volume.GetImageData().GetDimensions()[0]
            expected = finding.lesion_mask((rows, cols)).full((rows, cols))
            actual = results.segment_mask(view.segmentation, finding.id, volume)
            self.assertTrue(np.array_equal(expected, actual), f"mask of {finding.id}")
            roi = view.rois[finding.id]
            x0, y0, x1, y1 = finding.box
            ijkToRas = volume_ijk_to_ras(volume)
            centre = ijkToRas @ np.array([(x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5, 0.0, 1.0])
            self.assertTrue(
                np.allclose(roi.GetCenter(), centre[:3], atol=1e-4), f"ROI centre of {finding.id}"
            )
        self.assertEqual(result.nodes.findings_table.GetNumberOfRows(), len(truthReport.findings))
        rebuilt = results.report_from_scene(slicer.mrmlScene)
        self.assertEqual(rebuilt.to_dict()["findings"], truthReport.to_dict()["findings"])

        layoutManager = slicer.app.layoutManager()
        if layoutManager:
            from MammoDNNLib.scene.layout import HANGING_LAYOUT_ID

            self.assertEqual(layoutManager.layout, HANGING_LAYOUT_ID)
        if logic.findings:
            moved = logic.centerOnFinding(logic.findings[0].id)
            self.assertTrue(moved[logic.findings[0].id])

        self.delayDisplay("Clearing")
        removed = logic.clear(volumes=True)
        self.assertGreater(removed, 0)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"), 0)
        self.delayDisplay("Test passed")

    def test_PipelineOnPhantom(self):
        """The real pipeline on the phantom (skipped when PyTorch or a model is not installed)."""
        try:
            import torch  # noqa: F401
            from MammoDNNLib.pipeline import analyze  # noqa: F401
        except ImportError as exc:
            self.skipTest(f"pipeline unavailable: {exc}")
        logic = MammoDNNLogic()
        volumes = self._loadPhantom(logic)
        try:
            result = logic.analyze(volumes, device="cpu", tta=False)
        except ValueError as exc:  # e.g. no model installed
            self.skipTest(str(exc))
        self.assertTrue(set(result.nodes.views) <= set(volumes))
        self.assertEqual(result.nodes.findings_table.GetNumberOfRows(), len(result.findings))
        logic.clear(volumes=True)
        self.delayDisplay("Test passed")


    def test_Review(self):
        """Review the expected report in Slicer's scene: decisions, an added lesion, a link, the export."""
        try:
            import skimage  # noqa: F401
        except ImportError as exc:
            self.skipTest(f"MammoDNN's Python dependencies are not installed: {exc}")
        import numpy as np

        from MammoDNNLib.data.manifest import load_manifest
        from MammoDNNLib.scene.corrections import export_corrections
        from MammoDNNLib.scene.review import ReviewSession

        logic = MammoDNNLogic()
        volumes = self._loadPhantom(logic)
        report = expectedReport(volumes)
        logic.analysis.analysis_function = lambda study, **options: report
        logic.analyze(volumes)
        review = ReviewSession(slicer.mrmlScene, annotator="self-test")
        first, *others = [item.id for item in review.items()]
        review.accept(first)
        for findingId in others:
            review.reject(findingId, note="self-test")
        key = report.findings[0].view_key
        rows, cols = volumes[key].GetImageData().GetDimensions()[1], volumes[key].GetImageData().GetDimensions()[0]
        mask = np.zeros((rows, cols), bool)
        mask[rows // 4 : rows // 4 + 6, cols // 4 : cols // 4 + 6] = True
        added = review.add_lesion(key, "asymmetry", mask=mask)
        self.assertEqual(review.item(added).state, "edited")
        self.assertTrue(review.progress().complete)
        folder = Path(tempfile.mkdtemp(prefix="mammodnn-review-"))
        try:
            result = export_corrections(slicer.mrmlScene, folder, annotator="self-test", dicom=False)
            study = load_manifest(result.manifest).studies[0]
            self.assertTrue(study.labelled)
            exported = {lesion.extra["finding_id"] for _, lesion in study.lesions}
            self.assertEqual(exported, {first, added})
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        logic.clear(volumes=True)
        self.delayDisplay("Test passed")


def expectedReport(volumes: dict):
    """A report a perfect model could give for ``volumes``: one lesion per breast, matched between CC and MLO.

    Each lesion is an ellipse centred in its view's breast (the bright part of the image), so the self-test
    needs no model and checks the scene code against masks and boxes it constructs itself.
    """
    import numpy as np

    from MammoDNNLib.findings import Finding, ModelInfo, Report, Summary, ViewInfo
    from MammoDNNLib.geometry import LesionMask
    from MammoDNNLib.scene.volumes import volume_pixels, volume_spacing

    views, findings = [], []
    for key, node in volumes.items():
        laterality, view = key.split("-")
        pixels = volume_pixels(node)
        rows, cols = pixels.shape
        views.append(ViewInfo(key, None, laterality, view, (cols, rows), volume_spacing(node)))
        breast = pixels > np.percentile(pixels, 60)
        yy, xx = np.nonzero(breast)
        cx, cy = (xx.mean() + 0.5, yy.mean() + 0.5) if len(xx) else (cols / 2, rows / 2)
        radius = max(2.0, min(rows, cols) / 12)
        grid_y, grid_x = np.mgrid[0:rows, 0:cols]
        mask = ((grid_x + 0.5 - cx) / radius) ** 2 + ((grid_y + 0.5 - cy) / (0.7 * radius)) ** 2 <= 1.0
        lesion = LesionMask.from_full(mask)
        findings.append(
            Finding(
                id=f"lesion_{len(findings) + 1:03d}",
                view_key=key,
                type="mass",
                score=0.9,
                box=lesion.box,
                number=1,
                mask=lesion,
                malignancy=0.5,
                birads="4A",
            )
        )
    by_key = {f.view_key: f for f in findings}
    for f in findings:  # the lesion of a breast is matched between its CC and MLO views
        partner = by_key.get(f"{f.laterality}-{'MLO' if f.view == 'CC' else 'CC'}")
        if partner is not None:
            f.match_id, f.match_probability = partner.id, 0.9
    breasts = {
        side: Summary(score=0.5, birads="4A", findings=sum(f.laterality == side for f in findings))
        for side in ("R", "L")
        if any(f.laterality == side for f in findings)
    }
    return Report(
        ModelInfo("self-test", "0", "0" * 64),
        views,
        findings,
        breasts,
        Summary(score=0.5, birads="4A", findings=len(findings)),
        created="self-test",
    )


__all__ = [
    "VIEW_KEYS",
    "MammoDNN",
    "MammoDNNLogic",
    "MammoDNNParameterNode",
    "MammoDNNTest",
    "MammoDNNWidget",
]
