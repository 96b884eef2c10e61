"""Fold data roots: a converter output rewritten so that one fold's splits are its splits.

:func:`write_fold_root` gives the ordinary tools (``--data-root``) a folder whose
COCO files and ``clinical.csv`` split the patients as the fold does (the images
linked, not copied), so the split guards of stage 2 check each fold.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .folds import SPLITS, fold_split_of

CLINICAL_FILE = 'clinical.csv'
SPLIT_COLUMN = 'split'


def sequences_of(data_root: Path) -> list[str]:
    """The sequence folders of a converter output (those holding images/ and annotations/)."""
    data_root = Path(data_root)
    found = sorted(d.name for d in data_root.iterdir()
                   if d.is_dir() and (d / 'images').is_dir() and (d / 'annotations').is_dir())
    if not found:
        raise ValueError(f'{data_root}: no <sequence>/images + <sequence>/annotations folder '
                         '(expected the converter output)')
    return found


def read_table(path: Path) -> pd.DataFrame:
    """A CSV as stripped text cells ('' = empty), columns in file order."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f'{path}: file not found')
    table = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False,
                        encoding='utf-8-sig')
    return table.apply(lambda column: column.str.strip())


def cohort_labels(data_root: Path) -> dict[str, int]:
    """patient_id -> MSOM 0/1 of every patient with images in the annotation files of ``data_root``.

    Raises:
        ValueError: such a patient has no row in clinical.csv, or an MSOM
            that is missing or not 0/1 (the classifier refuses them too).
    """
    data_root = Path(data_root)
    patients: set[str] = set()
    for sequence in sequences_of(data_root):
        for coco, _ in _source_cocos(data_root / sequence):
            patients.update(str(image['patient_id']) for image in coco['images'])
    table = read_table(data_root / CLINICAL_FILE)
    for column in ('patient_id', 'msom'):
        if column not in table:
            raise ValueError(f'{data_root / CLINICAL_FILE}: no {column} column')
    msom = dict(zip(table['patient_id'], table['msom']))
    no_row = sorted(patients - set(msom))
    if no_row:
        raise ValueError(f'{data_root / CLINICAL_FILE}: no row for patients {no_row}')
    bad = sorted(f'{p} ({msom[p]!r})' for p in patients
                 if msom[p] not in ('0', '1', '0.0', '1.0'))
    if bad:
        raise ValueError(f'{data_root / CLINICAL_FILE}: msom must be 0 or 1 for every patient '
                         f'in the cross-validation: {", ".join(bad)}')
    return {p: int(float(msom[p])) for p in sorted(patients)}


def _source_cocos(sequence_dir: Path) -> list[tuple[dict, Path]]:
    """The sequence's COCO files (train, val, test order); every image must name its patient."""
    found = []
    for split in SPLITS:
        path = sequence_dir / 'annotations' / f'{split}.json'
        if not path.is_file():
            continue
        coco = json.loads(path.read_text(encoding='utf-8'))
        unnamed = [image.get('file_name') for image in coco.get('images', [])
                   if 'patient_id' not in image]
        if unnamed:
            raise ValueError(f'{path}: images without patient_id, e.g. {unnamed[0]}')
        found.append((coco, path))
    if not found:
        raise ValueError(f'{sequence_dir / "annotations"}: no train/val/test.json')
    return found


