"""Export predictions in formats clinical software reads (DICOM RTSTRUCT, DICOM SEG)."""
from .native_planes import NativePlane, detection_volume, native_contours, native_masks
from .rtstruct_export import (ReferencedSeries, masks_to_contours_mm, read_referenced_series,
                              write_detections_rtstruct, write_native_plane_rtstruct)
from .seg_export import write_native_plane_seg

__all__ = ['NativePlane', 'ReferencedSeries', 'detection_volume', 'masks_to_contours_mm',
           'native_contours', 'native_masks', 'read_referenced_series',
           'write_detections_rtstruct', 'write_native_plane_rtstruct', 'write_native_plane_seg']
