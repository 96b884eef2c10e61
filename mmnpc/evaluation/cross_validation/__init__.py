"""Repeated patient-level cross-validation for small cohorts (TRIPOD): the pure logic.

:func:`make_folds` assigns patients to folds (stratified by MSOM, seeded),
:func:`write_fold_root` turns one fold into a converter-like data root that the
ordinary tools read (``--data-root``), and :func:`fold_rows` /
:func:`summarize_cross_validation` pool the folds' per-patient results.
``tools/cross_validate.py`` runs the trainings and tests in between.

Protocol of one fold: the held-out fold is the ``test`` split, on which
nothing is chosen (weights, checkpoint, cut-off); the remaining patients are
split, stratified, into ``train`` (detector and classifier weights, clinical
encoder, cut-off) and ``val`` (checkpoint selection). Every fold gets its own
``clinical.csv`` whose ``split`` column says so, so the split guards of
stage 2 (``SplitGuardHook``, ``DetCheckpointGuardHook``) check each fold.

The parts: :mod:`.folds` (fold assignment, pure), :mod:`.fold_roots` (a fold as a data
root on disk), :mod:`.summary` (pooling the folds' results). Everything here raises
``ValueError`` on bad input; it prints nothing.
"""
from __future__ import annotations

from .fold_roots import (CLINICAL_FILE, SPLIT_COLUMN, cohort_labels, read_table,
                         repartition_coco, sequences_of, write_fold_root)
from .folds import (FOLD_COLUMNS, SPLITS, check_fold, check_training_patients, fold_name,
                    fold_split_of, folds_table, make_folds, val_seed)
from .summary import (DET_AP_KEYS, POOLING_NOTE, SCORE_COLUMNS, auc_record, fold_rows, mean_sd,
                      summarize_cross_validation)

__all__ = ['CLINICAL_FILE', 'SPLIT_COLUMN', 'cohort_labels', 'read_table', 'repartition_coco',
           'sequences_of', 'write_fold_root', 'FOLD_COLUMNS', 'SPLITS', 'check_fold',
           'check_training_patients', 'fold_name', 'fold_split_of', 'folds_table', 'make_folds',
           'val_seed', 'DET_AP_KEYS', 'POOLING_NOTE', 'SCORE_COLUMNS', 'auc_record', 'fold_rows',
           'mean_sd', 'summarize_cross_validation']
