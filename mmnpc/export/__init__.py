"""Export predictions in formats clinical software reads (DICOM RTSTRUCT)."""
from .native_planes import NativePlane, detection_volume, native_contours
from .rtstruct_export import (ReferencedSeries, masks_to_contours_mm, read_referenced_series,
                              write_detections_rtstruct, write_native_plane_rtstruct)

__all__ = ['NativePlane', 'ReferencedSeries', 'detection_volume', 'masks_to_contours_mm',
           'native_contours', 'read_referenced_series', 'write_detections_rtstruct',
           'write_native_plane_rtstruct']
