"""Lesion regions (one per GTV / GTVln section) of one MR sequence, labelled per patient."""
from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence

from mmdet.registry import DATASETS

from .msom_slice_dataset import MsomSliceDataset
from .slice_selection import select_regions


@DATASETS.register_module()
class MsomRegionDataset(MsomSliceDataset):
    """:class:`MsomSliceDataset` with one sample per lesion section instead of per slice.

    Every annotation of ``region_classes`` on a slice is a sample: the slice's
    fields (``img_path``, ``patient_id``, ``z_mm``, ``spacing_mm``, ...) plus
    ``structure`` (the class name), ``region_box`` (x1, y1, x2, y2 px, the
    annotation's bounding box) and ``region_area_px``. The pipeline's
    ``CropRegion`` cuts the window around ``region_box`` in millimetres
    (:mod:`mmnpc.datasets.regions`); prediction cuts the same windows around the
    detector's boxes. The patient's score is the mean over its regions
    (PatientAUCMetric), as it is the mean over slices for the slice dataset.

    Args:
        region_classes: the structures that give regions: ``('GTV', 'GTVln')``
            (default), ``('GTV',)`` primary only, ``('GTVln',)`` nodes only.
        regions_per_structure: keep each patient's k largest sections of each
            structure (:func:`~mmnpc.datasets.slice_selection.largest_regions`);
            None keeps every section.
        **kwargs: as :class:`MsomSliceDataset` (``slice_selection`` and
            ``max_slices_per_patient`` do not apply and must stay at their defaults).
    """

    def __init__(self, region_classes: Sequence[str] = ('GTV', 'GTVln'),
                 regions_per_structure: Optional[int] = None, **kwargs) -> None:
        if kwargs.get('slice_selection', 'tumour') != 'tumour' or \
                kwargs.get('max_slices_per_patient') is not None:
            raise ValueError('MsomRegionDataset chooses regions with regions_per_structure; '
                             'slice_selection / max_slices_per_patient do not apply')
        self.region_classes = tuple(region_classes)
        self.regions_per_structure = regions_per_structure
        kwargs.setdefault('tumour_classes', self.region_classes)
        super().__init__(**kwargs)

    def _items(self, coco: dict, source: str) -> List[dict]:
        regions = select_regions(coco, self.region_classes, self.regions_per_structure, source)
        return [self._region_item(region) for region in regions]

    def _sample_kind(self) -> str:
        per = self.regions_per_structure
        return (f'regions ({"/".join(self.region_classes)} sections'
                + (f', the {per} largest of each structure per patient)' if per else ')'))

    def _region_item(self, region: Mapping[str, Any]) -> dict:
        item = self._slice_item(region)
        item.update(structure=region['structure'], region_box=list(region['region_box']),
                    region_area_px=region['region_area_px'],
                    annotation_id=region['annotation_id'])
        return item
