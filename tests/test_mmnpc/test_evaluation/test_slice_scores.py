"""Slice-level score separation: tumour vs tumour-free slices by their best detection score."""
from __future__ import annotations

import math

import pytest

from mmnpc.evaluation.slice_scores import slice_score_stats

CATEGORIES = {1: 'GTV', 2: 'GTVln'}


def ann(image_id, category_id, iscrowd=0):
    return {'image_id': image_id, 'category_id': category_id, 'iscrowd': iscrowd}


def det(image_id, category_id, score):
    return {'image_id': image_id, 'category_id': category_id, 'score': score}


def test_best_score_per_slice_against_the_ground_truth():
    # slices 1-2 have a GTV, slice 3 a node only, slice 4 nothing (a crowd GTV is ignored)
    truth = [ann(1, 1), ann(2, 1), ann(3, 2), ann(4, 1, iscrowd=1)]
    dets = [det(1, 1, 0.9), det(1, 1, 0.3), det(2, 1, 0.4), det(3, 1, 0.6), det(3, 2, 0.8),
            det(4, 2, 0.55), det(99, 1, 1.0)]  # image 99 is not evaluated
    stats = slice_score_stats([1, 2, 3, 4], truth, dets, CATEGORIES, threshold=0.5)
    gtv = stats['GTV']
    # GTV maxima: tumour slices 0.9, 0.4; others 0.6 (slice 3), 0 (slice 4: no GTV box)
    assert (gtv['n_pos'], gtv['n_neg']) == (2, 2)
    assert gtv['auc'] == pytest.approx(3 / 4)  # pairs won: (0.9>0.6), (0.9>0), (0.4>0)
    assert gtv['pos_q50'] == pytest.approx(0.65) and gtv['neg_q50'] == pytest.approx(0.3)
    assert gtv['pos_marked'] == 0.5 and gtv['neg_marked'] == 0.5
    node = stats['GTVln']
    assert (node['n_pos'], node['n_neg']) == (1, 3)
    assert node['auc'] == pytest.approx(1.0)  # 0.8 above 0.55, 0, 0
    assert node['neg_marked'] == pytest.approx(1 / 3)
    anyc = stats['any']  # the prediction rule: the best box of either class
    assert (anyc['n_pos'], anyc['n_neg']) == (3, 1)
    assert anyc['pos_marked'] == pytest.approx(2 / 3) and anyc['neg_marked'] == 1.0
    assert anyc['auc'] == pytest.approx(2 / 3)  # 0.9, 0.4, 0.8 (slice 3's best) vs 0.55
    # the threshold these slices choose: 0.8 marks 2 of 3 tumour slices and not the other
    # (J = 2/3), better than 0.55 (J = 2/3 - 1) or 0.4 (J = 0); it is one of the slice maxima
    assert anyc['youden_thr'] == pytest.approx(0.8)
    assert anyc['youden_pos_marked'] == pytest.approx(2 / 3) and anyc['youden_neg_marked'] == 0
    # GTV: 0.9 (J = 1/2 - 0) ties with 0.4 (J = 1 - 1/2); the higher threshold wins
    assert gtv['youden_thr'] == pytest.approx(0.9) and gtv['youden_pos_marked'] == 0.5


def test_a_group_without_slices_leaves_its_figures_undefined():
    stats = slice_score_stats([1, 2], [ann(1, 1), ann(2, 1)], [det(1, 1, 0.7)], CATEGORIES)
    assert math.isnan(stats['GTV']['auc']) and math.isnan(stats['GTV']['neg_q50'])
    assert stats['GTV']['pos_marked'] == 0.5
    assert math.isnan(stats['GTVln']['pos_q10']) and stats['GTVln']['neg_marked'] == 0.0
    assert math.isnan(stats['GTV']['youden_thr']) and math.isnan(stats['GTV']['youden_pos_marked'])


def test_no_threshold_when_the_scores_do_not_separate():
    # nothing detected: every slice scores 0, and "mark everything" is no threshold
    stats = slice_score_stats([1, 2, 3], [ann(1, 1)], [], CATEGORIES)
    assert stats['any']['auc'] == 0.5 and math.isnan(stats['any']['youden_thr'])
    assert math.isnan(stats['any']['youden_pos_marked'])
    # a tumour-free slice outscoring the tumour slice: J <= 0 at every threshold
    stats = slice_score_stats([1, 2], [ann(1, 1)], [det(1, 1, 0.2), det(2, 1, 0.9)], CATEGORIES)
    assert math.isnan(stats['GTV']['youden_thr'])
