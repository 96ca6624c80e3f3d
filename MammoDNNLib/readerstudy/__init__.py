"""Reader studies: the CSV format, a simulator with known truth, the study's analysis (Tables 1–4 and MRMC),
ROC figures and the report writer. ``mammodnn stats reader-study`` wraps :func:`analyze_reader_study` and
:func:`write_report`.
"""

from .analysis import AnalysisConfig, ReaderStudyAnalysis, analyze_reader_study
from .format import MODALITIES, ReaderStudy, read_reader_study, study_from_table, write_reader_study
from .report import write_report
from .simulate import GroupSpec, SimulationConfig, SimulationTruth, simulate_reader_study

__all__ = [
    "MODALITIES",
    "AnalysisConfig",
    "GroupSpec",
    "ReaderStudy",
    "ReaderStudyAnalysis",
    "SimulationConfig",
    "SimulationTruth",
    "analyze_reader_study",
    "read_reader_study",
    "simulate_reader_study",
    "study_from_table",
    "write_reader_study",
    "write_report",
]