def repartition_coco(sources: Sequence[tuple[dict, Path]], split_of: Mapping[str, str]
                     ) -> dict[str, dict]:
    """Re-partition the union of COCO files by patient: {'train': coco, 'val': coco, 'test': coco}.

    Image ids are renumbered 1..n and annotation ids 1..m within each output
    file (the converter numbers each file from 1, so source ids collide
    across files); every annotation keeps its image. Images keep the source
    order (train, val, test file, then file order) and all their keys.

    Raises:
        ValueError: a file name appears twice, an annotation points to no
            image, the files disagree on categories, or an image's patient
            is not in ``split_of``.
    """
    categories = sources[0][0].get('categories', [])
    extra = {key: value for key, value in sources[0][0].items()
             if key not in ('images', 'annotations', 'categories')}
    out = {split: {**extra, 'images': [], 'annotations': [], 'categories': categories}
           for split in SPLITS}
    seen_files: dict[str, Path] = {}
    for coco, path in sources:
        if coco.get('categories', []) != categories:
            raise ValueError(f'{path}: categories differ from {sources[0][1]}')
        by_image: dict[Any, list[dict]] = {}
        for annotation in coco.get('annotations', []):
            by_image.setdefault(annotation['image_id'], []).append(annotation)
        image_ids = {image['id'] for image in coco.get('images', [])}
        orphans = sorted(set(by_image) - image_ids, key=str)
        if orphans:
            raise ValueError(f'{path}: annotations of image ids {orphans[:5]} without an image')
        for image in coco.get('images', []):
            if image['file_name'] in seen_files:
                raise ValueError(f'{image["file_name"]} is in both {seen_files[image["file_name"]]}'
                                 f' and {path}')
            seen_files[image['file_name']] = path
            patient = str(image['patient_id'])
            if patient not in split_of:
                raise ValueError(f'{path}: patient {patient} is in no split of the fold')
            target = out[split_of[patient]]
            new_id = len(target['images']) + 1
            target['images'].append({**image, 'id': new_id})
            for annotation in by_image.get(image['id'], []):
                target['annotations'].append(
                    {**annotation, 'id': len(target['annotations']) + 1, 'image_id': new_id})
    return out


def write_fold_root(data_root: Path, fold: Mapping[str, Any], out_dir: Path) -> Path:
    """Write one fold as a converter-like data root; return ``out_dir``.

    ``out_dir/<seq>/images`` is a symlink to the source images folder (no
    copy); ``out_dir/<seq>/annotations/{train,val,test}.json`` hold the union
    of the source annotation files re-partitioned by the fold
    (:func:`repartition_coco`); ``out_dir/clinical.csv`` is the source table
    with its ``split`` column (added if absent) set to the fold's split --
    empty for a row without images. Rewriting a fold root is allowed and
    gives the same files.

    Raises:
        ValueError: a patient in two splits, an image patient missing from
            the fold, or a fold patient without images.
    """
    data_root, out_dir = Path(data_root).resolve(), Path(out_dir)
    split_of = fold_split_of(fold)
    with_images: set[str] = set()
    out_dir.mkdir(parents=True, exist_ok=True)
    for sequence in sequences_of(data_root):
        target = out_dir / sequence
        (target / 'annotations').mkdir(parents=True, exist_ok=True)
        link = target / 'images'
        if link.is_symlink() or link.exists():
            if not link.is_symlink():
                raise ValueError(f'{link} exists and is not a symlink')
            link.unlink()
        os.symlink(data_root / sequence / 'images', link, target_is_directory=True)
        cocos = repartition_coco(_source_cocos(data_root / sequence), split_of)
        for split, coco in cocos.items():
            (target / 'annotations' / f'{split}.json').write_text(json.dumps(coco),
                                                                   encoding='utf-8')
            with_images.update(str(image['patient_id']) for image in coco['images'])
            wrong = sorted({str(i['patient_id']) for i in coco['images']}
                           - set(fold[split]))
            if wrong:  # cannot happen after repartition_coco; the guard is the point
                raise ValueError(f'{target}/{split}.json holds patients of other splits: {wrong}')
    without = sorted(set(split_of) - with_images)
    if without:
        raise ValueError(f'fold patients without images in {data_root}: {without}')
    table = read_table(data_root / CLINICAL_FILE)
    if 'patient_id' not in table:
        raise ValueError(f'{data_root / CLINICAL_FILE}: no patient_id column')
    no_row = sorted(set(split_of) - set(table['patient_id']))
    if no_row:
        raise ValueError(f'{data_root / CLINICAL_FILE}: no row for fold patients {no_row}')
    table[SPLIT_COLUMN] = [split_of.get(p, '') for p in table['patient_id']]
    table.to_csv(out_dir / CLINICAL_FILE, index=False)
    return out_dir
