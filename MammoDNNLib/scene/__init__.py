"""MRML scene code: MammoDNN's volumes, results, layout and navigation as Slicer nodes.

Everything here takes the scene (``vtkMRMLScene``) as an argument and imports MRML classes as ``from slicer
import vtkMRML...``, so the same code runs inside 3D Slicer and headless against the PyPI package
``slicer-core`` (see :mod:`.headless`). Nothing here imports Qt or the Slicer application.

Modules:

- :mod:`.volume_geometry` — pixel ↔ IJK ↔ RAS with a volume's matrix (pure numpy)
- :mod:`.schema` — the attribute and segment-tag names MammoDNN writes into MRML, and Finding ↔ tags
- :mod:`.headless` — a scene with the module logics Slicer would have, without the application
- :mod:`.volumes` — views ↔ scalar volume nodes
- :mod:`.results` — a Report → segmentation, markups and table nodes; :func:`.results.report_from_scene` back;
  review state (:func:`.results.set_finding_review`)
- :mod:`.layout` — the 2×2 mammography hanging layout
- :mod:`.navigation` — centre the slice views on a finding
- :mod:`.logic` — :class:`~.logic.AnalysisLogic`, the whole module logic without Qt
- :mod:`.render` — a picture of the hanging layout drawn from the nodes (matplotlib)

Importing this package loads no MRML; the submodules that need it do.
"""
