"""Export predictions in formats clinical software reads (DICOM RTSTRUCT)."""
from .rtstruct_export import (ReferencedSeries, masks_to_contours_mm, read_referenced_series,
                              write_detections_rtstruct)

__all__ = ['ReferencedSeries', 'masks_to_contours_mm', 'read_referenced_series',
           'write_detections_rtstruct']
