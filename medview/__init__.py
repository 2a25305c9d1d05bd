"""medview: an offline DICOM reading workstation with on-device AI findings.

Research use only, not for diagnosis: the bundled model is trained on synthetic phantoms.
"""

__version__ = "0.1.0"
